/**
 * Slices (--slice-size): a large object filled as fixed-size byte ranges fetched from the origin one by one, each
 * kept as a record of its own, as nginx's slice module, ATS and Fastly do. Pure functions: where slice `index` of
 * an object lies, the key it is stored under, the validator that ties the slices of one representation together,
 * and which first answers may be sliced at all. The fill itself is proxy/pipeline/slice-fill.ts.
 */
import type { ByteRange, StoredPart } from './ranges.js';
import { parseContentRange } from './ranges.js';

type Fields = Readonly<Record<string, string | string[] | undefined>>;

/**
 * The key slice `index` of a URL is kept under: beside its GET entries and never selected by them (a Vary
 * secondary key never starts with NUL). It starts with the primary key, so key-prefix and path purges reach it;
 * the URL's tag (post-key.ts postTag) on every slice lets a URL purge find it.
 */
export function sliceKey(primaryKey: string, index: number): string {
  return `${primaryKey}\n\0SLICE ${index}`;
}

/** Bytes [start, end] of slice `index` of an object of `length` bytes cut in slices of `size`. */
export function sliceRange(index: number, size: number, length: number): ByteRange {
  const start = index * size;
  return { start, end: Math.min(start + size, length) - 1 };
}

/** How many slices an object of `length` bytes has. */
export function sliceCount(size: number, length: number): number {
  return Math.ceil(length / size);
}

/** The slices bytes [start, end] lie in: first and last index. */
export function slicesCovering(range: ByteRange, size: number): { first: number; last: number } {
  return { first: Math.floor(range.start / size), last: Math.floor(range.end / size) };
}

/**
 * The strong validator every slice of one representation carries (RFC 9110 §8.8.1): its strong ETag, or, without
 * an ETag, a Last-Modified at least a second before its Date (§8.8.2.2). Undefined when there is none: slices
 * that cannot be shown to come from one representation are never combined.
 */
export function sliceValidator(fields: Fields): string | undefined {
  const etag = fields.etag;
  if (etag !== undefined) return typeof etag === 'string' && !etag.trim().startsWith('W/') ? etag.trim() : undefined;
  const lastModified = fields['last-modified'];
  if (typeof lastModified !== 'string') return undefined;
  const modified = Date.parse(lastModified);
  const date = typeof fields.date === 'string' ? Date.parse(fields.date) : Number.NaN;
  return Number.isFinite(modified) && Number.isFinite(date) && date - modified >= 1000 ? lastModified.trim() : undefined;
}

/**
 * Whether a 206 (or a stored slice) is slice `index` of the representation `validator` names, `length` bytes long:
 * its Content-Range is exactly the slice's bytes of that length, and it carries the same strong validator.
 */
export function isSlice(fields: Fields, index: number, size: number, length: number, validator: string): boolean {
  const part = parseContentRange(fields['content-range']);
  if (part === undefined || part.length !== length) return false;
  const expected = sliceRange(index, size, length);
  return part.start === expected.start && part.end === expected.end && sliceValidator(fields) === validator;
}

/**
 * What the answer to a sliced fill's first request (`Range: bytes=0-(size-1)`) is: the first of several slices
 * (`slice`, with the object's length); the whole object in one part (`whole`: stored as a 200, as without slicing);
 * or a 206 that cannot be sliced (`unsliceable`: no strong validator, a Vary or Content-Encoding, a Content-Range
 * that is not the first slice). Whether the response may be stored at all is the freshness policy's question.
 */
export function firstSliceKind(fields: Fields, size: number): { kind: 'slice' | 'whole'; part: StoredPart } | { kind: 'unsliceable' } {
  const part = parseContentRange(fields['content-range']);
  if (part === undefined || part.start !== 0) return { kind: 'unsliceable' };
  if (part.end === part.length - 1 && part.length <= size) return { kind: 'whole', part };
  if (part.end !== size - 1) return { kind: 'unsliceable' };
  if (fields.vary !== undefined || fields['content-encoding'] !== undefined || sliceValidator(fields) === undefined) return { kind: 'unsliceable' };
  return { kind: 'slice', part };
}
