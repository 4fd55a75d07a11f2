/**
 * Conditional requests (RFC 9110 §13): whether a client's own validators match a response, so that the cache
 * answers 304 itself, and what that 304 carries.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { parseHttpDate } from './http-date.js';

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
    // Not an HTTP-date: the condition is ignored (RFC 9110 §13.1.3).
    const since = parseHttpDate(ims);
    if (since === undefined) return false;
    // The stored response's Last-Modified, or lacking one its Date (edgecache gives every stored response one:
    // the time it was received when the origin sent none), RFC 9111 §4.3.2.
    const modified = parseHttpDate(stored['last-modified']) ?? parseHttpDate(stored.date);
    return modified !== undefined && modified <= since;
  }
  return false;
}

/**
 * Representation metadata a 304 leaves out (RFC 9110 §15.4.5): it describes content that a 304 does not carry.
 * Last-Modified, a validator, stays: caches downstream use it when there is no ETag.
 */
const NOT_IN_304 = new Set(['content-type', 'content-encoding', 'content-language', 'content-length', 'content-range', 'content-md5']);

/**
 * The fields of the 304 that stands for a 200 with these fields (RFC 9110 §15.4.5): those a 304 must carry
 * (Cache-Control, Content-Location, Date, ETag, Expires, Vary), Last-Modified, and the fields about the exchange
 * rather than the content (Age, Via, X-Cache, Cache-Status, Set-Cookie, ...); the representation metadata goes.
 * One rule for every 304 edgecache writes: from a stored entry, and for a fetched response that matches the
 * client's validators.
 */
export function notModifiedFields(fields: ReadonlyArray<string | string[]>): Array<string | string[]> {
  const out: Array<string | string[]> = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    if (!NOT_IN_304.has(name)) out.push(name, fields[i + 1] as string | string[]);
  }
  return out;
}
