/**
 * One string for each value that many stored responses repeat (`Content-Type: application/json`, the same
 * `Cache-Control`, the `Date` of one second...): a stored entry's fields hold these shared strings instead of a
 * copy each, as parsed from each response or decoded from each record. With many small entries the header values
 * are a good part of what an entry costs (a V8 string is 16 bytes plus its characters): `npm run
 * bench:entry-memory`, docs/benchmarks.md "Memory per entry".
 *
 * Only the fields whose values repeat across responses are shared (an ETag or a request id is unique: sharing
 * it would only churn the table). The table is bounded: when full it starts again, so a run of distinct values
 * (Last-Modified of every file of a bucket) costs at most a refill.
 */
import type { StoredHeaders } from './entry.js';

const SHARED_FIELDS = new Set([
  'content-type',
  'cache-control',
  'cdn-cache-control',
  'surrogate-control',
  'content-encoding',
  'content-language',
  'vary',
  'date',
  'last-modified',
  'expires',
  'server',
  'via',
  'accept-ranges',
  'access-control-allow-origin',
  'access-control-allow-credentials',
  'access-control-expose-headers',
  'timing-allow-origin',
  'x-content-type-options',
  'x-frame-options',
  'referrer-policy',
  'strict-transport-security',
  'content-security-policy',
  'cross-origin-resource-policy',
  'x-xss-protection',
]);

/** Longest value shared: longer ones are rarely identical across responses. */
const MAX_SHARED_LENGTH = 256;
const TABLE_MAX = 4096;
const table = new Map<string, string>();

function shared(value: string): string {
  const known = table.get(value);
  if (known !== undefined) return known;
  if (table.size >= TABLE_MAX) table.clear();
  table.set(value, value);
  return value;
}

/** Replaces, in place, the values of `headers` that responses repeat by one shared string each; returns `headers`. */
export function shareFieldValues(headers: StoredHeaders): StoredHeaders {
  for (const name in headers) {
    const value = headers[name];
    if (typeof value === 'string' && value.length <= MAX_SHARED_LENGTH && SHARED_FIELDS.has(name)) headers[name] = shared(value);
  }
  return headers;
}

/**
 * The stored form of a response's fields: a copy laid out compactly, its repeated values shared (shareFieldValues).
 * An object built field by field, as fields arrive, keeps four of them in the object itself and the rest in an
 * array of their own that grows in steps: about 40 bytes more per stored entry with five fields, 90 with twelve.
 * JSON.parse makes the object with room for exactly its fields. (A meta decoded from a tier's record already comes
 * from JSON.parse and only needs its values shared.)
 */
export function compactFields(headers: StoredHeaders): StoredHeaders {
  return shareFieldValues(JSON.parse(JSON.stringify(headers)) as StoredHeaders);
}
