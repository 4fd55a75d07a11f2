/**
 * The proxy port's listener: the node:http server with the hit path in front of Fastify's router, and what is
 * answered at the connection level, before any route: requests Node's parser refuses (400, 408, 431), CONNECT
 * (405), the request checks of every request (request-target.ts), and the router's own errors. Upgrades are
 * routed by passthrough.ts and upgrade.ts. The routes themselves are registered by createEdgecache.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Scheme } from '../../policies/http/cache-key.js';
import type { ProxyStats } from '../admin/stats.js';
import { ALLOWED_METHODS, closingErrorResponse, sendError } from './error-answer.js';
import type { H2HitPath, HitPath } from './hit-path.js';
import { serveHttp2 } from './h2-streams.js';
import { closeAfter, type Drain } from './drain.js';
import { performance } from 'node:perf_hooks';
import { ProxyResponse } from './proxy-response.js';
import type { OutcomeRecorder } from '../pipeline/outcome.js';
import { upgradeConstraint } from './passthrough.js';
import { PARSER_MAX_FIELDS } from './request-limits.js';
import { registerRequestChecks } from './request-target.js';
import type { TlsCredentials } from './tls.js';

export interface ListenerOptions {
  log: Logger;
  /** Where refused requests are counted (badRequests). */
  stats: ProxyStats;
  /** Answers a fresh hit before the router, or returns false. */
  hitPath: HitPath;
  /** Observes the end of each request the hit path declines (duration histogram, access log). */
  outcomes: OutcomeRecorder;
  /** The listener's scheme (see request-target.ts). */
  scheme: Scheme;
  /** Set when the process drains before a shutdown: every response then closes its connection. */
  drain: Drain;
  /** TLS on the port (--tls-cert, --tls-key): HTTP/1.1 and HTTP/2 by ALPN. */
  tls?: TlsCredentials | undefined;
  /** HTTP/2: always with TLS; on a plain port with --h2c (prior knowledge). */
  http2?: { h2c: boolean; maxStreams: number; hitPath: H2HitPath } | undefined;
}

/**
 * Node's parser rejected the request: answer in one short plain-text line, with X-Cache and Cache-Status like
 * every other response, and close. Returns whether an answer was written.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): boolean {
  if (!socket.writable) {
    socket.destroy();
    return false;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  socket.end(closingErrorResponse(status, `${(http.STATUS_CODES[status] as string).toLowerCase()}: ${err.code ?? 'malformed request'}`));
  return true;
}

/** CONNECT (tunnels) is not something a caching reverse proxy does: 405, one line, and close. */
function answerConnect(socket: Socket): void {
  socket.on('error', () => socket.destroy());
  socket.end(closingErrorResponse(405, 'method CONNECT is not supported', { fields: { allow: ALLOWED_METHODS } }));
}

/** The Fastify app of the proxy port, with its server, connection-level answers, request checks and error handlers. */
export function createProxyApp({ log, stats, hitPath, scheme, drain, outcomes, tls, http2 }: ListenerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Fresh hits are answered before Fastify's router; the rest is handed to Fastify.
    serverFactory: (handler) => {
      // A missing Host is refused by the onRequest hook (one line, counted in badRequests), not by Node's bare 400.
      const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
        const startedAt = performance.now();
        if (drain.draining) closeAfter(res);
        if (hitPath(req, res, startedAt)) return;
        outcomes.track(req, res, startedAt);
        handler(req, res);
      };
      const server = tls
        ? https.createServer({ ...tls.serverOptions(), requireHostHeader: false, ServerResponse: ProxyResponse }, onRequest)
        : http.createServer({ requireHostHeader: false, ServerResponse: ProxyResponse }, onRequest);
      drain.attach(server);
      // HTTP/2 beside HTTP/1.1: by ALPN with TLS, by the connection preface with --h2c (h2-streams.ts).
      if (http2 && (tls || http2.h2c)) {
        serveHttp2(server, tls !== undefined, { maxStreams: http2.maxStreams, hitPath: http2.hitPath, handler, onRefused: () => stats.badRequests++ });
      }
      // Fields beyond this are dropped by node:http; one more than accepted shows a request over the limit.
      server.maxHeadersCount = PARSER_MAX_FIELDS;
      // CONNECT is not proxied; without a listener Node would drop the connection without an answer.
      server.on('connect', (_req: http.IncomingMessage, socket: Socket) => answerConnect(socket));
      return server;
    },
    clientErrorHandler: (err, socket) => {
      if (answerClientError(err, socket)) stats.badRequests++;
    },
    return503OnClosing: true,
    forceCloseConnections: true,
    routerOptions: { maxParamLength: 65_535, constraints: { upgrade: upgradeConstraint } },
  });
  // Set before any route is registered, so that every route (and plugin) answers its errors this way.
  app.setErrorHandler((error, request, reply) => {
    const err = error as { statusCode?: number; message: string };
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) log.error({ err, url: request.url }, 'request failed');
    void sendError(reply, status, status === 500 ? 'internal error' : err.message);
  });
  app.setNotFoundHandler((request, reply) => {
    void sendError(reply, 405, `method ${request.method} is not supported`, { fields: { allow: ALLOWED_METHODS } });
  });
  // Every request's field count, target and Host are checked before routing; the target is carried to every handler.
  registerRequestChecks(app, scheme, () => stats.badRequests++);
  return app;
}
