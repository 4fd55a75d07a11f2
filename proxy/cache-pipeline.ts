/**
 * The full GET/HEAD path: validate the request target, look the request up in every tier, and then serve it
 * fresh, serve it stale while refreshing, revalidate it, or fill it from the origin (RFC 9111 §4).
 * The hit path (hit-path.ts) short-cuts the commonest case; everything else is decided here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { CacheStore } from '../cache-store/cache-store.js';
import type { CacheEntry } from '../cache-store/entry.js';
import { parseRequestTarget, type RequestTarget } from '../policies/cache-key.js';
import { parseCacheControl, pragmaNoCache } from '../policies/cache-control.js';
import type { Freshness } from '../policies/freshness.js';
import type { CacheStatusFields, ForwardReason, XCache } from './cache-status.js';
import { ClientWriter } from './client-writer.js';
import { CACHE_ONLY_RESPONSE_FIELDS, endToEndResponseHeaders, originRequestHeaders, VIA, type ForwardingContext } from './headers.js';
import { gatewayError, type OriginClient } from './origin-client.js';
import { OriginFill, type FillConsumer } from './origin-fill.js';
import { clientValidatorsMatch, parseRange, writeError, writeNotModified, writeRange, writeRangeNotSatisfiable, writeStored } from './respond.js';
import type { ProxyStats } from './stats.js';
import { formatCacheStatus } from './cache-status.js';

export interface PipelineOptions {
  store: CacheStore;
  freshness: Freshness;
  origin: OriginClient;
  stats: ProxyStats;
  log: Logger;
  now: () => number;
  maxObjectSize: number;
  preserveHost: boolean;
  trustForwarded: boolean;
  jitter: () => number;
}

export class CachePipeline {
  /** Fills in flight by cache key, so that one stale entry is refreshed once. */
  private readonly inflight = new Map<string, OriginFill>();

  constructor(private readonly options: PipelineOptions) {}

  /** Handles a GET or HEAD that the hit path did not answer. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { stats, store, freshness, now } = this.options;
    const target = parseRequestTarget(req.url ?? '', req.headers.host, req.rawHeaders);
    if ('problem' in target) {
      stats.badRequests++;
      writeError(res, 400, `bad request: ${target.problem}`);
      return;
    }
    const entry = await store.lookup(target.key, req.headers);
    const onlyIfCached = req.headers['cache-control'] !== undefined && parseCacheControl(req.headers['cache-control']).has('only-if-cached');
    if (onlyIfCached) {
      // RFC 9111 §5.2.1.7: answer from the cache or with 504, never from the origin.
      const verdict = entry && freshness.evaluate(entry.meta, req.headers, now());
      if (entry && (verdict === 'fresh' || verdict === 'stale-allowed')) {
        stats.hits++;
        this.serveEntry(req, res, entry, 'HIT', { hit: true });
      } else {
        writeError(res, 504, 'not in cache (only-if-cached)', { fwd: 'miss', detail: 'only-if-cached' }, 'MISS');
      }
      return;
    }
    if (entry === undefined) {
      if (req.headers.range !== undefined) return this.relay(req, res, target, 'partial');
      return this.fill(req, res, target, undefined, 'uri-miss');
    }
    const time = now();
    switch (freshness.evaluate(entry.meta, req.headers, time)) {
      case 'fresh':
        stats.hits++;
        this.serveEntry(req, res, entry, 'HIT', { hit: true });
        return;
      case 'stale-allowed':
        stats.stale++;
        this.serveEntry(req, res, entry, 'STALE', { hit: true, detail: 'max-stale' });
        return;
      case 'stale-while-revalidate':
        stats.stale++;
        this.serveEntry(req, res, entry, 'STALE', { hit: true, fwd: 'stale', detail: 'stale-while-revalidate' });
        this.refreshInBackground(req, target, entry);
        return;
      case 'revalidate': {
        const forward: ForwardReason = requestForbidsReuse(req) ? 'request' : 'stale';
        return this.fill(req, res, target, entry, forward);
      }
    }
  }

  /** Sends a stored entry, honouring the client's validators and a single byte range. */
  serveEntry = (req: IncomingMessage, res: ServerResponse, entry: CacheEntry, xcache: XCache, cacheStatus: CacheStatusFields): void => {
    const method = req.method ?? 'GET';
    const options = { xcache, cacheStatus, now: this.options.now() };
    if (entry.meta.status === 200 && clientValidatorsMatch(req.headers, entry.meta.headers)) {
      writeNotModified(res, entry, options);
      return;
    }
    if (entry.meta.status === 200 && req.headers.range !== undefined) {
      const range = parseRange(req.headers, entry.meta.headers, entry.body.length);
      if (range === 'unsatisfiable') return writeRangeNotSatisfiable(res, entry, options);
      if (range !== null) return writeRange(res, method, entry, range, options);
    }
    writeStored(res, method, entry, options);
  };

  /** Fetches from the origin (a miss, or a revalidation of `stale`) and streams the answer to this client. */
  private fill(req: IncomingMessage, res: ServerResponse, target: RequestTarget, stale: CacheEntry | undefined, forward: ForwardReason): void {
    const fill = this.startFill(req, target, stale);
    const writer = new ClientWriter(req, res, fill, {
      stats: this.options.stats,
      forward,
      collapsed: false,
      serveEntry: this.serveEntry,
      onError: (err) => this.options.log.warn({ err, url: target.key }, 'origin fetch failed'),
    });
    fill.join(writer);
  }

  private startFill(req: IncomingMessage, target: RequestTarget, stale: CacheEntry | undefined): OriginFill {
    const { origin, store, freshness, stats, maxObjectSize, jitter, now } = this.options;
    stats.originFetches++;
    const fill = new OriginFill(
      { origin, store, freshness, maxObjectSize, jitter, now },
      {
        primaryKey: target.key,
        path: target.path,
        headers: originRequestHeaders(req.headers, this.forwarding(req, target), true),
        clientHeaders: req.headers,
        ...(stale && { stale }),
      },
    );
    return fill.start();
  }

  /** stale-while-revalidate: one background refresh per entry at a time; its outcome only updates the store. */
  private refreshInBackground(req: IncomingMessage, target: RequestTarget, stale: CacheEntry): void {
    const key = `refresh:${stale.meta.key}`;
    if (this.inflight.has(key)) return;
    const fill = this.startFill(req, target, stale);
    this.inflight.set(key, fill);
    const log = this.options.log;
    const sink: FillConsumer = {
      head: () => undefined,
      data: () => true,
      end: () => undefined,
      error: (err) => log.warn({ err, url: target.key }, 'background refresh failed'),
    };
    fill.join(sink);
    void fill.done.then(() => this.inflight.delete(key));
  }

  /** Streams a request the cache does not answer (e.g. a Range on a miss) straight from the origin. */
  private async relay(req: IncomingMessage, res: ServerResponse, target: RequestTarget, forward: ForwardReason): Promise<void> {
    const { origin, stats } = this.options;
    stats.bypass++;
    stats.originFetches++;
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      const response = await origin.request({
        method: req.method === 'HEAD' ? 'HEAD' : 'GET',
        path: target.path,
        headers: originRequestHeaders(req.headers, this.forwarding(req, target), false),
        signal: abort.signal,
      });
      const headers = endToEndResponseHeaders(response.headers as Record<string, string | string[] | undefined>);
      for (const name of CACHE_ONLY_RESPONSE_FIELDS) delete headers[name];
      const via = headers.via;
      headers.via = via === undefined ? VIA : `${Array.isArray(via) ? via.join(', ') : via}, ${VIA}`;
      headers['x-cache'] = 'BYPASS';
      headers['cache-status'] = formatCacheStatus({ fwd: forward, fwdStatus: response.statusCode });
      res.writeHead(response.statusCode, headers);
      response.body.on('error', () => res.destroy());
      response.body.pipe(res);
    } catch (err) {
      if (abort.signal.aborted) return;
      stats.originErrors++;
      const failure = gatewayError(err);
      writeError(res, failure.status, failure.message, { fwd: forward, detail: 'origin-error' });
    }
  }

  forwarding(req: IncomingMessage, target: RequestTarget): ForwardingContext {
    return {
      clientHost: target.host,
      hostHeader: this.options.preserveHost ? target.host : this.options.origin.host,
      clientAddress: req.socket.remoteAddress,
      trustForwarded: this.options.trustForwarded,
    };
  }

  /** Waits for background work (refreshes) to settle; used on shutdown and by tests. */
  async idle(): Promise<void> {
    await Promise.all([...this.inflight.values()].map((f) => f.done));
  }
}

function requestForbidsReuse(req: IncomingMessage): boolean {
  const cc = req.headers['cache-control'];
  if (cc !== undefined) {
    const directives = parseCacheControl(cc);
    return directives.has('no-cache') || directives.has('max-age') || directives.has('min-fresh');
  }
  return pragmaNoCache(req.headers.pragma);
}
