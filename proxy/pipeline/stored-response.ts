/**
 * Writing responses from the cache. A stored entry's headers are flattened once into a wire-ready array
 * (kept per EntryMeta, so an entry decoded again from disk with the same metadata reuses it) and serialized
 * once into a prepared head (raw-head.ts); a fresh hit then only refreshes the Age and Cache-Status values when
 * their whole seconds change, so the hit path writes a stored head and a stored Buffer without rebuilding either.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { writeBody } from '../../cache-store/body.js';
import type { CacheEntry, EntryMeta } from '../../cache-store/entry.js';
import { appendCacheStatus, formatCacheStatus, type CacheStatusFields, type XCache } from '../../policies/http/cache-status.js';
import { CACHE_ONLY_RESPONSE_FIELDS, withVia } from '../origin/forwarding.js';
import { flat, preparedHead, rawHeadSupported, serializeFields, setRawHead, statusLine, type PreparedHead } from '../http/raw-head.js';

type WireValue = string | string[];

interface Prepared {
  /** [name, value, ...] ending with age, x-cache, cache-status (HIT values). */
  hit: WireValue[];
  /** The same without the last three pairs and without content-length, for building other responses. */
  base: WireValue[];
  originCacheStatus: string | string[] | undefined;
  /** The Age the `hit` array (and `head`) currently carry. */
  age: number;
  /** Status line and the `hit` fields before Age, serialized; undefined when not prepared (see raw-head.ts). */
  headStart: string | undefined;
  /** The whole hit head for the current Age. */
  head: PreparedHead | undefined;
}

const SKIPPED_FROM_STORE = new Set(['age', 'content-length', 'cache-status', 'via', 'x-cache']);

function prepare(entry: CacheEntry): Prepared {
  const base: WireValue[] = [];
  const headers = entry.meta.headers;
  for (const name in headers) {
    if (SKIPPED_FROM_STORE.has(name) || CACHE_ONLY_RESPONSE_FIELDS.has(name)) continue;
    base.push(name, headers[name] as WireValue);
  }
  base.push('via', withVia(headers.via));
  // A 204 carries no Content-Length (RFC 9110 §8.6).
  const length = entry.meta.status === 204 ? [] : ['content-length', String(entry.body.length)];
  const hit = [...base, ...length, 'age', '', 'x-cache', 'HIT', 'cache-status', ''];
  const fields = rawHeadSupported() ? serializeFields(hit.slice(0, -6)) : undefined;
  const headStart = fields === undefined ? undefined : flat([statusLine(entry.meta.status), fields]);
  const prepared: Prepared = { hit, base, originCacheStatus: headers['cache-status'], age: NaN, headStart, head: undefined };
  preparedByMeta.set(entry.meta, prepared);
  return prepared;
}

/** Wire-ready headers per stored response; a meta object always describes one body, so its length is fixed. */
const preparedByMeta = new WeakMap<EntryMeta, Prepared>();

function prepared(entry: CacheEntry): Prepared {
  return preparedByMeta.get(entry.meta) ?? prepare(entry);
}

export function ageSeconds(entry: CacheEntry, now: number): number {
  return Math.max(0, Math.floor((now - entry.meta.ageBase) / 1000));
}

/** Remaining freshness in whole seconds, consistent with Age: lifetime - age (negative once stale). */
export function ttlSeconds(entry: CacheEntry, now: number): number {
  return Math.floor(entry.meta.lifetime / 1000) - ageSeconds(entry, now);
}

/**
 * A fresh hit's headers as the array writeHitHead falls back to (and npm run bench:micro times), reusing the
 * stored array while Age and ttl stay the same.
 */
export function hitHeaders(entry: CacheEntry, now: number): WireValue[] {
  return hitPrepared(entry, now).hit;
}

/**
 * The hit path: writes a fresh hit's status and headers, as a prepared head when the response allows it
 * (raw-head.ts), else through writeHead with the stored array.
 */
export function writeHitHead(res: ServerResponse, entry: CacheEntry, now: number): void {
  const p = hitPrepared(entry, now);
  if (p.head === undefined || !setRawHead(res, entry.meta.status, p.head)) res.writeHead(entry.meta.status, p.hit);
}

function hitPrepared(entry: CacheEntry, now: number): Prepared {
  const p = prepared(entry);
  const age = ageSeconds(entry, now);
  if (age !== p.age) {
    const ttl = Math.floor(entry.meta.lifetime / 1000) - age;
    const h = p.hit;
    const ageText = String(age);
    const cacheStatus = appendCacheStatus(p.originCacheStatus, formatCacheStatus({ hit: true, ttl }));
    h[h.length - 5] = ageText;
    h[h.length - 1] = cacheStatus;
    p.age = age;
    const tail = p.headStart === undefined ? undefined : serializeFields(['age', ageText, 'x-cache', 'HIT', 'cache-status', cacheStatus]);
    p.head = tail === undefined ? undefined : preparedHead(flat([p.headStart as string, tail]));
  }
  return p;
}

export interface StoredResponseOptions {
  xcache: XCache;
  cacheStatus: CacheStatusFields;
  now: number;
}

function headersFor(entry: CacheEntry, options: StoredResponseOptions, extra: WireValue[]): WireValue[] {
  const p = prepared(entry);
  return [
    ...p.base,
    ...extra,
    'age',
    String(ageSeconds(entry, options.now)),
    'x-cache',
    options.xcache,
    'cache-status',
    appendCacheStatus(p.originCacheStatus, formatCacheStatus({ ...options.cacheStatus, ttl: ttlSeconds(entry, options.now) })),
  ];
}

