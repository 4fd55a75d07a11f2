/**
 * HTTP/2 on the proxy port (RFC 9113), beside HTTP/1.1 on the same node:http (or node:https) server.
 *
 * Connections: the proxy port's server stays the node:http / node:https server it is for HTTP/1.1 (its parser
 * limits, timeouts, upgrades, error answers and the HTTP/1.1 hit path are unchanged). Its own connection
 * listener is taken off and replaced by one that decides, once per connection, who gets it:
 * - with TLS ('secureConnection'): the protocol ALPN settled on. `h2` goes to a node:http2 server that never
 *   listens itself (it is only handed connections); `http/1.1`, or no ALPN at all, to node:http as before.
 * - with --h2c on a plain port ('connection'): the first bytes. A connection that opens with the HTTP/2
 *   preface (`PRI * HTTP/2.0`, RFC 9113 §3.4, prior knowledge) goes to the node:http2 server, anything else to
 *   node:http. The bytes read to decide are put back (`unshift`) before the connection is handed over.
 *
 * Streams: the node:http2 server has one 'stream' listener and no 'request' listener, so node:http2's
 * compatibility layer is never set up (it would make a request/response pair for every stream and emit it: a
 * second handling). Each stream is offered to the h2 hit path first (hit-path.ts createH2HitPath: the core stream
 * API, `stream.respond()` with the stored fields and `stream.end()` with the stored Buffer). When it declines,
 * and only then, the compatibility pair is made here (`Http2ServerRequest`, `Http2ServerResponse`) and handed to
 * Fastify's handler, as node:http's request/response pairs are: one stream, one handler.
 *
 * On the way to Fastify, `:authority` stands for Host (RFC 9113 §8.3.1): the request gets a Host field with its
 * value when it has none, so the router's request checks, the cache key, Vary and forwarding read it as on
 * HTTP/1.1. A Host that differs from `:authority` is refused (400), as a malformed request.
 *
 * Concurrent streams per connection are bounded by SETTINGS_MAX_CONCURRENT_STREAMS (--h2-max-streams; Node's
 * default is effectively unlimited). Idle sessions are closed after a while, and all of them when the server
 * closes (`closeAllConnections`, `closeHttp2Sessions`, which Fastify calls on close).
 */
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import http2, { Http2ServerRequest, Http2ServerResponse, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { TARGET_PROBLEMS } from '../../policies/http/cache-key.js';
import { writeError } from './error-answer.js';
import type { H2HitPath } from './hit-path.js';
import { PARSER_MAX_FIELDS } from './request-limits.js';

export interface Http2Options {
  /** SETTINGS_MAX_CONCURRENT_STREAMS (--h2-max-streams). */
  maxStreams: number;
  hitPath: H2HitPath;
  /** Fastify's handler, for every stream the hit path declines. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** A stream refused before Fastify (Host differs from :authority...): counted as a bad request. */
  onRefused: () => void;
}

/** The connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Longest a plain connection may stay silent before its first bytes tell which protocol it speaks. */
const SNIFF_TIMEOUT_MS = 60_000;

/** An HTTP/2 session with no stream for this long is closed (GOAWAY), as Fastify's own h2 servers do. */
const SESSION_IDLE_MS = 72_000;

type ConnectionListener = (socket: Socket) => void;

interface ClosingServer {
  closeAllConnections(): void;
  closeHttp2Sessions?: () => void;
}

function ignore(): void {}

/**
 * Serves HTTP/2 on `server` beside HTTP/1.1: by ALPN when `secure` (a node:https server), by the connection
 * preface otherwise (--h2c). Call before the server listens.
 */
export function serveHttp2(server: HttpServer, secure: boolean, options: Http2Options): void {
  const h2 = http2.createServer({
    settings: { maxConcurrentStreams: options.maxStreams },
    // As many fields as HTTP/1.1 accepts, plus the pseudo-header fields (request-limits.ts).
    maxHeaderListPairs: PARSER_MAX_FIELDS + 4,
  });
  const sessions = new Set<ServerHttp2Session>();
  h2.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    // A connection reset or a protocol error ends the session; nothing else to do.
    session.on('error', ignore);
    session.setTimeout(SESSION_IDLE_MS, () => session.close());
  });
  h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => routeStream(stream, headers, rawHeaders, options));

  const event = secure ? 'secureConnection' : 'connection';
  // node:http's (node:https's) own listener: it attaches the HTTP/1.1 parser.
  const http1 = server.listeners(event) as ConnectionListener[];
  server.removeAllListeners(event);
  const toHttp1 = (socket: Socket): void => {
    for (const listener of http1) listener.call(server, socket);
  };
  const toHttp2 = (socket: Socket): void => {
    h2.emit('connection', socket);
  };
  if (secure) server.on(event, (socket: TLSSocket) => (socket.alpnProtocol === 'h2' ? toHttp2(socket) : toHttp1(socket)));
  else server.on(event, (socket: Socket) => sniff(socket, toHttp1, toHttp2));

  const closing = server as unknown as ClosingServer;
  const closeHttp1 = closing.closeAllConnections.bind(server);
  closing.closeAllConnections = () => {
    closeHttp1();
    for (const session of sessions) session.destroy();
  };
  closing.closeHttp2Sessions = () => {
    for (const session of sessions) session.close();
  };
}

/** Reads a plain connection's first bytes, puts them back, and hands it to HTTP/2 (the preface) or HTTP/1.1. */
function sniff(socket: Socket, toHttp1: ConnectionListener, toHttp2: ConnectionListener): void {
  let seen: Buffer | undefined;
  const destroy = (): void => {
    socket.destroy();
  };
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) {
      const data: Buffer = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(data.length, PREFACE.length);
      const preface = data.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (preface && n < PREFACE.length) {
        // The start of the preface so far: wait for the rest.
        seen = data;
        continue;
      }
      socket.removeListener('readable', onReadable);
      socket.removeListener('error', destroy);
      socket.removeListener('timeout', destroy);
      socket.setTimeout(0);
      socket.unshift(data);
      if (preface) toHttp2(socket);
      else toHttp1(socket);
      return;
    }
  };
  socket.on('error', destroy);
  socket.setTimeout(SNIFF_TIMEOUT_MS, destroy);
  socket.on('readable', onReadable);
}

/** One stream: the h2 hit path, or Fastify through node:http2's compatibility request and response. */
function routeStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[], options: Http2Options): void {
  if (options.hitPath(stream, headers, rawHeaders)) return;
  const req = new Http2ServerRequest(stream, headers, {}, rawHeaders);
  const res = new Http2ServerResponse(stream);
  const authority = headers[':authority'];
  if (authority !== undefined && headers.host !== undefined && headers.host !== authority) {
    // RFC 9113 §8.3.1: malformed. (Every other check is the router's, on the Host set below.)
    options.onRefused();
    writeError(res as unknown as ServerResponse, 400, `bad request: ${TARGET_PROBLEMS.authorityMismatch.problem}`);
    return;
  }
  if (headers.host === undefined && authority !== undefined) {
    // :authority stands for Host (the router's checks, the key, Vary and forwarding read Host).
    headers.host = authority;
    rawHeaders.push('host', authority);
  }
  // As node:http2's compatibility layer does for a request that expects 100-continue.
  if (headers.expect === '100-continue') res.writeContinue();
  options.handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
}
