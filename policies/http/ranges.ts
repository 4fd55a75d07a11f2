/**
 * Range requests (RFC 9110 §14): which byte ranges of a representation of known length a request asks for, and
 * how a 206 carries them (one range: Content-Range; several: multipart/byteranges, §14.6). Pure functions: the
 * stored-response writer (hits) and the client writer (misses, as the bytes arrive) both frame with them. Also
 * which 206 responses are kept as stored partial content, and which requests they answer (RFC 9111 §3.3).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Bytes [start, end], inclusive as in Content-Range. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Most range-specs one request may list. More is ignored as a whole (the representation is sent in full):
 * many small ranges cost far more to frame than they save (RFC 9110 §14.2 lets a server ignore such requests).
 */
export const MAX_RANGES = 64;

type Fields = Readonly<Record<string, string | string[] | undefined>>;

/**
 * Whether the representation described by `fields` is the one a client's If-Range names (RFC 9110 §13.1.5): an
 * entity tag compared strongly, or an HTTP-date equal to a Last-Modified that is itself a strong validator
 * (at least a second before Date, §8.8.2.2). No If-Range: true.
 */
export function ifRangeMatches(request: IncomingHttpHeaders, fields: Fields): boolean {
  const ifRange = request['if-range'];
  if (ifRange === undefined) return true;
  if (typeof ifRange !== 'string') return false; // several field lines: not one validator
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) {
    const etag = fields.etag;
    return typeof etag === 'string' && !etag.startsWith('W/') && !value.startsWith('W/') && value === etag.trim();
  }
  const lastModified = fields['last-modified'];
  if (typeof lastModified !== 'string' || value !== lastModified.trim()) return false;
  const modified = Date.parse(lastModified);
  const date = typeof fields.date === 'string' ? Date.parse(fields.date) : Number.NaN;
  return Number.isFinite(modified) && Number.isFinite(date) && date - modified >= 1000;
}

/**
 * The satisfiable byte ranges a GET's Range header asks of a representation of `length` bytes, sorted and with
 * overlapping or adjacent ranges merged (§14.6 allows coalescing whatever the order); 'unsatisfiable' when it
 * is valid but none of them is (a 416); null when the whole representation is to be sent (no Range, a failed
 * If-Range, another unit, a malformed or too long header: §14.2 says to ignore those).
 */
export function parseRanges(request: IncomingHttpHeaders, fields: Fields, length: number): ByteRange[] | 'unsatisfiable' | null {
  const header = request.range;
  if (header === undefined) return null;
  if (!ifRangeMatches(request, fields)) return null;
  const match = /^bytes=(.*)$/i.exec(header);
  if (!match) return null;
  const specs = (match[1] as string).split(',');
  if (specs.length > MAX_RANGES) return null;
  const ranges: ByteRange[] = [];
  let valid = 0;
  for (const raw of specs) {
    const spec = raw.trim();
    if (spec === '') continue; // an empty list element (RFC 9110 §5.6.1)
    const parts = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!parts) return null;
    const [, first, last] = parts as unknown as [string, string, string];
    if (first === '' && last === '') return null;
    valid++;
    if (first === '') {
      const suffix = Number(last);
      if (suffix === 0 || length === 0) continue;
      ranges.push({ start: Math.max(0, length - suffix), end: length - 1 });
      continue;
    }
    const start = Number(first);
    if (last !== '' && Number(last) < start) return null;
    if (start >= length) continue;
    ranges.push({ start, end: last === '' ? length - 1 : Math.min(Number(last), length - 1) });
  }
  if (valid === 0) return null;
  if (ranges.length === 0) return 'unsatisfiable';
  ranges.sort((a, b) => a.start - b.start);
  const merged: ByteRange[] = [ranges[0] as ByteRange];
  for (let i = 1; i < ranges.length; i++) {
    const next = ranges[i] as ByteRange;
    const prev = merged[merged.length - 1] as ByteRange;
    if (next.start <= prev.end + 1) prev.end = Math.max(prev.end, next.end);
    else merged.push(next);
  }
  return merged;
}

