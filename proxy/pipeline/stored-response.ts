/**
 * Writing stored entries to a client outside the hit path: in full, as a 304 to the client's own validators, as
 * a single byte range or a 416. The fields come from the entry's wire-ready array (hit-head.ts), built once per
 * stored response; Age, X-Cache and Cache-Status are added per response.
 */
import type { ServerResponse } from 'node:http';
import { Readable, pipeline, type Transform } from 'node:stream';
import { bodyChunks, writeBody } from '../../cache-store/body.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import type { CacheStatusFields } from '../../policies/http/cache-status.js';
import type { Form } from '../../policies/http/content-coding.js';
import { notModifiedFields } from '../../policies/http/conditionals.js';
import { allowsContentLength } from '../../policies/http/message-body.js';
import { ageSeconds, formBody, storedFields, ttlSeconds, type WireValue } from '../http/hit-head.js';
import { outcomeFields, type XCache } from './outcome.js';

export interface StoredResponseOptions {
  xcache: XCache;
  cacheStatus: CacheStatusFields;
  now: number;
  /** The stored form served (hit-head.ts servedForm); the body as stored when absent. */
  form?: Form;
}

/** The fields a response starts from: a stored form's, or those of a form made on the fly (hit-head.ts). */
type Fields = ReturnType<typeof storedFields>;

function headersFor(entry: CacheEntry, options: StoredResponseOptions, extra: WireValue[], fields?: Fields): WireValue[] {
  const p = fields ?? storedFields(entry, options.form);
  return [
    ...p.base,
    ...extra,
    'age',
    String(ageSeconds(entry, options.now)),
    ...outcomeFields(options.xcache, { ...options.cacheStatus, ttl: ttlSeconds(entry, options.now) }, p.originCacheStatus),
  ];
}

/** A stored response in full (200 or whatever status was stored). HEAD gets the headers only. */
export function writeStored(res: ServerResponse, method: string, entry: CacheEntry, options: StoredResponseOptions): void {
  const body = formBody(entry, options.form ?? 'identity');
  const length = allowsContentLength(entry.meta.status) ? ['content-length', String(body.length)] : [];
  res.writeHead(entry.meta.status, headersFor(entry, options, length));
  if (method === 'HEAD') res.end();
  else writeBody(res, body);
}

/**
 * A stored response through a transform made per request (the origin's coding undone for a client that does not
 * accept it, or a coding applied before the stored form exists): no Content-Length, chunked, with backpressure;
 * a transform that fails aborts the response. `fields` are the form's (hit-head.ts onTheFlyFields).
 */
export function writeTransformed(res: ServerResponse, method: string, entry: CacheEntry, options: StoredResponseOptions, fields: Fields, transform: Transform): void {
  res.writeHead(entry.meta.status, headersFor(entry, options, [], fields));
  if (method === 'HEAD' || !allowsContentLength(entry.meta.status)) {
    res.end();
    return;
  }
  pipeline(Readable.from(bodyChunks(entry.body)), transform, res, (err) => {
    if (err) res.destroy();
  });
}

/** The client's validators match the stored response: 304, with the fields notModifiedFields keeps. */
export function writeNotModified(res: ServerResponse, entry: CacheEntry, options: StoredResponseOptions, fields?: Fields): void {
  res.writeHead(304, notModifiedFields(headersFor(entry, options, [], fields)));
  res.end();
}

/** A single byte range of a stored 200 (RFC 9110 §14), in the form served. */
export function writeRange(res: ServerResponse, method: string, entry: CacheEntry, range: { start: number; end: number }, options: StoredResponseOptions): void {
  const body = formBody(entry, options.form ?? 'identity');
  const length = body.length;
  const extra: WireValue[] = ['content-range', `bytes ${range.start}-${range.end}/${length}`, 'content-length', String(range.end - range.start + 1)];
  res.writeHead(206, headersFor(entry, options, extra));
  if (method === 'HEAD') res.end();
  else writeBody(res, body, range.start, range.end + 1);
}

export function writeRangeNotSatisfiable(res: ServerResponse, entry: CacheEntry, options: StoredResponseOptions): void {
  const length = formBody(entry, options.form ?? 'identity').length;
  const all = headersFor(entry, options, ['content-range', `bytes */${length}`, 'content-length', '0']);
  const out: WireValue[] = [];
  for (let i = 0; i < all.length; i += 2) {
    const name = all[i] as string;
    if (name === 'content-type' || name === 'content-encoding') continue;
    out.push(name, all[i + 1] as WireValue);
  }
  res.writeHead(416, out);
  res.end();
}
