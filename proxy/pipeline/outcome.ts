/**
 * What happened to a request, recorded in one place for every response the proxy port answers from the cache or
 * the origin: the counter in /stats, `edgecache_requests_total{cache,tier}` and the duration histogram in
 * /metrics, the access-log line (http/access-log.ts), `X-Cache` (one word, for curl) and `Cache-Status` (RFC 9211,
 * formatted by policies/http/cache-status.ts). edgecache's own error answers carry the two fields too
 * (http/error-answer.ts) but are counted as badRequests or originErrors, not as an outcome.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { appendCacheStatus, formatCacheStatus, type CacheStatusFields } from '../../policies/http/cache-status.js';
import type { ProxyMetrics, ResultTier } from '../admin/metrics.js';
import type { ProxyStats } from '../admin/stats.js';
import type { AccessLog } from '../http/access-log.js';
import type { ProxyResponse } from '../http/proxy-response.js';

export type XCache = 'HIT' | 'MISS' | 'STALE' | 'REVALIDATED' | 'BYPASS';

/** The /stats counter of each outcome. */
const OUTCOME_COUNTERS = {
  HIT: 'hits',
  MISS: 'misses',
  STALE: 'stale',
  REVALIDATED: 'revalidated',
  BYPASS: 'bypass',
} as const satisfies Record<XCache, keyof ProxyStats>;

/** Index of each outcome in metrics.ts CACHE_RESULTS. */
const CACHE_INDEX: Record<XCache, number> = { HIT: 0, MISS: 1, STALE: 2, REVALIDATED: 3, BYPASS: 4 };
/** Index of each tier in metrics.ts RESULT_TIERS. */
export const TIER_INDEX: Record<ResultTier, number> = { memory: 0, disk: 1, redis: 2, origin: 3 };

/**
 * A response's X-Cache and Cache-Status, as field pairs: edgecache's Cache-Status member goes after those of
 * caches nearer the origin (`upstream`, the response's own Cache-Status), RFC 9211 §2.
 */
/** What the access log reads of a request (an h2 stream's pseudo-headers give these). */
export interface H2LogRequest {
  method: string;
  url: string;
  headers: { host?: string | undefined };
}

export function outcomeFields(xcache: XCache, cacheStatus: CacheStatusFields, upstream?: string | string[]): [string, XCache, string, string] {
  return ['x-cache', xcache, 'cache-status', appendCacheStatus(upstream, formatCacheStatus(cacheStatus))];
}

/** Counts outcomes in a process's statistics and metrics, and observes each response's end. */
export class OutcomeRecorder {
  /** Called with the response as `this` when a response the hit path declined closes. */
  readonly finished: (this: ServerResponse) => void;

  constructor(
    private readonly stats: ProxyStats,
    private readonly metrics: ProxyMetrics,
    private readonly accessLog: AccessLog | undefined,
  ) {
    const observe = (res: ProxyResponse): void => this.observe(res);
    this.finished = function (this: ServerResponse) {
      observe(this as ProxyResponse);
    };
  }

  /**
   * One response with this outcome (the fields it carries come from outcomeFields); `tier`: where its body came
   * from. For the origin's answers (and revalidations) the time its headers were in hand is noted for the log.
   */
  record(xcache: XCache, res: ServerResponse, tier: ResultTier = 'origin', fromOrigin = tier === 'origin'): void {
    this.stats[OUTCOME_COUNTERS[xcache]]++;
    const r = res as ProxyResponse;
    r.cache = CACHE_INDEX[xcache];
    r.tier = TIER_INDEX[tier];
    if (fromOrigin) r.originAt = performance.now();
    this.metrics.countRequest(r.cache, r.tier);
  }

  /** Before a request the hit path declined goes on: its start, and its end observed. */
  track(req: IncomingMessage, res: ServerResponse, startedAt: number): void {
    const r = res as ProxyResponse;
    r.startedAt = startedAt;
    if (this.accessLog !== undefined) r.startBytes = req.socket.bytesWritten;
    res.once('close', this.finished);
  }

  /**
   * The hit path's fresh hit, written out synchronously: counted and observed at once (nothing is allocated
   * unless the access log is on). `startBytes`: the connection's bytesWritten before it, for the log.
   */
  hit(req: IncomingMessage, res: ServerResponse, tier: number, startedAt: number, startBytes: number): void {
    this.stats.hits++;
    this.metrics.countRequest(0, tier);
    const seconds = (performance.now() - startedAt) / 1000;
    this.metrics.requestDuration.observe(0, seconds);
    this.accessLog?.write(req, res.statusCode, 0, tier, req.socket.bytesWritten - startBytes, 0, seconds * 1000);
  }

  /**
   * The h2 hit path's fresh hit (no request or response object there): counted, timed and logged like an
   * HTTP/1.1 hit. `bytes`: the body length sent (h2 frames headers apart).
   */
  h2Hit(request: H2LogRequest, status: number, tier: number, startedAt: number, bytes: number): void {
    this.stats.hits++;
    this.metrics.countRequest(0, tier);
    const seconds = (performance.now() - startedAt) / 1000;
    this.metrics.requestDuration.observe(0, seconds);
    this.accessLog?.write(request as IncomingMessage, status, 0, tier, bytes, 0, seconds * 1000);
  }

  get logging(): boolean {
    return this.accessLog !== undefined;
  }

  private observe(res: ProxyResponse): void {
    const now = performance.now();
    const ms = now - res.startedAt;
    if (res.cache >= 0) this.metrics.requestDuration.observe(res.cache, ms / 1000);
    const req = res.req as IncomingMessage | undefined;
    if (this.accessLog === undefined || req === undefined) return;
    const originMs = res.originAt > 0 ? res.originAt - res.startedAt : 0;
    this.accessLog.write(req, res.statusCode, res.cache, res.tier, (req.socket?.bytesWritten ?? res.startBytes) - res.startBytes, originMs, ms);
  }
}