/** The single range of a Range header (the first of parseRanges'), for callers that serve one range only. */
export function parseRange(request: IncomingHttpHeaders, fields: Fields, length: number): ByteRange | 'unsatisfiable' | null {
  const ranges = parseRanges(request, fields, length);
  return ranges === null || ranges === 'unsatisfiable' ? ranges : (ranges[0] as ByteRange);
}

/** One part of a 206: the bytes [start, end] of the representation, preceded by `head` (multipart only). */
export interface RangePart extends ByteRange {
  head: Buffer;
}

/** How a 206 carries a set of ranges: its Content-Type (multipart only), Content-Length, and the parts. */
export interface RangeFraming {
  /** multipart/byteranges with its boundary, or undefined for a single range (the representation's own type). */
  contentType: string | undefined;
  /** Content-Range of a single-range 206, or undefined for multipart. */
  contentRange: string | undefined;
  contentLength: number;
  parts: RangePart[];
  /** Bytes after the last part (the closing boundary, multipart only). */
  tail: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** The framing of a 206 for `ranges` of a representation of `length` bytes of type `contentType`. */
export function rangeFraming(ranges: readonly ByteRange[], length: number, contentType: string | string[] | undefined): RangeFraming {
  if (ranges.length === 1) {
    const { start, end } = ranges[0] as ByteRange;
    return { contentType: undefined, contentRange: `bytes ${start}-${end}/${length}`, contentLength: end - start + 1, parts: [{ start, end, head: EMPTY }], tail: EMPTY };
  }
  const boundary = randomBytes(12).toString('hex');
  const type = typeof contentType === 'string' ? `Content-Type: ${contentType}\r\n` : '';
  let contentLength = 0;
  const parts = ranges.map(({ start, end }) => {
    const head = Buffer.from(`\r\n--${boundary}\r\n${type}Content-Range: bytes ${start}-${end}/${length}\r\n\r\n`, 'latin1');
    contentLength += head.length + end - start + 1;
    return { start, end, head };
  });
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  contentLength += tail.length;
  return { contentType: `multipart/byteranges; boundary=${boundary}`, contentRange: undefined, contentLength, parts, tail };
}

/**
 * Cuts a 206's body out of the representation's bytes as they arrive in order (a fill streaming from the
 * origin): push each chunk, write what it returns. Holds nothing: each output is a view of the input or a part head.
 */
export class RangeSlicer {
  private part = 0;
  private headSent = false;

  /** `offset`: where in the representation the bytes pushed start (a 206 being cut down: its first byte's). */
  constructor(
    private readonly framing: RangeFraming,
    private offset = 0,
  ) {}

  /** Whether every byte of the 206 has been returned. */
  get done(): boolean {
    return this.part > this.framing.parts.length;
  }

