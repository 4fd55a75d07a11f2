import { gatewayError, type OriginErrorKind } from '../origin/origin-client.js';

/** The counter of each kind of origin error (edgecache_origin_errors_total{kind} on /metrics). */
export const ORIGIN_ERROR_FIELDS = {
  refused: 'originErrorsRefused',
  dns: 'originErrorsDns',
  'connect-timeout': 'originErrorsConnectTimeout',
  'headers-timeout': 'originErrorsHeadersTimeout',
  'body-timeout': 'originErrorsBodyTimeout',
  reset: 'originErrorsReset',
  other: 'originErrorsOther',
} as const satisfies Record<OriginErrorKind, keyof ProxyStats>;

/** Counters shown by the admin API's /stats (and as Prometheus metrics, admin/metrics.ts). */
export class ProxyStats {
  hits = 0;
  misses = 0;
  stale = 0;
  revalidated = 0;
  bypass = 0;
  /** Requests answered 4xx by edgecache itself (malformed request target or Host). */
  badRequests = 0;
  /** Requests sent to the origin, for any reason. */
  originFetches = 0;
  /** Origin fetches that failed (refused, timed out, reset), in all and by kind (count them with originError()). */
  originErrors = 0;
  originErrorsRefused = 0;
  originErrorsDns = 0;
  originErrorsConnectTimeout = 0;
  originErrorsHeadersTimeout = 0;
  originErrorsBodyTimeout = 0;
  originErrorsReset = 0;
  originErrorsOther = 0;
  /** Responses stored, and responses fetched but not stored. */
  stored = 0;
  notStored = 0;
  /** Entries removed after an unsafe request (RFC 9111 §4.4). */
  invalidations = 0;
  /** Requests that waited for another request's origin fetch instead of making their own. */
  coalesced = 0;
  /** Waiters that could not share the response (or waited too long) and fetched on their own. */
  coalesceDetached = 0;
  /** stale-while-revalidate refreshes started in the background. */
  backgroundRefreshes = 0;
  /** Stale responses served because the origin failed (stale-if-error, or the operator's grace). */
  staleIfError = 0;
  /** Requests that skipped the collapsing queue because the URL recently proved uncacheable. */
  hitForMiss = 0;
  /** Purge requests applied, entries they affected, and purge attempts refused for authentication. */
  purges = 0;
  purgedEntries = 0;
  purgeAuthFailures = 0;
  /** With --redis: purges published to the other nodes, received from them, and publishes that failed. */
  purgesBroadcast = 0;
  purgesReceived = 0;
  purgeBroadcastFailures = 0;
  /** With --redis: times this node dropped its memory and disk tiers because it could not know which purges it missed. */
  localTierDrops = 0;

  /** Counts an origin request that failed with `err` (an undici or network error), by its kind. */
  originError(err: unknown): void {
    this.originErrors++;
    this[ORIGIN_ERROR_FIELDS[gatewayError(err).kind]]++;
  }

  toJSON(): Record<string, number> {
    return { ...this } as unknown as Record<string, number>;
  }
}

/** Counts one purge (or invalidation after an unsafe request), applied everywhere, that affected `affected` entries. */
export function countPurge(stats: ProxyStats, invalidation: boolean, affected: number): void {
  if (invalidation) {
    stats.invalidations += affected;
    return;
  }
  stats.purges++;
  stats.purgedEntries += affected;
}

/**
 * This process's memory, in bytes (see docs/reliability.md for what to expect): resident set, the JavaScript heap
 * in use and reserved, and memory outside the heap (Buffers' ArrayBuffers among it).
 */
export function processMemory(): Record<string, number> {
  const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapUsed, heapTotal, external, arrayBuffers };
}
