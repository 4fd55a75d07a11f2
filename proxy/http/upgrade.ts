/**
 * Requests that carry `Upgrade`. The only upgrade edgecache performs is a WebSocket one, proxied by
 * @fastify/http-proxy (passthrough.ts); every other such request is served as the plain request it also is:
 * RFC 9110 §7.8 lets a server ignore Upgrade, and `curl --http2 http://…` sends `Upgrade: h2c` on ordinary GETs
 * and POSTs that expect an ordinary answer.
 *
 * Why this needs code: on Node 20, llhttp flags every request that has an `Upgrade` field and `upgrade` in
 * `Connection` (whatever its method), and node:http (lib/_http_server.js, parserOnIncoming and
 * onParserExecuteCommon) then does not emit 'request' at all as long as the server has an 'upgrade' listener —
 * which the WebSocket proxy installs. It frees the HTTP parser, takes its own listeners off the socket
 * ('data', 'end', 'close', 'error', 'timeout'), and emits 'upgrade' with the request head parsed and whatever bytes
 * followed it (the start of a body, pipelined requests) as `head`. Nothing reads the body or watches the socket
 * any more: handed to the router as if it were a WebSocket upgrade, a POST waited for a body that never came and
 * its socket stayed open for ever (CLOSE-WAIT once the client gave up), and a GET was answered `Connection:
 * keep-alive` and then closed, losing what was pipelined behind it. Node 20 has no per-request "should this
 * upgrade" hook (Node 24's `shouldUpgradeCallback` is that).
 *
 * So the 'upgrade' event is routed here: a `GET` whose Upgrade is `websocket` goes to the WebSocket proxy as
 * before; anything else is handed back to node:http as a new connection whose first bytes are the same request
 * without its `Upgrade` field (a hop-by-hop field, RFC 9110 §7.6.1, never forwarded anyway) followed by `head`.
 * A fresh parser then reads the request, its body and anything pipelined, and the connection is an ordinary
 * HTTP/1.1 one again: keep-alive as the response says, timeouts, the hit path, the limits and error answers
 * every other request gets. The head is rebuilt from `rawHeaders` (field names and values as received, decoded
 * as latin1, so re-encoding gives the same bytes; without optional whitespace, so never longer than what was
 * parsed). If responses to requests pipelined before it are still being written on the socket, the re-parse waits
 * for them, so that answers stay in order.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { closingErrorResponse } from './error-answer.js';
import { hasTooManyFields, TOO_MANY_FIELDS_MESSAGE } from './request-limits.js';

type UpgradeListener = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

/** Whether a request is a WebSocket upgrade (RFC 6455 §4.1: a GET with `Upgrade: websocket`). */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return req.method === 'GET' && req.headers.upgrade?.toLowerCase() === 'websocket';
}

/**
 * Takes over the server's 'upgrade' event: WebSocket upgrades go to the listeners registered so far (the
 * WebSocket proxy's), every other request is served as a plain request. `onRefused` counts a request refused
 * here (too many header fields to rebuild it faithfully).
 */
export function routeUpgrades(server: Server, onRefused: () => void): void {
  const webSocket = server.listeners('upgrade') as UpgradeListener[];
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (isWebSocketUpgrade(req)) {
      for (const listener of webSocket) listener.call(server, req, socket, head);
      return;
    }
    // node:http took its error handling off with its parser: until a parser owns the socket again, an error
    // (a reset) destroys it rather than being thrown.
    const destroy = (): void => {
      socket.destroy();
    };
    socket.on('error', destroy);
    afterPendingResponses(socket, () => {
      // A response before it said Connection: close, or the client went away: nothing more to answer.
      if (socket.destroyed || socket.writableEnded) return;
      if (hasTooManyFields(req.rawHeaders)) {
        // node:http kept only the first fields: the request cannot be rebuilt whole. Refuse it and close.
        onRefused();
        refuse(socket, closingErrorResponse(431, TOO_MANY_FIELDS_MESSAGE));
        return;
      }
      socket.removeListener('error', destroy);
      // Timers node:http set for the previous exchange (keep-alive) must not fire into the new one.
      socket.setTimeout(0);
      // Put back in front of anything read since: the rebuilt head, then what followed the original one (two
      // chunks, no copy: a pipeline of such requests is not copied again for each).
      if (head.length > 0) socket.unshift(head);
      socket.unshift(plainRequestHead(req));
      // node:http's documented way to hand it a connection ('connection' event): it attaches a new parser.
      // (An https.Server attaches its parser on 'secureConnection': a TLS listener emits that instead.)
      server.emit(server instanceof TlsServer ? 'secureConnection' : 'connection', socket);
    });
  });
}

/** The request's head as received, minus its Upgrade field(s). */
function plainRequestHead(req: IncomingMessage): Buffer {
  let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 7 && name.toLowerCase() === 'upgrade') continue;
    text += `${name}:${raw[i + 1] as string}\r\n`;
  }
  return Buffer.from(`${text}\r\n`, 'latin1');
}

/**
 * Runs `then` once no response to an earlier request on this socket is being written. node:http keeps the
 * response that currently owns the socket in `socket._httpMessage` (set by ServerResponse#assignSocket, cleared
 * when it finishes; the next queued response is assigned before the finished one emits 'close').
 */
function afterPendingResponses(socket: Socket, then: () => void): void {
  const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (pending === null || pending === undefined) {
    then();
    return;
  }
  pending.once('close', () => afterPendingResponses(socket, then));
}

/**
 * Writes a closing answer and lets the connection end: what the client still sends is discarded, and the socket
 * is destroyed once both sides are done (or after a grace period, for a client that never closes its side).
 * Destroying it at once could reset the connection before the client has read the answer.
 */
function refuse(socket: Socket, response: string): void {
  socket.resume();
  socket.end(response);
  socket.setTimeout(5_000, () => socket.destroy());
}
