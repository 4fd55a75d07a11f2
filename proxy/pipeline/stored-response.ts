/**
 * Writing stored entries to a client outside the hit path: in full, as a 304 to the client's own validators, as
 * byte ranges (one, or several as multipart/byteranges) or a 416. The fields come from the entry's wire-ready array (hit-head.ts), built once per
 * stored response; Age, X-Cache and Cache-Status are added per response.
 */
import type { ServerResponse } from 'node:http';
import { isChunked, writeBody, writeSequence, type Body } from '../../cache-store/body.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import type { CacheStatusFields } from '../../policies/http/cache-status.js';
import { notModifiedFields } from '../../policies/http/conditionals.js';
import { allowsContentLength } from '../../policies/http/message-body.js';
import { rangeFraming, type ByteRange, type RangeFraming, type RangePart, type StoredPart } from '../../policies/http/ranges.js';
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

/**
 * Byte ranges of a stored 200 (RFC 9110 §14): one range with Content-Range, several as multipart/byteranges. A
 * chunked body (the disk tier's) is read only in the chunks the ranges cover, with backpressure. `part`, for a
 * stored 206 (partial content, RFC 9111 §3.3): the body holds the representation's bytes from `part.start` on, of
 * `part.length` in all, and the ranges lie within it.
 */
export function writeRanges(res: ServerResponse, entry: CacheEntry, ranges: readonly ByteRange[], options: StoredResponseOptions, part?: StoredPart): void {
  const framing = rangeFraming(ranges, part?.length ?? entry.body.length, entry.meta.headers['content-type']);
  const offset = part?.start ?? 0;
  res.writeHead(206, withRangeFields(headersFor(entry, options, []), framing));
  if (!isChunked(entry.body) && framing.parts.length === 1) {
    const { start, end } = framing.parts[0] as RangePart;
    res.end(entry.body.subarray(start - offset, end + 1 - offset));
    return;
  }
  writeSequence(res, rangeBytes(entry.body, framing, offset));
}

function* rangeBytes(body: Body, framing: RangeFraming, offset: number): Iterable<Buffer> {
  for (const part of framing.parts) {
    if (part.head.length > 0) yield part.head;
    if (isChunked(body)) yield* body.chunks(part.start - offset, part.end + 1 - offset);
    else yield body.subarray(part.start - offset, part.end + 1 - offset);
  }
  if (framing.tail.length > 0) yield framing.tail;
}

/**
 * A response's fields made those of a 206 with `framing`: its own Content-Length and (multipart) Content-Type
 * replaced, Content-Range added for a single range.
 */
export function withRangeFields(fields: readonly WireValue[], framing: RangeFraming): WireValue[] {
  const out: WireValue[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    if (name === 'content-length' || name === 'content-range' || (framing.contentType !== undefined && name === 'content-type')) continue;
    out.push(name, fields[i + 1] as WireValue);
  }
  if (framing.contentType !== undefined) out.push('content-type', framing.contentType);
  if (framing.contentRange !== undefined) out.push('content-range', framing.contentRange);
  out.push('content-length', String(framing.contentLength));
  return out;
}

/** No requested range overlaps the stored 200: 416 with the length it has (RFC 9110 §15.5.17). */
export function writeRangeNotSatisfiable(res: ServerResponse, entry: CacheEntry, options: StoredResponseOptions): void {
  res.writeHead(416, notSatisfiableFields(headersFor(entry, options, []), entry.body.length));
  res.end();
}

/** A response's fields made those of a 416 for a representation of `length` bytes: no content, Content-Range. */
export function notSatisfiableFields(fields: readonly WireValue[], length: number): WireValue[] {
  const out: WireValue[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    if (name === 'content-type' || name === 'content-encoding' || name === 'content-length' || name === 'content-range') continue;
    out.push(name, fields[i + 1] as WireValue);
  }
  out.push('content-range', `bytes */${length}`, 'content-length', '0');
  return out;
}
