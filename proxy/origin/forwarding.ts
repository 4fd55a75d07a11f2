/**
 * The header fields that cross the proxy towards the origin, and back to clients on responses relayed without
 * the cache. Besides the intermediary's rules (policies/http/intermediary.ts: hop-by-hop fields, Via), fields a
 * client could use to steer the origin (forwarding and URL-override headers) are dropped unless the client is
 * trusted, and the proxy adds its own forwarding fields. One Forwarding object per process builds them for the
 * cache fills, the relay of a Range on a miss, and the pass-through alike.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { appendList, connectionNominated, endToEndResponseHeaders, isHopByHop, withVia } from '../../policies/http/intermediary.js';
import type { RequestTarget } from '../../policies/http/cache-key.js';
import { SURROGATE_CAPABILITY, SURROGATE_ONLY_FIELDS } from '../../policies/http/surrogate-control.js';
import { TAG_FIELDS } from '../../policies/http/surrogate-keys.js';
import { isFormEtag, normalizeAcceptEncoding, originEtags } from '../../policies/http/content-coding.js';

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

export interface ForwardingOptions {
  /** The origin's own Host (sent when preserveHost is off). */
  originHost: string;
  /** Send the client's Host to the origin (--preserve-host). */
  preserveHost: boolean;
  /** Keep the client's forwarding fields and append to them (--trust-forwarded). */
  trustForwarded: boolean;
  /** Relay Surrogate-Key / Cache-Tag to clients (--expose-tag-headers). */
  exposeTagHeaders: boolean;
  /**
   * Whether edgecache serves stored responses in content codings of its own (--compress not off): then the entity
   * tags it derived for them (content-coding.ts formEtag) are translated back in conditionals sent upstream.
   */
  compress?: boolean;
}

export class Forwarding {
  constructor(private readonly options: ForwardingOptions) {}

  /**
   * Request headers for the origin. `fill` marks a cache fill: validators and Range are removed so the cache
   * receives the full representation, and the body-framing fields go because a GET is forwarded without its
   * body. `clientAddress` is the peer's address (X-Forwarded-For).
   */
  requestHeaders(incoming: IncomingHttpHeaders, target: RequestTarget, clientAddress: string | undefined, fill: boolean): Record<string, string | string[]> {
    const { trustForwarded } = this.options;
    const nominated = connectionNominated(incoming.connection);
    const out: Record<string, string | string[]> = {};
    for (const name in incoming) {
      const value = incoming[name];
      if (value === undefined || name === 'host' || name === 'expect' || name === 'via') continue;
      // HTTP/2 pseudo-header fields (:method, :path, :authority, :scheme) are the request line, not fields.
      if (name.charCodeAt(0) === 58 /* : */) continue;
      if (isHopByHop(name, nominated)) continue;
      if (!trustForwarded && UNTRUSTED_FORWARDING.has(name)) continue;
      if (fill && (FILL_STRIPPED.has(name) || name === 'content-length')) continue;
      out[name] = value;
    }
    // The origin is asked with the Accept-Encoding the cache key holds (content-coding.ts), so it chooses for the
    // request edgecache serves: never a coding edgecache cannot decode for another client. With --compress on, a
    // request that accepts identity only (or sent no Accept-Encoding) asks for `identity` in so many words: without
    // the field an origin may use any coding (RFC 9110 §12.5.3), one edgecache could not undo for the next client.
    const acceptEncoding = normalizeAcceptEncoding(incoming['accept-encoding']) ?? (this.options.compress ? 'identity' : undefined);
    if (acceptEncoding === undefined) delete out['accept-encoding'];
    else out['accept-encoding'] = acceptEncoding;
    if (this.options.compress) translateValidators(out);
    out.host = this.options.preserveHost ? target.host : this.options.originHost;
    const address = clientAddress ?? 'unknown';
    out['x-forwarded-for'] = trustForwarded ? appendList(incoming['x-forwarded-for'], address) : address;
    // The scheme the client used: https on a TLS listener (with TLS terminated here, the origin still gets HTTP/1.1).
    if (!trustForwarded || out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = target.scheme;
    if (!trustForwarded || out['x-forwarded-host'] === undefined) out['x-forwarded-host'] = target.host;
    out.via = withVia(incoming.via);
    out['surrogate-capability'] = appendList(incoming['surrogate-capability'], SURROGATE_CAPABILITY);
    return out;
  }

  /**
   * Headers of a response relayed without the cache (pass-through, a Range on a miss): end-to-end fields only,
   * minus those addressed to the cache itself (and the tag fields unless exposed), with Via appended.
   */
  responseHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
    const out = endToEndResponseHeaders(headers);
    for (const name of SURROGATE_ONLY_FIELDS) delete out[name];
    if (!this.options.exposeTagHeaders) for (const name of TAG_FIELDS) delete out[name];
    out.via = withVia(out.via);
    return out;
  }
}

/**
 * Entity tags edgecache derived for a form of a stored response ("abc-br") back to the origin's own ("abc") in
 * If-None-Match and If-Match. An If-Range naming such a tag goes, with its Range: a range of the origin's bytes
 * is not a range of edgecache's br or gzip bytes, so the client gets the whole representation instead.
 */
function translateValidators(out: Record<string, string | string[]>): void {
  for (const name of ['if-none-match', 'if-match']) {
    const value = out[name];
    if (typeof value === 'string') out[name] = originEtags(value);
  }
  const ifRange = out['if-range'];
  if (typeof ifRange === 'string' && isFormEtag(ifRange)) {
    delete out['if-range'];
    delete out.range;
  }
}
