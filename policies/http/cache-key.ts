/**
 * Cache keys. The primary key is built from exactly what is sent to the origin: the normalised Host (see
 * {@link normalizeHost}) and the request target (path and query, byte for byte, fragment removed). The
 * secondary key selects a Vary variant from the request headers the stored response nominated (RFC 9111 §4.1).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import { normalizeAcceptEncoding } from './content-coding.js';

export interface RequestTarget {
  /** The scheme of the listener the request came in on. */
  scheme: Scheme;
  /** Normalised Host: lower-cased, no trailing dot, no default port. Forwarded as is. */
  host: string;
  /** Path and query as forwarded to the origin. */
  path: string;
  /** Primary cache key: host + path, after `https://` when the request came in over TLS (see {@link keyPrefix}). */
  key: string;
}

export interface TargetProblem {
  readonly problem: string;
}

/** The scheme of the listener a request came in on (or of a URL): it decides which port is the default one. */
export type Scheme = 'http' | 'https';

/** RFC 9110 §4.2.1, §4.2.2. */
const DEFAULT_PORT: Readonly<Record<Scheme, number>> = { http: 80, https: 443 };

/** The scheme of a URL's protocol (`http:` / `https:`), or undefined for any other. */
export function schemeOf(protocol: string): Scheme | undefined {
  return protocol === 'http:' ? 'http' : protocol === 'https:' ? 'https' : undefined;
}

// reg-name (RFC 3986 §3.2.2) with an optional port, or an IP-literal.
const HOST_PATTERN = /^(?:(?:[a-z0-9\-._~!$&'()*+,;=]|%[0-9a-f]{2})+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

// Hosts repeat; validating and normalising each one once keeps this off the per-request cost (the hit path calls
// it on every request: an LRUCache get allocates nothing). One memo per scheme, since the default port differs;
// the most recently seen spellings are kept, so a scan of made-up Hosts cannot grow it.
const HOST_MEMO_LIMIT = 1024;
/** A malformed Host, in the memo (which holds no null): never a normalised Host, which is never empty. */
const MALFORMED = '';
const hostMemos: Record<Scheme, LRUCache<string, string>> = { http: new LRUCache({ max: HOST_MEMO_LIMIT }), https: new LRUCache({ max: HOST_MEMO_LIMIT }) };

/**
 * The Host value in its one spelling, or null when it is malformed. Only spellings that name the same authority
 * are merged (RFC 3986 §6.2.2, §6.2.3; RFC 9110 §4.2.3): the name is lower-cased, a trailing dot (the DNS root,
 * `a.test.` is the fully qualified `a.test`) is removed, a port equal to the scheme's default port is dropped
 * (`a.test:80` on http is `a.test`), and a port is written without leading zeros. Nothing else is changed
 * (percent-encoding and IPv6 spellings are kept as sent). The key is built from this value and it is what the
 * origin receives (Host with --preserve-host, X-Forwarded-Host), so the origin and the cache agree on the host.
 */
export function normalizeHost(raw: string, scheme: Scheme): string | null {
  const memo = hostMemos[scheme];
  const known = memo.get(raw);
  if (known !== undefined) return known === MALFORMED ? null : known;
  const normalized = canonicalHost(raw, scheme);
  memo.set(raw, normalized ?? MALFORMED);
  return normalized;
}

function canonicalHost(raw: string, scheme: Scheme): string | null {
  if (!HOST_PATTERN.test(raw)) return null;
  const colon = raw.lastIndexOf(':');
  const hasPort = colon > raw.lastIndexOf(']');
  let name = (hasPort ? raw.slice(0, colon) : raw).toLowerCase();
  if (name.length > 1 && name.endsWith('.')) name = name.slice(0, -1);
  if (!hasPort) return name;
  const port = Number(raw.slice(colon + 1));
  if (port > 65535) return null;
  return port === DEFAULT_PORT[scheme] ? name : `${name}:${port}`;
}

/** How many Host fields the request carried (Node keeps only the first in `headers`). */
function countHostFields(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) count++;
  }
  return count;
}

const problem = (text: string): TargetProblem => Object.freeze({ problem: text });

/** What can be wrong with a request's target or Host; each one object, so that checking allocates nothing. */
export const TARGET_PROBLEMS = {
  asteriskForm: problem('asterisk-form request target is not accepted'),
  notOriginForm: problem('request target must be a path (origin-form)'),
  noHost: problem('missing or empty Host header'),
  severalHosts: problem('more than one Host header'),
  badHost: problem('malformed Host header'),
  authorityMismatch: problem('Host header differs from :authority'),
} as const;

/**
 * Validates the request line's target and Host (RFC 9112 §3.2, §3.3): origin-form only, exactly one non-empty,
 * well-formed Host. The origin is configured, never taken from the request, so absolute-form is refused.
 * `scheme` is the listener's. Returns the normalised Host, or the problem. Allocates nothing: the hit path
 * runs it on every request (see proxy/http/request-target.ts).
 */
export function checkTarget(url: string, hostHeader: string | undefined, rawHeaders: readonly string[], scheme: Scheme): string | TargetProblem {
  if (url.charCodeAt(0) !== 47 /* / */) return url === '*' ? TARGET_PROBLEMS.asteriskForm : TARGET_PROBLEMS.notOriginForm;
  if (hostHeader === undefined || hostHeader === '') return TARGET_PROBLEMS.noHost;
  if (countHostFields(rawHeaders) !== 1) return TARGET_PROBLEMS.severalHosts;
  return normalizeHost(hostHeader, scheme) ?? TARGET_PROBLEMS.badHost;
}

/**
 * What a primary key starts with: nothing for plain HTTP (the keys edgecache always had), `https://` for a request
 * that came in over TLS. The scheme is part of the key (RFC 9111 §2: the key is the target URI), so an answer given
 * to http clients (a redirect to https, say) is never served to https clients, and a cache that moves from a
 * plain to a TLS port, or a Redis tier shared with plain-HTTP nodes, keeps the two apart.
 */
export function keyPrefix(scheme: Scheme): string {
  return scheme === 'https' ? HTTPS_KEY_PREFIX : '';
}

const HTTPS_KEY_PREFIX = 'https://';

/** The primary key of `path` on `host` for each scheme: a purge by URL removes both (purging more is safe). */
export function keysForSchemes(host: string, path: string): string[] {
  return [host + path, HTTPS_KEY_PREFIX + host + path];
}

/** Where a primary key's host starts (after the scheme prefix of an https key). */
export function hostStart(key: string): number {
  return key.startsWith(HTTPS_KEY_PREFIX) ? HTTPS_KEY_PREFIX.length : 0;
}

/**
 * checkTarget for an HTTP/2 request (RFC 9113 §8.3.1): `:authority` stands for Host; a Host field may come
 * instead (a request translated from HTTP/1.1) or beside it, and then must say the same. Returns the normalised
 * authority or the problem; allocates nothing.
 */
export function checkH2Target(path: string, authority: string | undefined, host: string | string[] | undefined, scheme: Scheme): string | TargetProblem {
  if (path.charCodeAt(0) !== 47 /* / */) return path === '*' ? TARGET_PROBLEMS.asteriskForm : TARGET_PROBLEMS.notOriginForm;
  if (Array.isArray(host)) return TARGET_PROBLEMS.severalHosts;
  if (authority !== undefined && host !== undefined && host !== authority) return TARGET_PROBLEMS.authorityMismatch;
  const value = authority ?? host;
  if (value === undefined || value === '') return TARGET_PROBLEMS.noHost;
  return normalizeHost(value, scheme) ?? TARGET_PROBLEMS.badHost;
}

/** The target of a request whose Host checkTarget returned: path and query as forwarded (fragment removed), key. */
export function requestTarget(url: string, host: string, scheme: Scheme): RequestTarget {
  const hash = url.indexOf('#');
  const path = hash === -1 ? url : url.slice(0, hash);
  return { scheme, host, path, key: keyPrefix(scheme) + host + path };
}

/** checkTarget, then requestTarget. */
export function parseRequestTarget(url: string, hostHeader: string | undefined, rawHeaders: readonly string[], scheme: Scheme): RequestTarget | TargetProblem {
  const host = checkTarget(url, hostHeader, rawHeaders, scheme);
  return typeof host === 'string' ? requestTarget(url, host, scheme) : host;
}

/** Field names nominated by Vary, lower-cased, de-duplicated and sorted; '*' when Vary contains '*'. */
export function parseVary(vary: string | string[] | undefined): string[] | '*' | null {
  if (vary === undefined) return null;
  const text = Array.isArray(vary) ? vary.join(',') : vary;
  const fields = new Set<string>();
  for (const part of text.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '*') return '*';
    if (name) fields.add(name);
  }
  return fields.size === 0 ? null : [...fields].sort();
}

