/**
 * Delivers an origin fill to one client: relays the streamed response (or serves the entry a revalidation
 * produced), answers the client's own conditional request with 304 when the new response matches it, and
 * aborts the client's response, rather than ending it cleanly, when the origin body breaks off.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheEntry } from '../cache-store/entry.js';
import { appendCacheStatus, formatCacheStatus, type CacheStatusFields, type ForwardReason, type XCache } from './cache-status.js';
import { CACHE_ONLY_RESPONSE_FIELDS, withVia } from './headers.js';
import { gatewayError } from './origin-client.js';
import type { FillConsumer, FillOutcome, OriginFill, StreamedHead } from './origin-fill.js';
import { clientValidatorsMatch, writeError } from './respond.js';
import type { ProxyStats } from './stats.js';

export interface ClientWriterContext {
  stats: ProxyStats;
  /** Why the request went to the origin (Cache-Status fwd=). */
  forward: ForwardReason;
  collapsed: boolean;
  /** Serves a stored entry (after a 304 refresh, or stale on error). */
  serveEntry: (req: IncomingMessage, res: ServerResponse, entry: CacheEntry, xcache: XCache, cacheStatus: CacheStatusFields) => void;
  /** A waiter that may not share the response fetches on its own. */
  fetchAlone: (req: IncomingMessage, res: ServerResponse) => void;
  /** Longest time a waiter waits for the shared response's headers before fetching on its own (ms). */
  waitLimit: number;
  onError?: (err: unknown) => void;
}

type WireValue = string | string[];

/**
 * The relayed response's headers for one (forward reason, collapsed) pair, built once per response: a
 * thousand collapsed waiters share one array instead of rebuilding it each.
 */
function missHeaders(outcome: StreamedHead, forward: ForwardReason, collapsed: boolean): WireValue[] {
  const cacheKey = `${forward}|${collapsed}`;
  const cached = outcome.wire?.get(cacheKey);
  if (cached) return cached;
  const cacheStatus = formatCacheStatus({
    fwd: forward,
    fwdStatus: outcome.status,
    stored: outcome.stored,
    ...(collapsed && { collapsed: true }),
    ...(outcome.reason && { detail: outcome.reason }),
  });
  const headers: WireValue[] = [];
  for (const name in outcome.headers) {
    if (name === 'cache-status' || name === 'via' || name === 'x-cache' || CACHE_ONLY_RESPONSE_FIELDS.has(name)) continue;
    headers.push(name, outcome.headers[name] as WireValue);
  }
  headers.push('via', withVia(outcome.headers.via));
  headers.push('x-cache', 'MISS', 'cache-status', appendCacheStatus(outcome.headers['cache-status'], cacheStatus));
  (outcome.wire ??= new Map()).set(cacheKey, headers);
  return headers;
}

export class ClientWriter implements FillConsumer {
  private bodyless = false;
  private finished = false;
  private waitTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly fill: OriginFill,
    private readonly ctx: ClientWriterContext,
  ) {
    res.on('close', () => {
      clearTimeout(this.waitTimer);
      if (!this.finished) this.fill.leave(this);
    });
    res.on('drain', () => this.fill.resume());
    if (ctx.collapsed) {
      // A waiter's patience is bounded: past it, it stops waiting for the shared fetch and goes on its own.
      this.waitTimer = setTimeout(() => {
        if (this.finished || res.headersSent) return;
        this.fill.leave(this);
        this.detached();
      }, ctx.waitLimit);
      this.waitTimer.unref();
    }
  }

  detached(): void {
    clearTimeout(this.waitTimer);
    this.finished = true;
    this.ctx.fetchAlone(this.req, this.res);
  }

  head(outcome: FillOutcome): void {
    clearTimeout(this.waitTimer);
    const { req, res, ctx } = this;
    if (outcome.kind === 'entry') {
      this.finished = true;
      if (outcome.how === 'shared') {
        ctx.stats.hits++;
        ctx.serveEntry(req, res, outcome.entry, 'HIT', { hit: true, collapsed: true });
        return;
      }
      const revalidated = outcome.how === 'revalidated';
      if (revalidated) ctx.stats.revalidated++;
      else {
        ctx.stats.stale++;
        ctx.stats.staleIfError++;
      }
      ctx.serveEntry(req, res, outcome.entry, revalidated ? 'REVALIDATED' : 'STALE', {
        fwd: ctx.forward,
        ...(outcome.originStatus !== undefined && { fwdStatus: outcome.originStatus }),
        ...(ctx.collapsed && { collapsed: true }),
        ...(!revalidated && { detail: outcome.originStatus === undefined ? 'stale-if-error; origin-unreachable' : 'stale-if-error' }),
      });
      return;
    }
    ctx.stats.misses++;
    const headers = missHeaders(outcome, ctx.forward, ctx.collapsed);
    if (outcome.status === 200 && clientValidatorsMatch(req.headers, outcome.headers)) {
      const kept: WireValue[] = [];
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i] as string;
        if (name !== 'content-length' && name !== 'content-type' && name !== 'content-encoding') kept.push(name, headers[i + 1] as WireValue);
      }
      res.writeHead(304, kept);
      res.end();
      this.bodyless = true;
      this.finished = true;
      return;
    }
    res.writeHead(outcome.status, headers);
    if (req.method === 'HEAD' || outcome.status === 204 || outcome.status === 304) {
      res.end();
      this.bodyless = true;
      this.finished = true;
    }
  }

  data(chunk: Buffer): boolean {
    if (this.bodyless) return true;
    return this.res.write(chunk);
  }

  end(): void {
    if (this.bodyless) return;
    this.finished = true;
    this.res.end();
  }

  error(err: unknown, beforeHead: boolean): void {
    clearTimeout(this.waitTimer);
    this.ctx.onError?.(err);
    this.finished = true;
    if (beforeHead) {
      const failure = gatewayError(err);
      writeError(this.res, failure.status, failure.message, { fwd: this.ctx.forward, detail: 'origin-error' }, 'MISS');
      return;
    }
    // Headers (and perhaps part of the body) are out: the only honest signal left is an aborted response.
    if (!this.bodyless) this.res.destroy();
  }
}