/** A stored response in full (200 or whatever status was stored). HEAD gets the headers only. */
export function writeStored(res: ServerResponse, method: string, entry: CacheEntry, options: StoredResponseOptions): void {
  // A 204 carries no Content-Length (RFC 9110 §8.6).
  const length = entry.meta.status === 204 ? [] : ['content-length', String(entry.body.length)];
  res.writeHead(entry.meta.status, headersFor(entry, options, length));
  if (method === 'HEAD') res.end();
  else writeBody(res, entry.body);
}

/** Fields a 304 carries (RFC 9110 §15.4.5), plus Last-Modified for caches downstream. */
const NOT_MODIFIED_FIELDS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified']);

export function writeNotModified(res: ServerResponse, entry: CacheEntry, options: StoredResponseOptions): void {
  const all = headersFor(entry, options, []);
  const out: WireValue[] = [];
  for (let i = 0; i < all.length; i += 2) {
    const name = all[i] as string;
    if (NOT_MODIFIED_FIELDS.has(name) || name === 'age' || name === 'x-cache' || name === 'cache-status' || name === 'via') {
      out.push(name, all[i + 1] as WireValue);
    }
  }
  res.writeHead(304, out);
  res.end();
}

/** A single byte range of a stored 200 (RFC 9110 §14). Returns false when the entry cannot serve the range. */
export function writeRange(res: ServerResponse, method: string, entry: CacheEntry, range: { start: number; end: number }, options: StoredResponseOptions): void {
  const length = entry.body.length;
  const extra: WireValue[] = ['content-range', `bytes ${range.start}-${range.end}/${length}`, 'content-length', String(range.end - range.start + 1)];
  res.writeHead(206, headersFor(entry, options, extra));
  if (method === 'HEAD') res.end();
  else writeBody(res, entry.body, range.start, range.end + 1);
}

export function writeRangeNotSatisfiable(res: ServerResponse, entry: CacheEntry, options: StoredResponseOptions): void {
  const all = headersFor(entry, options, ['content-range', `bytes */${entry.body.length}`, 'content-length', '0']);
  const out: WireValue[] = [];
  for (let i = 0; i < all.length; i += 2) {
    const name = all[i] as string;
    if (name === 'content-type' || name === 'content-encoding') continue;
    out.push(name, all[i + 1] as WireValue);
  }
  res.writeHead(416, out);
  res.end();
}

/** A short plain-text error (4xx from request checks, 502/504 from origin failures). */
export function writeError(res: ServerResponse, status: number, message: string, cacheStatus?: CacheStatusFields, xcache: XCache = 'BYPASS'): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${message}\n`;
  res.writeHead(status, [
    'content-type',
    'text/plain; charset=utf-8',
    'content-length',
    String(Buffer.byteLength(body)),
    'cache-control',
    'no-store',
    'x-cache',
    xcache,
    'cache-status',
    formatCacheStatus(cacheStatus ?? { fwd: 'bypass', detail: 'error' }),
  ]);
  res.end(body);
}

/**
 * A whole error response, as bytes for a socket that no ServerResponse owns (a request node:http could not
 * parse or handed over with its parser detached): the same one-line body, X-Cache and Cache-Status as
 * writeError, and `Connection: close`, since the caller closes the connection after it.
 */
export function closingErrorResponse(status: number, reason: string, message: string, extraFields = ''): string {
  const body = `${message}\n`;
  return (
    `HTTP/1.1 ${status} ${reason}\r\n${extraFields}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Cache-Control: no-store\r\nX-Cache: BYPASS\r\nCache-Status: ${formatCacheStatus({ fwd: 'bypass', detail: 'error' })}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** Whether a client's own validators match the stored response (RFC 9110 §13.1.2, §13.1.3). */
export function clientValidatorsMatch(request: IncomingHttpHeaders, stored: Record<string, string | string[] | undefined>): boolean {
  const inm = request['if-none-match'];
  if (inm !== undefined) {
    const etag = stored.etag;
    if (inm.trim() === '*') return true;
    if (typeof etag !== 'string') return false;
    const opaque = etag.replace(/^W\//, '');
    return inm.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === opaque);
  }
  const ims = request['if-modified-since'];
  if (ims !== undefined) {
    const since = Date.parse(ims);
    const lastModified = typeof stored['last-modified'] === 'string' ? Date.parse(stored['last-modified']) : NaN;
    return Number.isFinite(since) && Number.isFinite(lastModified) && lastModified <= since;
  }
  return false;
}

/**
 * A single satisfiable byte range from a Range header, 'unsatisfiable', or null when the whole representation
 * should be sent instead (no Range, several ranges, a failed If-Range, or a unit other than bytes).
 */
export function parseRange(request: IncomingHttpHeaders, stored: Record<string, string | string[] | undefined>, length: number): { start: number; end: number } | 'unsatisfiable' | null {
  const header = request.range;
  if (header === undefined) return null;
  const ifRange = request['if-range'];
  if (ifRange !== undefined) {
    const etag = stored.etag;
    const strongMatch = typeof etag === 'string' && !etag.startsWith('W/') && ifRange === etag;
    const dateMatch = typeof stored['last-modified'] === 'string' && ifRange === stored['last-modified'];
    if (!strongMatch && !dateMatch) return null;
  }
  const match = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!match) return null;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === '' && last === '') return null;
  let start: number;
  let end: number;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, length - suffix);
    end = length - 1;
  } else {
    start = Number(first);
    end = last === '' ? length - 1 : Math.min(Number(last), length - 1);
    if (last !== '' && Number(last) < start) return null;
  }
  if (start >= length || length === 0) return 'unsatisfiable';
  return { start, end };
}