const ABSENT = '\u0000';

/** Fields whose values are compared case-insensitively: language tags (RFC 9110 §12.5.4, RFC 4647 §2). */
const CASE_INSENSITIVE_VALUES = new Set(['accept-language']);

/**
 * A request field's value in the one form that means the same to any origin (RFC 9111 §4.1 allows normalising
 * "in a manner that is known to be semantically equivalent"): several field lines combined into one list (RFC 9110
 * §5.3), optional whitespace around list and parameter separators dropped and leading/trailing whitespace trimmed
 * (§5.6.1, §5.6.6), Accept-Language lower-cased. Quoted strings are left exactly as they are; nothing is reordered,
 * dropped or otherwise guessed at, so two requests share a variant only when no origin could tell them apart.
 */
export function normalizeFieldValue(name: string, value: string | string[]): string {
  const text = Array.isArray(value) ? value.join(',') : value;
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '"') {
      // A quoted string, escapes included, is copied as it is.
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === ',' || c === ';') {
      out = out.replace(/[ \t]+$/, '') + c;
      i++;
      while (text[i] === ' ' || text[i] === '\t') i++;
      continue;
    }
    out += c;
    i++;
  }
  out = out.trim();
  return CASE_INSENSITIVE_VALUES.has(name) ? out.toLowerCase() : out;
}

/**
 * Secondary key: one `name=value` line per nominated field; an absent field matches only absence.
 * Accept-Encoding enters in its normalised form (content-coding.ts), so requests that edgecache would serve the
 * same form share one variant, and the origin is asked with that same value (proxy/origin/forwarding.ts).
 */
export function varyKey(fields: readonly string[], headers: IncomingHttpHeaders): string {
  let key = '';
  for (const field of fields) {
    const value = field === 'accept-encoding' ? normalizeAcceptEncoding(headers[field]) : headers[field];
    key += `${field}=${value === undefined ? ABSENT : normalizeFieldValue(field, value)}\n`;
  }
  return key;
}

/**
 * The fields nominated by a Vary as forwarded to the origin: normalised as for the cache key, so that the origin
 * chooses from exactly what edgecache compares.
 */
export function normalizeNominated(headers: Record<string, string | string[]>, fields: readonly string[]): void {
  for (const field of fields) {
    const value = headers[field];
    if (value !== undefined) headers[field] = normalizeFieldValue(field, value);
  }
}

/** Full key of one variant. */
export function variantKey(primary: string, secondary: string): string {
  return secondary === '' ? primary : `${primary}\n${secondary}`;
}
