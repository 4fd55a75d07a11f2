/**
 * Revalidating a stored response (RFC 9111 §4.3): the request the cache sends, which origin answers let a stale
 * copy stand in (RFC 5861 §4), how a 304 freshens the stored header fields (RFC 9111 §3.2, §4.3.4), and when a
 * 200 answer to a HEAD may freshen them the same way (§4.3.5).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { parseHttpDate } from './http-date.js';

type Fields = Record<string, string | string[]>;

/**
 * The client's request fields without its own validators and range: a revalidation asks about the stored
 * response with the stored validators (RFC 9111 §4.3.1), and fetches the whole representation.
 */
export function withoutClientValidators(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const copy: IncomingHttpHeaders = { ...headers };
  delete copy['if-none-match'];
  delete copy['if-modified-since'];
  delete copy['if-range'];
  delete copy.range;
  return copy;
}

/** Origin answers a stale entry may stand in for under stale-if-error (RFC 5861 §4): 500, 502, 503 and 504. */
export function isOriginError(status: number): boolean {
  return status === 500 || status === 502 || status === 503 || status === 504;
}

/**
 * Fields a 304 does not change in the stored response (RFC 9111 §3.2): those describing the stored body, and the
 * validator the stored body was selected by.
 */
const UNCHANGED_BY_304 = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'content-range', 'content-md5', 'etag']);

/**
 * The stored response's fields freshened by a 304 (RFC 9111 §3.2, §4.3.4): each field the 304 carries replaces
 * the stored one, except those that describe the stored body. `notModified` holds end-to-end fields only.
 */
export function freshenedHeaders(stored: Readonly<Fields>, notModified: Readonly<Fields>): Fields {
  const headers: Fields = { ...stored };
  for (const name in notModified) {
    if (UNCHANGED_BY_304.has(name)) continue;
    headers[name] = notModified[name] as string | string[];
  }
  return headers;
}

type ResponseFields = Readonly<Record<string, string | string[] | undefined>>;

/**
 * Whether a 200 answer to a HEAD describes the stored response it was sent about (RFC 9111 §4.3.5): every
 * validator the HEAD response carries (ETag, Last-Modified) has the stored response's value, and its Content-Length,
 * when it has one, is the stored body's length. Then the HEAD response's fields update the stored ones as a 304's
 * would (§3.2); otherwise the stored response is to be considered stale. A validator the HEAD response leaves out
 * is not compared; several field lines of one validator, or a Content-Length that is not one number, match nothing.
 */
export function headResponseMatches(stored: Readonly<Fields>, storedLength: number, head: ResponseFields): boolean {
  if (head.etag !== undefined && !sameEntityTag(stored.etag, head.etag)) return false;
  if (head['last-modified'] !== undefined && !sameDate(stored['last-modified'], head['last-modified'])) return false;
  const length = head['content-length'];
  if (length !== undefined) {
    const text = typeof length === 'string' ? length.trim() : undefined;
    if (text === undefined || !/^\d{1,15}$/.test(text) || Number(text) !== storedLength) return false;
  }
  return true;
}

/** The same entity-tag, character for character (a weak tag matches only the same weak tag). */
function sameEntityTag(stored: string | string[] | undefined, received: string | string[]): boolean {
  return typeof stored === 'string' && typeof received === 'string' && stored.trim() === received.trim();
}

/** The same instant: both HTTP-dates (in any of their three forms), or else the same text. */
function sameDate(stored: string | string[] | undefined, received: string | string[]): boolean {
  if (typeof stored !== 'string' || typeof received !== 'string') return false;
  const a = parseHttpDate(stored);
  const b = parseHttpDate(received);
  return a !== undefined && b !== undefined ? a === b : stored.trim() === received.trim();
}