  /** The bytes of the 206 that `chunk` (the next bytes of the representation) yields. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const chunkStart = this.offset;
    const chunkEnd = chunkStart + chunk.length;
    this.offset = chunkEnd;
    const { parts } = this.framing;
    while (this.part < parts.length) {
      const part = parts[this.part] as RangePart;
      if (part.start >= chunkEnd) break;
      if (!this.headSent) {
        if (part.head.length > 0) out.push(part.head);
        this.headSent = true;
      }
      const from = Math.max(part.start, chunkStart);
      const to = Math.min(part.end + 1, chunkEnd);
      if (to > from) out.push(chunk.subarray(from - chunkStart, to - chunkStart));
      if (part.end + 1 > chunkEnd) break;
      this.part++;
      this.headSent = false;
    }
    if (this.part === parts.length) {
      if (this.framing.tail.length > 0) out.push(this.framing.tail);
      this.part++;
    }
    return out;
  }
}

/** The part of a representation a stored 206 holds: bytes [start, end] of `length`. */
export interface StoredPart extends ByteRange {
  length: number;
}

/**
 * The part a single-part 206 carries, from its Content-Range (RFC 9110 §14.4): `bytes first-last/complete-length`
 * with the complete length known and the part within it. Anything else (`*` for the length, several field lines,
 * an unsatisfied-range form) is undefined.
 */
export function parseContentRange(value: string | string[] | undefined): StoredPart | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^bytes[ \t]+(\d{1,15})-(\d{1,15})\/(\d{1,15})$/i.exec(value.trim());
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const length = Number(m[3]);
  return start <= end && end < length ? { start, end, length } : undefined;
}

/**
 * The part a 206 from the origin may be stored as (RFC 9111 §3.3), or undefined: a single part (its Content-Range
 * parses, so not multipart/byteranges) whose Content-Length, if it has one, is that many bytes (a body of unknown
 * length is counted as it arrives), and that does not vary (a stored part is looked up by URL alone). Whether its
 * cache directives allow storing it is the freshness policy's question, asked as for a 200 with the same fields.
 */
export function storablePart(fields: Fields, bodyLength: number | undefined): StoredPart | undefined {
  if (fields.vary !== undefined) return undefined;
  const part = parseContentRange(fields['content-range']);
  return part !== undefined && (bodyLength === undefined || bodyLength === part.end - part.start + 1) ? part : undefined;
}

/** Whether every range lies within the stored part: only then may the part answer the request (RFC 9111 §3.3). */
export function rangesWithin(ranges: readonly ByteRange[], part: ByteRange): boolean {
  return ranges.every((range) => range.start >= part.start && range.end <= part.end);
}

/**
 * The key a URL's stored partial content is kept under: beside its GET entries and never selected by them (a Vary
 * secondary key never starts with NUL, and a cached POST's key says POST).
 */
export function partialKey(primaryKey: string): string {
  return `${primaryKey}\n\0PARTIAL`;
}

/**
 * The strong validator a response carries, for combining partial responses (RFC 9110 §15.3.7.3, RFC 9111 §3.4):
 * its ETag when that is strong; without an ETag, a Last-Modified that is strong (at least a second before Date,
 * §8.8.2.2). Undefined when it has none (a weak ETag is no strong validator, whatever its Last-Modified).
 * Two responses share a strong validator when this is the same string for both.
 */
export function strongValidator(fields: Fields): string | undefined {
  const etag = fields.etag;
  if (etag !== undefined) {
    if (typeof etag !== 'string') return undefined;
    const tag = etag.trim();
    return tag.startsWith('"') ? `etag ${tag}` : undefined;
  }
  const lastModified = fields['last-modified'];
  if (typeof lastModified !== 'string' || typeof fields.date !== 'string') return undefined;
  const modified = Date.parse(lastModified);
  const date = Date.parse(fields.date);
  return Number.isFinite(modified) && Number.isFinite(date) && date - modified >= 1000 ? `date ${lastModified.trim()}` : undefined;
}

/** The If-Range that asks for the rest of a stored part only if it is still the same representation, if any. */
export function ifRangeFor(fields: Fields): string | undefined {
  const validator = strongValidator(fields);
  return validator?.slice(validator.indexOf(' ') + 1);
}

/**
 * The Range that asks the origin for what a stored part lacks: the rest after a part at the start, the start
 * before a part at the end. Undefined for a part in the middle (two ranges to ask for: the whole is fetched),
 * and for one that lacks nothing (a 206 of every byte: fetched whole, as before).
 */
export function missingRange(part: StoredPart): string | undefined {
  if (part.start === 0 && part.end === part.length - 1) return undefined;
  if (part.start === 0) return `bytes=${part.end + 1}-`;
  if (part.end === part.length - 1) return `bytes=0-${part.start - 1}`;
  return undefined;
}

/**
 * Two parts of one representation combined (RFC 9110 §15.3.7.3): their union when they overlap or adjoin and
 * describe the same complete length; undefined when they do not fit together.
 */
export function combinedPart(stored: StoredPart, next: StoredPart): StoredPart | undefined {
  if (stored.length !== next.length) return undefined;
  if (next.start > stored.end + 1 || stored.start > next.end + 1) return undefined;
  return { start: Math.min(stored.start, next.start), end: Math.max(stored.end, next.end), length: stored.length };
}
