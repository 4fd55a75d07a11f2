/**
 * Cache keys of POST requests (--cache-post): inference and embedding APIs are lookups sent as POST with a JSON
 * body, so the key is the method, the URL (the primary key) and a SHA-256 digest of the body, canonical JSON
 * when the Content-Type says JSON (canonical-json.ts), the bytes as sent otherwise. By default a digest of the
 * credentials (Authorization and the --cache-post-key-headers) joins the key, so that an answer fetched with one
 * credential is never served to another; the credentials themselves never appear in a key (keys are visible in
 * LMDB and Redis).
 *
 * A POST key is the primary key, a newline and a NUL-led secondary part: a Vary secondary key starts with a field
 * name, never NUL, so a GET can never select a POST entry, nor a POST a GET one. Purges by prefix, path and tag
 * reach POST entries as they reach variants; a purge by exact URL reaches them through their POST tag.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { canonicalJson } from './canonical-json.js';

export interface PostKeyRules {
  /** Top-level JSON members left out of the key (--cache-post-ignore-fields). */
  ignoreFields: ReadonlySet<string>;
  /** Lower-cased header fields that carry credentials besides Authorization (--cache-post-key-headers). */
  keyHeaders: readonly string[];
  /** Leave the credentials out of the key (--cache-post-shared). */
  shared: boolean;
}

/** Whether a path is one whose POSTs are cached (starts with one of the prefixes). */
export function isCachedPostPath(path: string, prefixes: readonly string[]): boolean {
  for (const prefix of prefixes) if (path.startsWith(prefix)) return true;
  return false;
}

/** The media type of a Content-Type value, lower-cased, without parameters ('' when absent). */
function mediaType(contentType: string | undefined): string {
  if (contentType === undefined) return '';
  const semicolon = contentType.indexOf(';');
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

/** application/json and the structured syntax suffix +json (RFC 6839). */
function isJsonMediaType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * SHA-256 of the body as the key sees it: its media type, then canonical JSON for a valid JSON body (ignoring
 * the named top-level members), or the bytes as sent for anything else (an invalid JSON body included).
 */
export function bodyDigest(body: Buffer, contentType: string | undefined, ignoreFields: ReadonlySet<string>): string {
  const type = mediaType(contentType);
  const hash = createHash('sha256');
  if (isJsonMediaType(type)) {
    let canonical: string | undefined;
    try {
      canonical = canonicalJson(utf8.decode(body), ignoreFields);
    } catch {
      // Not UTF-8: not JSON (RFC 8259 §8.1); digested as sent.
    }
    if (canonical !== undefined) return hash.update(`json\n${type}\n`).update(canonical).digest('base64url');
  }
  return hash.update(`raw\n${type}\n`).update(body).digest('base64url');
}

function fieldText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join('\n') : value;
}

/**
 * SHA-256 of the credentials the request carries (Authorization and the key headers), or '' when it carries
 * none (or the answers are shared across credentials).
 */
export function credentialDigest(headers: IncomingHttpHeaders, rules: PostKeyRules): string {
  if (rules.shared) return '';
  const hash = createHash('sha256');
  let any = false;
  for (const name of ['authorization', ...rules.keyHeaders]) {
    const value = fieldText(headers[name]);
    if (value === undefined) continue;
    any = true;
    hash.update(`${name}\u0000${value}\u0000`);
  }
  return any ? hash.digest('base64url') : '';
}

/** The full key of a cached POST: primary key, method, body digest and credential digest. */
export function postKey(primaryKey: string, body: string, credential: string): string {
  return `${primaryKey}\n\u0000POST ${body}${credential === '' ? '' : ` ${credential}`}`;
}

/**
 * The tag every POST entry of a URL carries (and its stored partial content, ranges.ts partialKey), so that a purge
 * (or invalidation) of the URL finds them through the tiers' tag index instead of a scan. It contains a space, which a Surrogate-Key or Cache-Tag (space-separated
 * tokens) never does, so no operator's tag can name it.
 */
export function postTag(primaryKey: string): string {
  return `edgecache-post ${primaryKey}`;
}
