// Deterministic response bodies for the soak: every byte follows from (id, version, length), so the checker can
// tell from a body alone which URL and which version it belongs to, and whether any byte is wrong.
//
//   <id> v<version> <length>\n<sha256(id#version) in hex, repeated to the length>
//
// The id is the path (plus the variant for a Vary URL). The origin and the checker share one bounded cache of
// the bodies they built.
import { createHash } from 'node:crypto';

const MAX_CACHED_BYTES = 96 * 1024 * 1024;
const cache = new Map();
let cachedBytes = 0;

/** A small stable hash of a string (FNV-1a), for sizes and ETags. */
export function hash32(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The body of `id` at `version`, `length` bytes (at least the length of its first line). */
export function body(id, version, length) {
  const key = `${id}#${version}#${length}`;
  const hit = cache.get(key);
  if (hit !== undefined) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const head = Buffer.from(`${id} v${version} ${length}\n`);
  const block = Buffer.from(createHash('sha256').update(`${id}#${version}`).digest('hex'));
  const out = Buffer.alloc(Math.max(length, head.length));
  head.copy(out, 0);
  for (let at = head.length; at < out.length; at += block.length) block.copy(out, at, 0, Math.min(block.length, out.length - at));
  cache.set(key, out);
  cachedBytes += out.length;
  for (const [oldKey, old] of cache) {
    if (cachedBytes <= MAX_CACHED_BYTES) break;
    cache.delete(oldKey);
    cachedBytes -= old.length;
  }
  return out;
}

/** The ETag of `id` at `version`: the version is readable from it. */
export function etag(id, version) {
  return `"v${version}-${hash32(id).toString(16)}"`;
}

/** The version an ETag of etag() names, or undefined. */
export function etagVersion(value) {
  const match = typeof value === 'string' ? /^(?:W\/)?"v(\d+)-[0-9a-f]+"$/.exec(value) : null;
  return match ? Number(match[1]) : undefined;
}

/** What a body says it is: { id, version, length }, or undefined when its first line is not one of body()'s. */
export function describe(bytes) {
  const end = bytes.indexOf(10);
  if (end <= 0 || end > 4096) return undefined;
  const match = /^(.*) v(\d+) (\d+)$/.exec(bytes.subarray(0, end).toString('latin1'));
  if (!match) return undefined;
  return { id: match[1], version: Number(match[2]), length: Number(match[3]) };
}
