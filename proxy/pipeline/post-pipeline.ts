/**
 * Cached POSTs (--cache-post): inference and embedding APIs, where a POST with a JSON body is a lookup. The body
 * is buffered up to --cache-post-max-body (never more), and the key is the method, the URL, a digest of the
 * canonical body and, unless --cache-post-shared, of the credentials (policies/http/post-key.ts). A fresh entry
 * is served from the cache; otherwise the request goes to the origin through an OriginFill, as a GET miss does:
 * identical concurrent requests (same key, so same credentials) share one origin call, the answer streams to
 * every client as it arrives (a text/event-stream token stream included) and is stored only once complete.
 *
 * Such a POST does not invalidate its URL: it is a lookup, not a write (RFC 9111 §4.4 is about the POSTs that go
 * to the origin as writes, which the pass-through still handles). A body over the limit is forwarded as it comes
 * and its answer relayed, not cached. The fast hit path is for GET and HEAD: a POST hit needs its body first, so
 * it is answered here, from the entry's prepared fields (stored-response.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { CacheEntry } from '../../cache-store/entry.js';
import type { RequestTarget } from '../../policies/http/cache-key.js';
import type { CacheStatusFields, ForwardReason } from '../../policies/http/cache-status.js';
import { parseCacheControl } from '../../policies/http/cache-control.js';
import { allowsContentLength, hasNoContent } from '../../policies/http/message-body.js';
import { keyedFields } from '../../policies/http/post-freshness.js';
import { bodyDigest, credentialDigest, isCachedPostPath, postKey, type PostKeyRules } from '../../policies/http/post-key.js';
import { writeError, writeOriginFailure } from '../http/error-answer.js';
import { relayResponse } from '../http/relay.js';
import type { PipelineOptions } from './cache-pipeline.js';
import { ClientWriter } from './client-writer.js';
import { OriginFill } from './origin-fill.js';
import { outcomeFields, type XCache } from './outcome.js';
import { writeStored } from './stored-response.js';

/** The cache pipeline's own options that cached POSTs use too, and the POST settings. */
export interface PostPipelineOptions
  extends Pick<
    PipelineOptions,
    'store' | 'freshness' | 'origin' | 'stats' | 'outcomes' | 'log' | 'now' | 'maxObjectSize' | 'forwarding' | 'jitter' | 'coalesce' | 'coalesceWait' | 'exposeTagHeaders'
  > {
  /** Path prefixes whose POSTs are cached (--cache-post). */
  prefixes: readonly string[];
  /** Largest body buffered for a key (--cache-post-max-body). */
  maxBody: number;
  /** Freshness (ms) of an answer without Cache-Control (--cache-post-ttl). */
  ttl: number;
  rules: PostKeyRules;
}

/** The request body: whole (at most maxBody bytes), or the part read before it grew past the limit. */
type ReadBody = { whole: true; body: Buffer } | { whole: false; head: Buffer[] };

export class PostPipeline {
  /** Fills in flight by coalescing key (the cache key, plus the credentials when answers are shared). */
  private readonly inflight = new Map<string, OriginFill>();
  private readonly keyed: ReadonlySet<string>;

  constructor(private readonly options: PostPipelineOptions) {
    this.keyed = keyedFields(options.rules.keyHeaders, options.rules.shared);
  }

  /** Whether a POST to this path (and query) is cached. */
  caches(path: string): boolean {
    return isCachedPostPath(path, this.options.prefixes);
  }

  async handle(req: IncomingMessage, res: ServerResponse, target: RequestTarget): Promise<void> {
    const read = await readBody(req, this.options.maxBody);
    if (read === undefined) return; // the client went away
    if (!read.whole) return this.forward(req, res, target, read.head);
    const { store, freshness, rules } = this.options;
    const credentials = credentialDigest(req.headers, rules);
    const key = postKey(target.key, bodyDigest(read.body, headerText(req.headers['content-type']), rules.ignoreFields), credentials);
    const entry = await store.lookupExact(key);
    if (res.destroyed) return;
    if (entry !== undefined) {
      const verdict = freshness.evaluate(entry.meta, req.headers, this.options.now());
      if (verdict === 'fresh') return this.serveEntry(req, res, entry, 'HIT', { hit: true });
      if (verdict === 'stale-allowed') return this.serveEntry(req, res, entry, 'STALE', { hit: true, detail: 'max-stale' });
    }
    if (req.headers['cache-control'] !== undefined && parseCacheControl(req.headers['cache-control']).has('only-if-cached')) {
      // RFC 9111 §5.2.1.7: from the cache or 504, never from the origin.
      writeError(res, 504, 'not in cache (only-if-cached)', { xcache: 'MISS', cacheStatus: { detail: 'only-if-cached' } });
      return;
    }
    // Answers shared across credentials are still fetched once per credential (only the stored copy is shared).
    const coalesceKey = rules.shared ? `${key} ${credentialDigest(req.headers, { ...rules, shared: false })}` : key;
    this.fill(req, res, target, read.body, key, coalesceKey, entry === undefined ? 'uri-miss' : 'stale');
  }

  private serveEntry = (_req: IncomingMessage, res: ServerResponse, entry: CacheEntry, xcache: XCache, cacheStatus: CacheStatusFields): void => {
    this.options.outcomes.record(xcache, res, this.options.store.tierOf(entry), xcache === 'REVALIDATED');
    writeStored(res, 'POST', entry, { xcache, cacheStatus, now: this.options.now() });
  };

