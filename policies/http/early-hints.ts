/**
 * Early Hints that edgecache sends itself (RFC 8297): the `Link` fields of a stored response that ask the client to
 * preload or preconnect, repeated in a 103 while the response is revalidated with the origin, so that the browser
 * starts fetching the page's assets during the round trip instead of after it.
 */

/** One link-value of a Link field (RFC 8288 §3): the target in angle brackets, then its parameters. */
const LINK_VALUE = /<[^>]*>(?:\s*;\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^,;\s]*))?)*/g;
const REL = /;\s*rel\s*=\s*(?:"([^"]*)"|([^,;\s]*))/i;
/** The relation types worth hinting before the final response (those browsers act on in a 103). */
const HINTED = new Set(['preload', 'preconnect', 'modulepreload']);

/** The link-values of `link` whose relation is preload, modulepreload or preconnect; empty when there are none. */
export function earlyHintLinks(link: string | string[] | undefined): string[] {
  if (link === undefined) return [];
  const out: string[] = [];
  for (const line of Array.isArray(link) ? link : [link]) {
    for (const value of line.match(LINK_VALUE) ?? []) {
      const rel = REL.exec(value);
      const types = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
      if (types.some((type) => HINTED.has(type))) out.push(value.trim());
    }
  }
  return out;
}
