/**
 * The hot loop: a fresh memory-tier (or disk-tier) hit answered before Fastify's router sees the request. A
 * synchronous lookup, then the stored head (hit-head.ts, raw-head.ts) and the stored Buffer written out (a disk
 * hit's body is a leased buffer, handed back to the store when the response finishes). Anything unusual (request
 * directives, validators, ranges, bodies, a malformed target, a stale or missing entry) returns false and the
 * request takes the full pipeline, which makes the same decisions slowly and completely.
 */
import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders as H2Headers, ServerHttp2Stream } from 'node:http2';
import type { CacheStore } from '../../cache-store/cache-store.js';
import { keyPrefix, type Scheme } from '../../policies/http/cache-key.js';
import { formBody, h2HitHeaders, servedForm, writeHitHead } from './hit-head.js';
import type { HotKeys } from '../admin/hot-keys.js';
import { checkH2Request, checkRequest } from './request-target.js';
import { TIER_INDEX, type OutcomeRecorder } from '../pipeline/outcome.js';

/** `startedAt`: performance.now() when the request reached edgecache. */
const MEMORY = TIER_INDEX.memory;
const DISK = TIER_INDEX.disk;

export type HitPath = (req: IncomingMessage, res: ServerResponse, startedAt: number) => boolean;

/** `scheme` is the listener's: it decides which port a Host may leave out (see policies/http/cache-key.ts). */
export function createHitPath(store: CacheStore, outcomes: OutcomeRecorder, now: () => number, scheme: Scheme = 'http', hotKeys?: HotKeys): HitPath {
  const logging = outcomes.logging;
  // '' for plain HTTP, 'https://' on a TLS listener (the scheme is part of the key).
  const prefix = keyPrefix(scheme);
  return function serveFreshHit(req, res, startedAt) {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const url = req.url as string;
    const headers = req.headers;
    if (asksMoreThanAFreshHit(headers)) return false;
    // The router's hook answers a request that fails the checks; a fragment is stripped from the key there.
    const host = checkRequest(req, scheme);
    if (typeof host !== 'string' || url.includes('#')) return false;
    const key = prefix + host + url;
    const entry = store.peek(key, headers);
    if (entry === undefined) return false;
    const time = now();
    // The stored form the client's Accept-Encoding prefers (memoised: no parsing per hit); none acceptable as
    // stored (a coding to undo, identity refused): the pipeline decides.
    const form = servedForm(entry, headers['accept-encoding']);
    if (form === undefined) return false;
    const body = formBody(entry, form);
    // (A leased body not used here is dropped: the pool's lease on it is garbage collected.)
    if (time >= entry.meta.ageBase + entry.meta.lifetime || !Buffer.isBuffer(body)) return false;
    const startBytes = logging ? req.socket.bytesWritten : 0;
    writeHitHead(res, entry, time, form);
    const leased = store.isLeased(body);
    if (!leased) {
      if (method === 'HEAD') res.end();
      else res.end(body);
    } else if (method === 'HEAD') {
      res.end();
      store.release(body);
    } else {
      // A disk hit's body is in a reusable buffer: hand it back once the socket has taken every byte.
      res.end(body, () => store.release(body));
    }
    outcomes.hit(req, res, leased ? DISK : MEMORY, startedAt, startBytes);
    hotKeys?.hit(key);
    return true;
  };
}

/** The h2 hit path: answers a fresh hit on an HTTP/2 stream (true), or leaves the stream untouched (false). */
export type H2HitPath = (stream: ServerHttp2Stream, headers: H2Headers, rawHeaders: readonly string[]) => boolean;

/**
 * Whether a request carries something only the full pipeline decides: request directives, validators, a range,
 * or a body. (The same test for HTTP/1.1 and h2 requests; h2 has no Transfer-Encoding, so it is never there.)
 */
function asksMoreThanAFreshHit(headers: H2Headers): boolean {
  return (
    headers['cache-control'] !== undefined ||
    headers.pragma !== undefined ||
    headers['if-none-match'] !== undefined ||
    headers['if-modified-since'] !== undefined ||
    headers.range !== undefined ||
    headers['content-length'] !== undefined ||
    headers['transfer-encoding'] !== undefined
  );
}

/** Stands for the request when the access log is off (nothing reads it). */
const NO_REQUEST = { method: '', url: '', headers: {} };

/** A stream reset by the client after its hit was answered: nothing to do (the listener keeps it from throwing). */
function ignoreStreamError(): void {}

/**
 * The same decisions as serveFreshHit for an HTTP/2 stream, answered with node:http2's core API: the prepared
 * header object (hit-head.ts h2HitHeaders) in `stream.respond()` and the stored Buffer in `stream.end()`. No
 * request or response object is made for a hit (the compatibility layer's cost); h2-streams.ts hands every other
 * stream to Fastify.
 */
export function createH2HitPath(store: CacheStore, outcomes: OutcomeRecorder, now: () => number, scheme: Scheme): H2HitPath {
  const prefix = keyPrefix(scheme);
  return function serveFreshH2Hit(stream, headers, rawHeaders) {
    const method = headers[':method'];
    if (method !== 'GET' && method !== 'HEAD') return false;
    if (asksMoreThanAFreshHit(headers)) return false;
    const host = checkH2Request(headers, rawHeaders, scheme);
    const url = headers[':path'] as string;
    if (typeof host !== 'string' || url.includes('#')) return false;
    const entry = store.peek(prefix + host + url, headers);
    if (entry === undefined) return false;
    const time = now();
    // As on HTTP/1.1: the stored form the client prefers, or the pipeline when none is acceptable as stored.
    const form = servedForm(entry, headers['accept-encoding']);
    if (form === undefined) return false;
    const body = formBody(entry, form);
    if (time >= entry.meta.ageBase + entry.meta.lifetime || !Buffer.isBuffer(body)) return false;
    if (stream.destroyed) {
      // The client reset the stream already: there is nobody to answer.
      if (store.isLeased(body)) store.release(body);
      return true;
    }
    const startedAt = performance.now();
    stream.on('error', ignoreStreamError);
    const fields = h2HitHeaders(entry, time, form);
    if (method === 'HEAD') {
      stream.respond(fields, { endStream: true });
      if (store.isLeased(body)) store.release(body);
    } else {
      stream.respond(fields);
      if (!store.isLeased(body)) stream.end(body);
      else stream.end(body, () => store.release(body));
    }
    const tier = store.isLeased(body) ? DISK : MEMORY;
    if (outcomes.logging) outcomes.h2Hit({ method, url, headers: { host } }, entry.meta.status, tier, startedAt, method === 'HEAD' ? 0 : body.length);
    else outcomes.h2Hit(NO_REQUEST, entry.meta.status, tier, startedAt, 0);
    return true;
  };
}
