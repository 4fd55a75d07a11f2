/**
 * Slices (--slice-size): a large object filled as fixed-size byte ranges fetched from the origin one by one, each
 * kept as a record of its own, as nginx's slice module, ATS and Fastly do. Pure functions: where slice `index` of
 * an object lies, the key it is stored under, whether a response is that slice of one representation, and which
 * first answers may be sliced at all. The fill itself is proxy/pipeline/slice-fill.ts.
 */
import type { ByteRange, StoredPart } from './ranges.js';
import { parseContentRange, strongValidator } from './ranges.js';

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
 * Whether a 206 (or a stored slice) is slice `index` of the representation `validator` names (ranges.ts
 * strongValidator: a strong ETag, or a strong Last-Modified without an ETag), `length` bytes long: its
 * Content-Range is exactly the slice's bytes of that length, and it carries the same strong validator. Slices that
 * cannot be shown to come from one representation are never combined.
 */
export function isSlice(fields: Fields, index: number, size: number, length: number, validator: string): boolean {
  const part = parseContentRange(fields['content-range']);
  if (part === undefined || part.length !== length) return false;
  const expected = sliceRange(index, size, length);
  return part.start === expected.start && part.end === expected.end && strongValidator(fields) === validator;
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
  if (fields.vary !== undefined || fields['content-encoding'] !== undefined || strongValidator(fields) === undefined) return { kind: 'unsliceable' };
  return { kind: 'slice', part };
}
