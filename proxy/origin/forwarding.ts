/**
 * Header rules at the proxy boundary (RFC 9110 §7.6.1): hop-by-hop fields and the fields that Connection
 * nominates never cross it, in either direction; fields a client could use to steer the origin (forwarding and
 * URL-override headers) are dropped unless the client is trusted; and the proxy adds its own forwarding fields.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { StoredHeaders } from '../../cache-store/entry.js';
import { SURROGATE_CAPABILITY } from '../../policies/http/surrogate-control.js';
import { TAG_FIELDS } from '../../policies/http/surrogate-keys.js';

/** Hop-by-hop fields, plus those undici refuses as request headers. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Client-supplied fields that can change what the origin serves or believes about the client. */
const UNTRUSTED_FORWARDING = new Set([
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-real-ip',
  'x-original-url',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

/** Conditional and range fields a cache fill removes: the cache fetches the whole current representation. */
const FILL_STRIPPED = new Set(['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range']);

export const VIA = '1.1 edgecache';

/** Response fields addressed to the cache itself: stored, but never relayed to clients. */
export const CACHE_ONLY_RESPONSE_FIELDS = new Set(['surrogate-control']);

/** Lower-cased field names listed in Connection. */
export function connectionNominated(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(',') : value;
  const names = new Set<string>();
  for (const token of text.split(',')) {
    const name = token.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names.size === 0 ? null : names;
}

export function isHopByHop(name: string, nominated: Set<string> | null): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || (nominated !== null && nominated.has(name));
}

export interface ForwardingContext {
  /** Host the client asked for (lower-cased, validated). */
  clientHost: string;
  /** Host header to send: the client's, or the origin's when preserveHost is off. */
  hostHeader: string;
  clientAddress: string | undefined;
  trustForwarded: boolean;
}

function appendList(existing: string | string[] | undefined, value: string): string {
  if (existing === undefined) return value;
  return `${Array.isArray(existing) ? existing.join(', ') : existing}, ${value}`;
}

/** Adds the proxy's own forwarding fields to headers bound for the origin. */
export function addForwardingHeaders(out: Record<string, string | string[]>, incoming: IncomingHttpHeaders, ctx: ForwardingContext): void {
  out.host = ctx.hostHeader;
  const address = ctx.clientAddress ?? 'unknown';
  out['x-forwarded-for'] = ctx.trustForwarded ? appendList(incoming['x-forwarded-for'], address) : address;
  if (!ctx.trustForwarded || out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = 'http';
  if (!ctx.trustForwarded || out['x-forwarded-host'] === undefined) out['x-forwarded-host'] = ctx.clientHost;
  out.via = withVia(incoming.via);
  out['surrogate-capability'] = appendList(incoming['surrogate-capability'], SURROGATE_CAPABILITY);
}

/**
 * Request headers for the origin. `fill` marks a cache fill: validators and Range are removed so the cache
 * receives the full representation, and the body-framing fields go because a GET is forwarded without its body.
 */
export function originRequestHeaders(incoming: IncomingHttpHeaders, ctx: ForwardingContext, fill: boolean): Record<string, string | string[]> {
  const nominated = connectionNominated(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || name === 'host' || name === 'expect' || name === 'via') continue;
    if (isHopByHop(name, nominated)) continue;
    if (!ctx.trustForwarded && UNTRUSTED_FORWARDING.has(name)) continue;
    if (fill && (FILL_STRIPPED.has(name) || name === 'content-length')) continue;
    out[name] = value;
  }
  addForwardingHeaders(out, incoming, ctx);
  return out;
}

/** A Via value with this proxy appended (RFC 9110 §7.6.3). */
export function withVia(existing: string | string[] | undefined): string {
  return appendList(existing, VIA);
}

/**
 * Headers of a response relayed without the cache (pass-through, a Range on a miss): end-to-end fields only,
 * minus those addressed to the cache itself (and the tag fields unless exposed), with Via appended.
 */
export function relayedResponseHeaders(headers: Record<string, string | string[] | undefined>, exposeTagHeaders: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = endToEndResponseHeaders(headers);
  for (const name of CACHE_ONLY_RESPONSE_FIELDS) delete out[name];
  if (!exposeTagHeaders) for (const name of TAG_FIELDS) delete out[name];
  out.via = withVia(out.via);
  return out;
}

/** Response headers as they may be stored and relayed: hop-by-hop and Connection-nominated fields removed. */
export function endToEndResponseHeaders(headers: Record<string, string | string[] | undefined>): StoredHeaders {
  const nominated = connectionNominated(headers.connection);
  const out: StoredHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || isHopByHop(name, nominated)) continue;
    out[name] = value;
  }
  return out;
}
