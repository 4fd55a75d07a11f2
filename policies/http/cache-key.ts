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
  /** Primary cache key: host + path. */
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

/** The target of a request whose Host checkTarget returned: path and query as forwarded (fragment removed), key. */
export function requestTarget(url: string, host: string, scheme: Scheme): RequestTarget {
  const hash = url.indexOf('#');
  const path = hash === -1 ? url : url.slice(0, hash);
  return { scheme, host, path, key: host + path };
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

function normalizeFieldValue(value: string | string[] | undefined): string {
  if (value === undefined) return ABSENT;
  const text = Array.isArray(value) ? value.join(', ') : value;
  // Whitespace around list separators is not significant (RFC 9110 §5.6.1).
  return text.trim().replace(/\s*,\s*/g, ',').replace(/\s+/g, ' ');
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
    key += `${field}=${normalizeFieldValue(value)}\n`;
  }
  return key;
}

/** Full key of one variant. */
export function variantKey(primary: string, secondary: string): string {
  return secondary === '' ? primary : `${primary}\n${secondary}`;
}
