/**
 * Surrogate keys (tags) an origin attaches to a response so that everything about one product, user or
 * section can be purged at once: Fastly's `Surrogate-Key: a b c` (space separated) and Cloudflare's
 * `Cache-Tag: a,b` (comma separated). Both may be present; the union is kept.
 */

export const TAG_FIELDS = ['surrogate-key', 'cache-tag'] as const;

/** Bounds so that one response cannot make the tag index grow without limit. */
const MAX_TAGS_PER_ENTRY = 128;
const MAX_TAG_LENGTH = 256;

function values(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

export function parseSurrogateKeys(headers: Record<string, string | string[] | undefined>): string[] {
  const tags = new Set<string>();
  for (const line of values(headers['surrogate-key'])) for (const tag of line.split(/\s+/)) addTag(tags, tag);
  for (const line of values(headers['cache-tag'])) for (const tag of line.split(',')) addTag(tags, tag.trim());
  return [...tags];
}

function addTag(tags: Set<string>, tag: string): void {
  if (tag.length === 0 || tag.length > MAX_TAG_LENGTH || tags.size >= MAX_TAGS_PER_ENTRY) return;
  tags.add(tag);
}
