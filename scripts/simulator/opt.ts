import { IntMinHeap } from './int-min-heap.js';
import type { ReplayResult } from './replay.js';
import type { Trace } from './trace.js';

/** Next-use index meaning "never requested again". */
const NEVER = 0x7fffffff;

/**
 * For each request i, the index of the next request for the same object, or {@link NEVER}.
 */
export function nextUses(trace: Trace): Int32Array {
  const { requests } = trace;
  const next = new Int32Array(requests.length);
  const seen = new Int32Array(trace.sizes.length).fill(NEVER);
  for (let i = requests.length - 1; i >= 0; i--) {
    const id = requests[i] as number;
    next[i] = seen[id] as number;
    seen[id] = i;
  }
  return next;
}

/**
 * Bélády's offline optimum (MIN) with bypass: on a miss that needs room, evict the resident objects
 * whose next use is furthest in the future, until the new object fits; but when that would take an
 * object needed sooner than the new one (or the new one is never used again), bypass it instead.
 *
 * With unit sizes this is the optimal hit count. With mixed sizes exact optimisation is NP-hard;
 * this size-aware greedy is the usual reference, not a proven bound, and it maximises object hits,
 * not byte hits.
 */
export function simulateOpt(trace: Trace, capacity: number, next: Int32Array = nextUses(trace)): ReplayResult {
  const { requests, sizes } = trace;
  const n = requests.length;
  const resident = new Uint8Array(sizes.length);
  // The next use each resident object is filed under; older heap pairs for it are stale.
  const residentNext = new Int32Array(sizes.length);
  // Keyed by -nextUse: the min-heap's top is the resident used furthest in the future.
  const heap = new IntMinHeap(n + 1);
  const poppedIds: number[] = [];
  let used = 0;
  let hits = 0;
  let byteHits = 0;
  for (let i = 0; i < n; i++) {
    const id = requests[i] as number;
    const size = sizes[id] as number;
    const nextUse = next[i] as number;
    if (resident[id] === 1) {
      hits++;
      byteHits += size;
      residentNext[id] = nextUse;
      heap.push(-nextUse, id);
      continue;
    }
    if (size > capacity || nextUse === NEVER) continue;
    const needed = used + size - capacity;
    if (needed > 0) {
      let freed = 0;
      poppedIds.length = 0;
      while (freed < needed && heap.size > 0) {
        const topId = heap.topId();
        const topNext = -heap.topKey();
        if (resident[topId] !== 1 || residentNext[topId] !== topNext) {
          heap.pop();
          continue;
        }
        if (topNext <= nextUse) break;
        heap.pop();
        poppedIds.push(topId);
        freed += sizes[topId] as number;
      }
      if (freed < needed) {
        for (const kept of poppedIds) heap.push(-(residentNext[kept] as number), kept);
        continue;
      }
      for (const evicted of poppedIds) {
        resident[evicted] = 0;
        used -= sizes[evicted] as number;
      }
    }
    resident[id] = 1;
    residentNext[id] = nextUse;
    used += size;
    heap.push(-nextUse, id);
  }
  return { hits, byteHits };
}