  /** Joins the identical request's fill in flight, or starts one that later identical requests can join. */
  private fill(req: IncomingMessage, res: ServerResponse, target: RequestTarget, body: Buffer, key: string, coalesceKey: string, forward: ForwardReason): void {
    const { coalesce, stats } = this.options;
    const inflight = coalesce ? this.inflight.get(coalesceKey) : undefined;
    if (inflight && inflight.join(this.writer(req, res, target, body, key, inflight, forward, true), false, req.headers)) {
      stats.coalesced++;
      return;
    }
    const fill = this.createFill(req, target, body, key);
    if (coalesce && !this.inflight.has(coalesceKey)) {
      this.inflight.set(coalesceKey, fill);
      void fill.done.then(() => {
        if (this.inflight.get(coalesceKey) === fill) this.inflight.delete(coalesceKey);
      });
    }
    fill.join(this.writer(req, res, target, body, key, fill, forward, false), true, req.headers);
    stats.originFetches++;
    fill.start();
  }

  private writer(req: IncomingMessage, res: ServerResponse, target: RequestTarget, body: Buffer, key: string, fill: OriginFill, forward: ForwardReason, collapsed: boolean): ClientWriter {
    return new ClientWriter(req, res, fill, {
      outcomes: this.options.outcomes,
      stats: this.options.stats,
      forward,
      collapsed,
      waitLimit: this.options.coalesceWait,
      serveEntry: this.serveEntry,
      // A waiter that may not share the answer (private, no-store...) or waited too long: its own origin call.
      fetchAlone: (r, s) => {
        this.options.stats.coalesceDetached++;
        if (s.destroyed || s.writableEnded) return;
        const own = this.createFill(r, target, body, key);
        own.join(this.writer(r, s, target, body, key, own, forward, false), true, r.headers);
        this.options.stats.originFetches++;
        own.start();
      },
      onError: (err) => this.options.log.warn({ err, url: target.key }, 'origin fetch failed (cached POST)'),
    });
  }

  private createFill(req: IncomingMessage, target: RequestTarget, body: Buffer, key: string): OriginFill {
    const { origin, store, freshness, stats, maxObjectSize, jitter, now, exposeTagHeaders, ttl } = this.options;
    const headers = this.options.forwarding.requestHeaders(req.headers, target, req.socket.remoteAddress, true);
    // The body goes as one buffer: undici frames it with its Content-Length.
    delete headers['transfer-encoding'];
    const fill = new OriginFill(
      { origin, store, freshness, maxObjectSize, jitter, now, exposeTagHeaders },
      { primaryKey: target.key, path: target.path, headers, clientHeaders: req.headers, post: { key, body, ttl, keyed: this.keyed } },
    );
    void fill.done.then(() => {
      const summary = fill.summary;
      if (summary === 'stored') stats.stored++;
      else if (summary === 'not-stored') stats.notStored++;
      else if (summary === 'failed') stats.originError(fill.failure);
    });
    return fill;
  }

  /** A body over --cache-post-max-body: sent on as it comes (what was read, then the rest), answer relayed. */
  private async forward(req: IncomingMessage, res: ServerResponse, target: RequestTarget, head: Buffer[]): Promise<void> {
    const { origin, stats, outcomes, forwarding } = this.options;
    const cacheStatus = { fwd: 'request' as const, detail: 'body-too-large' };
    outcomes.record('BYPASS', res);
    stats.originFetches++;
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    async function* bodyStream(): AsyncGenerator<Buffer> {
      yield* head;
      for await (const chunk of req) yield chunk as Buffer;
    }
    try {
      const response = await origin.request({
        method: 'POST',
        path: target.path,
        headers: forwarding.requestHeaders(req.headers, target, req.socket.remoteAddress, false),
        body: Readable.from(bodyStream()),
        signal: abort.signal,
      });
      const status = response.statusCode;
      const headers = forwarding.responseHeaders(response.headers as Record<string, string | string[] | undefined>);
      const [xcacheName, xcache, cacheStatusName, cacheStatusValue] = outcomeFields('BYPASS', { ...cacheStatus, fwdStatus: status }, headers['cache-status']);
      headers[xcacheName] = xcache;
      headers[cacheStatusName] = cacheStatusValue;
      if (!allowsContentLength(status)) delete headers['content-length'];
      relayResponse(res, status, headers, response.body, {
        noContent: hasNoContent(status),
        failed: (err) => {
          stats.originError(err);
          writeOriginFailure(res, err, { cacheStatus: { ...cacheStatus, detail: 'origin-error' } });
        },
      });
    } catch (err) {
      if (abort.signal.aborted) return;
      stats.originError(err);
      writeOriginFailure(res, err, { cacheStatus: { ...cacheStatus, detail: 'origin-error' } });
    }
  }

  /** Waits for the fills in flight to settle (shutdown, tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.inflight.values()].map((f) => f.done));
  }
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Reads the request body, keeping at most `limit` bytes: the whole body when it fits, else the part read when it
 * grew past the limit (the rest still unread, for the forward). A declared Content-Length over the limit is not
 * read at all. Undefined when the request broke off.
 */
function readBody(req: IncomingMessage, limit: number): Promise<ReadBody | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ whole: false, head: [] });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes > limit) {
        cleanup();
        req.pause();
        resolve({ whole: false, head: chunks });
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ whole: true, body: Buffer.concat(chunks, bytes) });
    };
    const onGone = (): void => {
      cleanup();
      resolve(undefined);
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('aborted', onGone);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('aborted', onGone);
  });
}

/** The one-line answer when the POST path itself fails (never expected). */
export function postFailure(res: ServerResponse): void {
  if (res.headersSent) res.destroy();
  else writeError(res, 500, 'internal error');
}
