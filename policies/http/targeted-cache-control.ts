/**
 * Targeted cache-control fields (RFC 9213): `CDN-Cache-Control`, and edgecache's own `Edgecache-Cache-Control`,
 * each a Structured Field Dictionary (RFC 8941) of cache directives. A cache obeys the first field of its list
 * (most specific first) that is present and valid, instead of Cache-Control and Expires (§2.1); a field that
 * does not parse, or whose known directive has a value of the wrong type, is ignored as a whole (§2.2).
 */
import { parseDictionary, type Dictionary } from 'structured-headers';

/** The setting's default: edgecache's own field first, then the one every CDN obeys. */
export const DEFAULT_TARGETED_FIELDS = ['edgecache-cache-control', 'cdn-cache-control'];

/** The --targeted-cache-control setting (comma-separated names) as lower-case field names, in order. */
export function targetedFieldList(setting: string): string[] {
  return setting
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name.length > 0);
}

/** edgecache's own targeted field: obeyed, stored, and never sent on to clients (RFC 9213 §2.1). */
export const OWN_TARGETED_FIELD = 'edgecache-cache-control';

/** Directives whose value is a delta-seconds: an Integer (RFC 9213 §2.2), never negative. */
const INTEGER_DIRECTIVES = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error']);
/** Directives that only say they are there. */
const FLAG_DIRECTIVES = ['no-store', 'no-cache', 'private', 'public', 'must-revalidate', 'proxy-revalidate', 'must-understand', 'immutable'];

const MAX_DELTA = 2_147_483_648;

/**
 * The Cache-Control value equivalent to a valid targeted field (its known directives, in a fixed order), or null
 * when the field is absent, empty or invalid. `no-cache` and `private` with field names are taken unqualified:
 * the whole response is then not reused without revalidation, or not stored.
 */
export function targetedDirectives(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(', ') : value;
  if (text.trim() === '') return null;
  let dictionary: Dictionary;
  try {
    dictionary = parseDictionary(text);
  } catch {
    return null;
  }
  const parts: string[] = [];
  for (const name of INTEGER_DIRECTIVES) {
    const member = dictionary.get(name);
    if (member === undefined) continue;
    const bare = member[0];
    if (typeof bare !== 'number' || !Number.isInteger(bare) || bare < 0) return null;
    parts.push(`${name}=${Math.min(bare, MAX_DELTA)}`);
  }
  for (const name of FLAG_DIRECTIVES) if (dictionary.has(name)) parts.push(name);
  return parts.join(', ');
}

/**
 * The Cache-Control that governs edgecache's storage and freshness, from the first targeted field in `fields`
 * (lower-case names) that the response carries validly, or null when none applies.
 */
export function targetedCacheControl(headers: Readonly<Record<string, string | string[] | undefined>>, fields: readonly string[]): string | null {
  for (const name of fields) {
    const directives = targetedDirectives(headers[name]);
    if (directives !== null) return directives;
  }
  return null;
}
