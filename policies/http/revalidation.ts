/**
 * Revalidating a stored response (RFC 9111 §4.3): the request the cache sends, which origin answers let a stale
 * copy stand in (RFC 5861 §4), and how a 304 freshens the stored header fields (RFC 9111 §3.2, §4.3.4).
 */
import type { IncomingHttpHeaders } from 'node:http';

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
