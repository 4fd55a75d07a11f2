/**
 * What happened to a request, recorded in one place for every response the proxy port answers from the cache or
 * the origin: the counter in /stats and /metrics, `X-Cache` (one word, for curl) and `Cache-Status` (RFC 9211,
 * formatted by policies/http/cache-status.ts). edgecache's own error answers carry the two fields too
 * (http/error-answer.ts) but are counted as badRequests or originErrors, not as an outcome.
 */
import { appendCacheStatus, formatCacheStatus, type CacheStatusFields } from '../../policies/http/cache-status.js';
import type { ProxyStats } from '../admin/stats.js';

export type XCache = 'HIT' | 'MISS' | 'STALE' | 'REVALIDATED' | 'BYPASS';

/** The /stats counter of each outcome (also /metrics' edgecache_responses_total{cache=...}). */
export const OUTCOME_COUNTERS = {
  HIT: 'hits',
  MISS: 'misses',
  STALE: 'stale',
  REVALIDATED: 'revalidated',
  BYPASS: 'bypass',
} as const satisfies Record<XCache, keyof ProxyStats>;

/**
 * A response's X-Cache and Cache-Status, as field pairs: edgecache's Cache-Status member goes after those of
 * caches nearer the origin (`upstream`, the response's own Cache-Status), RFC 9211 §2.
 */
export function outcomeFields(xcache: XCache, cacheStatus: CacheStatusFields, upstream?: string | string[]): [string, XCache, string, string] {
  return ['x-cache', xcache, 'cache-status', appendCacheStatus(upstream, formatCacheStatus(cacheStatus))];
}

/** Counts outcomes in a process's statistics. */
export class OutcomeRecorder {
  constructor(private readonly stats: ProxyStats) {}

  /** One response with this outcome (the fields it carries come from outcomeFields, or a prepared hit head). */
  record(xcache: XCache): void {
    this.stats[OUTCOME_COUNTERS[xcache]]++;
  }
}
