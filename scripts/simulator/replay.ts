import type { EvictionPolicy } from '../../policies/eviction/index.js';
import type { Trace } from './trace.js';

export interface ReplayResult {
  hits: number;
  /** Bytes served from cache. */
  byteHits: number;
}

/**
 * Replays a trace through a policy the way the memory tier drives it: a resident key is a hit
 * (`recordAccess`), anything else is fetched and offered. Nothing expires.
 */
export function replay(trace: Trace, policy: EvictionPolicy): ReplayResult {
  const { requests, sizes, keys } = trace;
  const evicted: string[] = [];
  let hits = 0;
  let byteHits = 0;
  for (let i = 0; i < requests.length; i++) {
    const id = requests[i] as number;
    const key = keys[id] as string;
    const size = sizes[id] as number;
    if (policy.has(key)) {
      policy.recordAccess(key);
      hits++;
      byteHits += size;
    } else {
      policy.offer(key, size, Infinity, evicted);
      evicted.length = 0;
    }
  }
  return { hits, byteHits };
}
