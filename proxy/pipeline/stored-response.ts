/**
 * Writing stored entries to a client outside the hit path: in full, as a 304 to the client's own validators, as
 * a single byte range or a 416. The fields come from the entry's wire-ready array (hit-head.ts), built once per
 * stored response; Age, X-Cache and Cache-Status are added per response.
 */
import type { ServerResponse } from 'node:http';
import { writeBody } from '../../cache-store/body.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import type { CacheStatusFields } from '../../policies/http/cache-status.js';
import { notModifiedFields } from '../../policies/http/conditionals.js';
import { allowsContentLength } from '../../policies/http/message-body.js';
import { ageSeconds, storedFields, ttlSeconds, type WireValue } from '../http/hit-head.js';
import { outcomeFields, type XCache } from './outcome.js';

export interface StoredResponseOptions {
  xcache: XCache;
  cacheStatus: CacheStatusFields;
  now: number;
}

function headersFor(entry: CacheEntry, options: StoredResponseOptions, extra: WireValue[]): WireValue[] {
  const p = storedFields(entry);
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
  const length = allowsContentLength(entry.meta.status) ? ['content-length', String(entry.body.length)] : [];
  res.writeHead(entry.meta.status, headersFor(entry, options, length));
  if (method === 'HEAD') res.end();
  else writeBody(res, entry.body);
}

/** The client's validators match the stored response: 304, with the fields notModifiedFields keeps. */
export function writeNotModified(res: ServerResponse, entry: CacheEntry, options: StoredResponseOptions): void {
  res.writeHead(304, notModifiedFields(headersFor(entry, options, [])));
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
