/**
 * Writing stored entries to a client outside the hit path: in full, as a 304 to the client's own validators, as
 * byte ranges (one, or several as multipart/byteranges) or a 416. The fields come from the entry's wire-ready array (hit-head.ts), built once per
 * stored response; Age, X-Cache and Cache-Status are added per response.
 */
import type { ServerResponse } from 'node:http';
import { Readable, pipeline, type Transform } from 'node:stream';
import { bodyChunks, isChunked, writeBody, writeSequence, type Body } from '../../cache-store/body.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import type { CacheStatusFields } from '../../policies/http/cache-status.js';
import type { Form } from '../../policies/http/content-coding.js';
import { notModifiedFields } from '../../policies/http/conditionals.js';
import { allowsContentLength } from '../../policies/http/message-body.js';
import { rangeFraming, type ByteRange, type RangeFraming, type RangePart, type StoredPart } from '../../policies/http/ranges.js';
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

/**
 * Byte ranges of a stored 200 (RFC 9110 §14), in the form served: one range with Content-Range, several as
 * multipart/byteranges. A chunked body (the disk tier's) is read only in the chunks the ranges cover, with
 * backpressure. `part`, for a stored 206 (partial content, RFC 9111 §3.3): the body holds the representation's
 * bytes from `part.start` on, of `part.length` in all, and the ranges lie within it (a stored part is identity).
 */
export function writeRanges(res: ServerResponse, entry: CacheEntry, ranges: readonly ByteRange[], options: StoredResponseOptions, part?: StoredPart): void {
  // The form served: ranges of a compressed form are cut from that form's bytes (RFC 9110 §14.1.2).
  const body = formBody(entry, options.form ?? 'identity');
  const framing = rangeFraming(ranges, part?.length ?? body.length, entry.meta.headers['content-type']);
  const offset = part?.start ?? 0;
  res.writeHead(206, withRangeFields(headersFor(entry, options, []), framing));
  if (!isChunked(body) && framing.parts.length === 1) {
    const { start, end } = framing.parts[0] as RangePart;
    res.end(body.subarray(start - offset, end + 1 - offset));
    return;
  }
  writeSequence(res, rangeBytes(body, framing, offset));
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
  res.writeHead(416, notSatisfiableFields(headersFor(entry, options, []), formBody(entry, options.form ?? 'identity').length));
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
