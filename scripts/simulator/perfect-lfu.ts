import { IntMinHeap } from './int-min-heap.js';
import type { ReplayResult } from './replay.js';
import type { Trace } from './trace.js';

/**
 * Perfect LFU, a reference for what frequency-based admission can reach: exact request counts of
 * every object ever seen (unbounded memory, no aging), and the cache holds the most-requested
 * objects so far. A missed object is admitted when its count beats the counts of the
 * least-requested residents it would displace (ties keep the residents); otherwise it is bypassed.
 *
 * On the Zipf workloads (independent references) this is close to the best any online policy
 * can do; TinyLFU approximates it with bounded memory and aging.
 */
export function simulatePerfectLfu(trace: Trace, capacity: number): ReplayResult {
  const { requests, sizes } = trace;
  const counts = new Int32Array(sizes.length);
  const resident = new Uint8Array(sizes.length);
  // Residents are filed under their count; a pair whose count is outdated is stale.
  const heap = new IntMinHeap(requests.length + 1);
  const poppedIds: number[] = [];
  let used = 0;
  let hits = 0;
  let byteHits = 0;
  for (let i = 0; i < requests.length; i++) {
    const id = requests[i] as number;
    const size = sizes[id] as number;
    const count = (counts[id] as number) + 1;
    counts[id] = count;
    if (resident[id] === 1) {
      hits++;
      byteHits += size;
      heap.push(count, id);
      continue;
    }
    if (size > capacity) continue;
    const needed = used + size - capacity;
    if (needed > 0) {
      let freed = 0;
      poppedIds.length = 0;
      while (freed < needed && heap.size > 0) {
        const topId = heap.topId();
        const topCount = heap.topKey();
        if (resident[topId] !== 1 || counts[topId] !== topCount) {
          heap.pop();
          continue;
        }
        if (topCount >= count) break;
        heap.pop();
        poppedIds.push(topId);
        freed += sizes[topId] as number;
      }
      if (freed < needed) {
        for (const kept of poppedIds) heap.push(counts[kept] as number, kept);
        continue;
      }
      for (const evicted of poppedIds) {
        resident[evicted] = 0;
        used -= sizes[evicted] as number;
      }
    }
    resident[id] = 1;
    used += size;
    heap.push(count, id);
  }
  return { hits, byteHits };
}
