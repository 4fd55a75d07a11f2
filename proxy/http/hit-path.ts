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
import { writeHitHead } from './hit-head.js';
import type { HotKeys } from '../admin/hot-keys.js';
import { checkRequest } from './request-target.js';
import { TIER_INDEX, type OutcomeRecorder } from '../pipeline/outcome.js';

/** `startedAt`: performance.now() when the request reached edgecache. */
const MEMORY = TIER_INDEX.memory;
const DISK = TIER_INDEX.disk;

export type HitPath = (req: IncomingMessage, res: ServerResponse, startedAt: number) => boolean;

/** `scheme` is the listener's: it decides which port a Host may leave out (see policies/http/cache-key.ts). */
export function createHitPath(store: CacheStore, outcomes: OutcomeRecorder, now: () => number, scheme: Scheme = 'http', hotKeys?: HotKeys): HitPath {
  const logging = outcomes.logging;
  return function serveFreshHit(req, res, startedAt) {
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
    const key = host + url;
    const entry = store.peek(key, headers);
    if (entry === undefined) return false;
    const time = now();
    const body = entry.body;
    // (A leased body not used here is dropped: the pool's lease on it is garbage collected.)
    if (time >= entry.meta.freshUntil || !Buffer.isBuffer(body)) return false;
    const startBytes = logging ? req.socket.bytesWritten : 0;
    writeHitHead(res, entry, time);
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
