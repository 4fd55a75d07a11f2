/**
 * Cache keys. The primary key is built from exactly what is sent to the origin: the lower-cased Host and the
 * request target (path and query, byte for byte, fragment removed). The secondary key selects a Vary variant
 * from the request headers the stored response nominated (RFC 9111 §4.1).
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface RequestTarget {
  /** Lower-cased Host, port included as sent. */
  host: string;
  /** Path and query as forwarded to the origin. */
  path: string;
  /** Primary cache key: host + path. */
  key: string;
}

export type TargetProblem = { problem: string };

// reg-name (RFC 3986 §3.2.2) with an optional port, or an IP-literal.
const HOST_PATTERN = /^(?:(?:[a-z0-9\-._~!$&'()*+,;=]|%[0-9a-f]{2})+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

// Hosts repeat; validating and lower-casing each one once keeps this off the per-request cost.
const hostMemo = new Map<string, string | null>();
const HOST_MEMO_LIMIT = 1024;

/** Lower-cased host when the Host value is well formed, else null. */
export function normalizeHost(raw: string): string | null {
  let normalized = hostMemo.get(raw);
  if (normalized !== undefined) return normalized;
  normalized = null;
  if (HOST_PATTERN.test(raw)) {
    const colon = raw.lastIndexOf(':');
    const port = colon > raw.lastIndexOf(']') ? Number(raw.slice(colon + 1)) : 0;
    if (port <= 65535) normalized = raw.toLowerCase();
  }
  if (hostMemo.size >= HOST_MEMO_LIMIT) hostMemo.clear();
  hostMemo.set(raw, normalized);
  return normalized;
}

/** How many Host fields the request carried (Node keeps only the first in `headers`). */
export function countHostFields(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) count++;
  }
  return count;
}

/**
 * Validates the request line's target and Host (RFC 9112 §3.2, §3.3): origin-form only, exactly one non-empty,
 * well-formed Host. The origin is configured, never taken from the request, so absolute-form is refused.
 */
export function parseRequestTarget(url: string, hostHeader: string | undefined, rawHeaders: readonly string[]): RequestTarget | TargetProblem {
  if (url.charCodeAt(0) !== 47 /* / */) {
    return { problem: url === '*' ? 'asterisk-form request target is not accepted' : 'request target must be a path (origin-form)' };
  }
  const hash = url.indexOf('#');
  const path = hash === -1 ? url : url.slice(0, hash);
  if (hostHeader === undefined || hostHeader === '') return { problem: 'missing or empty Host header' };
  if (countHostFields(rawHeaders) !== 1) return { problem: 'more than one Host header' };
  const host = normalizeHost(hostHeader);
  if (host === null) return { problem: 'malformed Host header' };
  return { host, path, key: host + path };
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

/** Secondary key: one `name=value` line per nominated field; an absent field matches only absence. */
export function varyKey(fields: readonly string[], headers: IncomingHttpHeaders): string {
  let key = '';
  for (const field of fields) key += `${field}=${normalizeFieldValue(headers[field])}\n`;
  return key;
}

/** Full key of one variant. */
export function variantKey(primary: string, secondary: string): string {
  return secondary === '' ? primary : `${primary}\n${secondary}`;
}
