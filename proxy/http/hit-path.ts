/**
 * The hot loop: a fresh memory-tier (or disk-tier) hit answered before Fastify's router sees the request. A
 * synchronous lookup, then the stored head (hit-head.ts, raw-head.ts) and the stored Buffer written out (a disk
 * hit's body is a leased buffer, handed back to the store when the response finishes). Anything unusual (request
 * directives, validators, ranges, bodies, a malformed target, a stale or missing entry) returns false and the
 * request takes the full pipeline, which makes the same decisions slowly and completely.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheStore } from '../../cache-store/cache-store.js';
import type { Scheme } from '../../policies/http/cache-key.js';
import { formBody, servedForm, writeHitHead } from './hit-head.js';
import { checkRequest } from './request-target.js';
import type { OutcomeRecorder } from '../pipeline/outcome.js';

export type HitPath = (req: IncomingMessage, res: ServerResponse) => boolean;

/** `scheme` is the listener's: it decides which port a Host may leave out (see policies/http/cache-key.ts). */
export function createHitPath(store: CacheStore, outcomes: OutcomeRecorder, now: () => number, scheme: Scheme = 'http'): HitPath {
  return function serveFreshHit(req, res) {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const url = req.url as string;
    const headers = req.headers;
    if (
      headers['cache-control'] !== undefined ||
      headers.pragma !== undefined ||
      headers['if-none-match'] !== undefined ||
      headers['if-modified-since'] !== undefined ||
      headers.range !== undefined ||
      headers['content-length'] !== undefined ||
      headers['transfer-encoding'] !== undefined
    ) {
      return false;
    }
    // The router's hook answers a request that fails the checks; a fragment is stripped from the key there.
    const host = checkRequest(req, scheme);
    if (typeof host !== 'string' || url.includes('#')) return false;
    const entry = store.peek(host + url, headers);
    if (entry === undefined) return false;
    const time = now();
    // The stored form the client's Accept-Encoding prefers (memoised: no parsing per hit); none acceptable as
    // stored (a coding to undo, identity refused): the pipeline decides.
    const form = servedForm(entry, headers['accept-encoding']);
    if (form === undefined) return false;
    const body = formBody(entry, form);
    // (A leased body not used here is dropped: the pool's lease on it is garbage collected.)
    if (time >= entry.meta.freshUntil || !Buffer.isBuffer(body)) return false;
    outcomes.record('HIT');
    writeHitHead(res, entry, time, form);
    if (!store.isLeased(body)) {
      if (method === 'HEAD') res.end();
      else res.end(body);
    } else if (method === 'HEAD') {
      res.end();
      store.release(body);
    } else {
      // A disk hit's body is in a reusable buffer: hand it back once the socket has taken every byte.
      res.end(body, () => store.release(body));
    }
    return true;
  };
}
