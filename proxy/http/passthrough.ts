/**
 * Requests the cache does not answer (unsafe methods, OPTIONS, WebSocket upgrades) go to the origin through
 * @fastify/http-proxy, bodies streamed both ways, over the same undici Pool as the cache fills (so
 * --origin-connections bounds every connection to the origin). The response is relayed as a Range on a miss is
 * (relay.ts): its head goes out with the first body byte, so an origin that fails before it gets the client a
 * 502. A non-error answer to an unsafe method invalidates the target URI and same-origin Location /
 * Content-Location URIs (RFC 9111 §4.4), before the response is relayed.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import httpProxy, { type FastifyHttpProxyOptions } from '@fastify/http-proxy';
import { invalidatedKeys, invalidates } from '../../policies/http/invalidation.js';
import { allowsContentLength, hasNoContent } from '../../policies/http/message-body.js';
import type { Forwarding } from '../origin/forwarding.js';
import { gatewayError, type OriginClient } from '../origin/origin-client.js';
import { sendError, writeOriginFailure } from './error-answer.js';
import { relayResponse } from './relay.js';
import { targetOf } from './request-target.js';
import type { ProxyStats } from '../admin/stats.js';
import { outcomeFields, type OutcomeRecorder } from '../pipeline/outcome.js';
import { isWebSocketUpgrade, routeUpgrades } from './upgrade.js';

/** Every method Node's parser accepts, except those the cache answers itself (and CONNECT, which is not proxied). */
const PASSTHROUGH_METHODS = http.METHODS.filter((m) => m !== 'GET' && m !== 'HEAD' && m !== 'CONNECT' && m !== 'PURGE');

export interface PassthroughOptions {
  origin: string;
  /** Removes every variant of these URLs (primary keys) in every process; resolves with the count. */
  invalidate: (keys: string[]) => Promise<number>;
  stats: ProxyStats;
  /** Where each response's outcome is counted (BYPASS). */
  outcomes: OutcomeRecorder;
  /** The header fields sent to the origin and relayed back. */
  forwarding: Forwarding;
  /**
   * The origin client the cache fills use: its connection pool is shared (--origin-connections bounds every origin
   * connection), and the pass-through's origin latency goes to the same histogram.
   */
  originClient: Pick<OriginClient, 'dispatcher' | 'headersReceived'>;
}

/** When each passed-through request was sent to the origin (performance.now()), for its origin latency. */
const sentAt = new WeakMap<object, number>();

/**
 * Routes a WebSocket upgrade (handed over by node:http's 'upgrade' event, see upgrade.ts) to the WebSocket proxy
 * instead of the cache: find-my-way prefers the route whose constraint matches, and every other request derives
 * no value and takes the cache route (a GET that names websocket in Upgrade without `Connection: upgrade` is not
 * an upgrade, RFC 9110 §7.8, and is served as the GET it is).
 */
export const upgradeConstraint = {
  name: 'upgrade',
  storage() {
    // The router stores its own handler objects here; their type is the router's business.
    const handlers = new Map<string, never>();
    return {
      get: (value: string) => handlers.get(value) ?? null,
      set: (value: string, store: never) => {
        handlers.set(value, store);
      },
    };
  },
  deriveConstraint: (req: http.IncomingMessage) => {
    // node:http sets `upgrade` on each request it parses (not in @types/node): true for one handed to 'upgrade'.
    const upgrade = (req as { upgrade?: boolean }).upgrade === true;
    // undefined means "derived nothing" to the router, though its type says string.
    return (upgrade && isWebSocketUpgrade(req) ? 'websocket' : undefined) as string;
  },
  mustMatchWhenDerived: false,
};

export async function registerPassthrough(app: FastifyInstance, options: PassthroughOptions): Promise<void> {
  const { stats } = options;
  for (const method of PASSTHROUGH_METHODS) {
    if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: true });
  }

  await app.register(httpProxy, {
    upstream: options.origin,
    httpMethods: ['GET'],
    constraints: { upgrade: 'websocket' },
    websocket: true,
    // (Only upgrades reach this route, and the WebSocket proxy has its own connections; the pool is passed so that
    // reply-from does not create an Agent of its own.)
    undici: options.originClient.dispatcher,
  } as FastifyHttpProxyOptions);
  // The WebSocket proxy has registered its 'upgrade' listener: other requests carrying Upgrade must not reach it.
  routeUpgrades(app.server, () => stats.badRequests++);

  await app.register(httpProxy, {
    upstream: options.origin,
    httpMethods: PASSTHROUGH_METHODS,
    undici: options.originClient.dispatcher,
    replyOptions: {
      // The same request-header rules as cache fills, from the client's own headers (bodies keep their length).
      rewriteRequestHeaders: (request) => {
        // Called as reply-from sends the request: its origin latency starts here.
        sentAt.set(request, performance.now());
        return options.forwarding.requestHeaders(request.headers, targetOf(request), request.socket.remoteAddress, false);
      },
      rewriteHeaders: (headers) => options.forwarding.responseHeaders(headers as Record<string, string | string[] | undefined>),
      onResponse: (request, reply, rawResponse) => {
        // reply-from hands over { statusCode, headers, stream } and has set the relayed fields on the reply.
        const res = rawResponse as unknown as { statusCode: number; headers: Record<string, string | string[] | undefined>; stream: Readable };
        const status = res.statusCode;
        const started = sentAt.get(request);
        if (started !== undefined) options.originClient.headersReceived(started);
        options.outcomes.record('BYPASS', reply.raw as http.ServerResponse);
        stats.originFetches++;
        reply.hijack();
        // This listener is HTTP/1.1 (node:http), whatever reply-from's types allow for.
        const out = reply.raw as http.ServerResponse;
        // Until the relay listens, a failing body must not be an unhandled 'error' (relayResponse sees it).
        res.stream.on('error', () => undefined);
        // The fields reply-from set (values node:http takes; Fastify types a few fields narrower).
        const headers = reply.getHeaders() as http.OutgoingHttpHeaders;
        const [xcacheName, xcache, cacheStatusName, cacheStatus] = outcomeFields('BYPASS', { fwd: 'method', fwdStatus: status }, res.headers['cache-status']);
        headers[xcacheName] = xcache;
        headers[cacheStatusName] = cacheStatus;
        if (!allowsContentLength(status)) delete headers['content-length'];
        const relay = (): void =>
          relayResponse(out, status, headers, res.stream, {
            noContent: hasNoContent(status),
            failed: (err) => {
              stats.originError(err);
              writeOriginFailure(out, err, { cacheStatus: { fwd: 'method', detail: 'origin-error' } });
            },
          });
        if (invalidates(request.method, status)) {
          // Invalidate before the response is relayed, so the client's next request cannot see the old entry.
          void options.invalidate(invalidatedKeys(targetOf(request), res.headers)).then(relay, relay);
          return;
        }
        relay();
      },
      onError: (reply, { error }) => {
        const cause = (error as { cause?: unknown }).cause ?? error;
        stats.originError(cause);
        const failure = gatewayError(cause);
        const status = (error as { statusCode?: number }).statusCode === 504 ? 504 : failure.status;
        void sendError(reply, status, failure.message, { cacheStatus: { fwd: 'method', detail: 'origin-error' } });
      },
    },
  } as FastifyHttpProxyOptions);
}
