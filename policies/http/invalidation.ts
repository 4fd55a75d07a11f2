/**
 * Invalidation after unsafe requests (RFC 9111 §4.4): a non-error answer to a request whose method is not safe
 * makes the cache drop what it stored for the target URI, and for the same-origin URIs that Location and
 * Content-Location name.
 */
import { normalizeHost, schemeOf, type RequestTarget } from './cache-key.js';

/** Safe methods (RFC 9110 §9.2.1, and WebDAV's read-only ones). */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'REPORT', 'SEARCH', 'QUERY']);

/** Whether an answer with this status to a request with this method invalidates: unsafe method, 2xx or 3xx. */
export function invalidates(method: string, status: number): boolean {
  return !SAFE.has(method) && status >= 200 && status < 400;
}

/**
 * The cache keys an invalidating answer addresses: the target's, and those of same-origin URIs named by
 * Location / Content-Location (same scheme and normalised host as the target; anything else, or an unparseable
 * value, invalidates nothing).
 */
export function invalidatedKeys(target: RequestTarget, headers: Readonly<Record<string, string | string[] | undefined>>): string[] {
  const keys = [target.key];
  for (const name of ['location', 'content-location']) {
    const value = headers[name];
    if (typeof value !== 'string') continue;
    try {
      const url = new URL(value, `${target.scheme}://${target.host}${target.path}`);
      const scheme = schemeOf(url.protocol);
      if (scheme !== undefined && normalizeHost(url.host, scheme) === target.host) keys.push(target.host + url.pathname + url.search);
    } catch {
      // An unparseable Location invalidates nothing.
    }
  }
  return keys;
}
