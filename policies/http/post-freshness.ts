/**
 * Which answers to a cached POST (--cache-post) are stored, and for how long. The origin's Cache-Control (or
 * Expires, or a Surrogate-Control addressed to edgecache) decides when it sends one, with no-store and private
 * honoured as for any response; an answer without one is fresh for --cache-post-ttl. Only 200 answers are
 * stored: a 429, another 4xx or a 5xx says nothing about the next identical request. The key holds the body and
 * the credentials, not the other request fields, so an answer that varies on another field is not stored.
 */
import { parseVary } from './cache-key.js';

/** Request fields a POST key accounts for (the body's media type, and the credentials unless shared). */
export function keyedFields(keyHeaders: readonly string[], shared: boolean): ReadonlySet<string> {
  return new Set(['content-type', ...(shared ? [] : ['authorization', ...keyHeaders])]);
}

/**
 * Why a POST answer is not stored on top of the usual reasons, or null: a status other than 200, or a Vary
 * naming a field the key does not hold ('vary').
 */
export function postNotStoredReason(status: number, headers: Readonly<Record<string, string | string[] | undefined>>, keyed: ReadonlySet<string>): 'not-cacheable' | 'vary' | null {
  if (status !== 200) return 'not-cacheable';
  const vary = parseVary(headers.vary);
  if (vary === '*') return null; // (refused as vary-star by the usual rules)
  if (vary !== null && vary.some((field) => !keyed.has(field))) return 'vary';
  return null;
}

/**
 * The response fields the cache policy reads for a POST answer: the origin's, with `Cache-Control: max-age` of
 * the default TTL when the origin said nothing about freshness (no Cache-Control, Expires or Surrogate-Control).
 */
export function postPolicyHeaders(headers: Record<string, string | string[] | undefined>, ttlMs: number): Record<string, string | string[] | undefined> {
  if (headers['cache-control'] !== undefined || headers.expires !== undefined || headers['surrogate-control'] !== undefined) return headers;
  return { ...headers, 'cache-control': `max-age=${Math.floor(ttlMs / 1000)}` };
}
