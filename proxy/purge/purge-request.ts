/**
 * Purging: who may, and what a request addresses. Tokens are compared in constant time; a request body is
 * validated whole before anything is applied, so a bad purge changes nothing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { PurgeSelector } from '../../cache-store/purge.js';
import { keysForSchemes, normalizeHost, schemeOf } from '../../policies/http/cache-key.js';

export type AuthResult = 'ok' | 'disabled' | 'missing' | 'wrong';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Checks `Authorization: Bearer <token>` against the configured token, in constant time. */
export function authorizePurge(authorization: string | undefined, token: string | undefined): AuthResult {
  if (!token) return 'disabled';
  if (authorization === undefined) return 'missing';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match) return 'wrong';
  // Hashing first gives equal-length inputs, so timingSafeEqual reveals neither content nor length.
  return timingSafeEqual(digest(match[1] as string), digest(token)) ? 'ok' : 'wrong';
}

/** Upper bound on list lengths in one admin purge request. */
const MAX_PURGE_ITEMS = 10_000;

/** JSON schema of `POST /purge` (Fastify validates it; unknown fields are refused). */
export const PURGE_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    urls: { type: 'array', maxItems: MAX_PURGE_ITEMS, items: { type: 'string', minLength: 1, maxLength: 8192 } },
    prefixes: { type: 'array', maxItems: MAX_PURGE_ITEMS, items: { type: 'string', minLength: 1, maxLength: 8192 } },
    tags: { type: 'array', maxItems: MAX_PURGE_ITEMS, items: { type: 'string', minLength: 1, maxLength: 256 } },
    all: { type: 'boolean' },
    soft: { type: 'boolean' },
  },
} as const;

export interface PurgeBody {
  urls?: string[];
  prefixes?: string[];
  tags?: string[];
  all?: boolean;
  soft?: boolean;
}

/**
 * An absolute http(s) URL as cache keys: the host normalised as a request's Host is (normalizeHost: the URL's
 * scheme decides the default port), then the path and query, fragment removed; once as a plain-HTTP key and once
 * as a TLS one (policies/http/cache-key.ts keyPrefix), so that a purge reaches what either kind of client got.
 */
function keysOfUrl(text: string): string[] | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  const scheme = schemeOf(url.protocol);
  if (scheme === undefined) return null;
  const host = normalizeHost(url.host, scheme);
  if (host === null) return null;
  // URL keeps the path and query as given (percent-encoding included), which is what a client sends.
  return keysForSchemes(host, url.pathname + url.search);
}

/**
 * Turns a validated body into a selector. URLs and prefixes are absolute (`http://host/path`: that host) or
 * paths (`/path`: on every host). Returns an error message instead when any item is unusable.
 */
export function selectorFromBody(body: PurgeBody): { selector: PurgeSelector; soft: boolean } | { error: string } {
  const selector: PurgeSelector = { urls: [], keyPrefixes: [], pathPrefixes: [], tags: body.tags ?? [], all: body.all === true };
  const paths: string[] = [];
  for (const url of body.urls ?? []) {
    if (url.startsWith('/')) {
      paths.push(url.split('#')[0] as string);
      continue;
    }
    const keys = keysOfUrl(url);
    if (keys === null) return { error: `urls: "${url}" is neither an http(s) URL nor a path starting with /` };
    selector.urls?.push(...keys);
  }
  for (const prefix of body.prefixes ?? []) {
    if (prefix.startsWith('/')) {
      selector.pathPrefixes?.push(prefix);
      continue;
    }
    const keys = keysOfUrl(prefix);
    if (keys === null) return { error: `prefixes: "${prefix}" is neither an http(s) URL nor a path starting with /` };
    selector.keyPrefixes?.push(...keys);
  }
  if (paths.length > 0) selector.paths = paths;
  const empty = !selector.all && !selector.urls?.length && !selector.keyPrefixes?.length && !selector.pathPrefixes?.length && !selector.tags?.length && paths.length === 0;
  if (empty) return { error: 'nothing to purge: give urls, prefixes, tags or "all": true' };
  return { selector, soft: body.soft === true };
}
