/**
 * Draining the proxy port before a shutdown, as a load balancer expects of a pod told to stop: stop accepting
 * connections, keep serving the requests that still arrive on connections already open but close each of them
 * after its response (`Connection: close`; an HTTP/2 session gets GOAWAY), and let what is in flight finish.
 *
 * It is generic over the server: `start()` closes the listening socket (and not the open connections, as
 * http.Server#close would: their next request is served, with Connection: close) and closes any HTTP/2 session
 * the server announced; the request handler checks `draining` and calls `closeAfter(res)` (listener.ts). The fast
 * hit path needs nothing of its own: a response that will not keep the connection alive is not the prepared
 * keep-alive case (raw-head.ts), so its head goes through writeHead(), which writes Connection: close.
 */
import type { Server } from 'node:http';
import type { ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';

/** What drain needs of an HTTP/2 session (node:http2 ServerHttp2Session): close() sends GOAWAY and lets streams end. */
interface Session {
  close(callback?: () => void): void;
  on(event: 'close', listener: () => void): unknown;
}

/** The node:http internal naming the response a connection is busy with (null between requests). */
interface SocketInternals {
  _httpMessage?: unknown;
}

export class Drain {
  /** Set by start(): responses from now on close their connection. */
  draining = false;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<Session>();

  /** Tracks the server's connections (once per connection, nothing per request). */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => {
      // upgrade.ts hands a socket back to the server again (a 'connection' each time): track it once.
      if (this.sockets.has(socket)) return;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    // An HTTP/2 server (or one that accepts both) announces its sessions; an HTTP/1.1 server never does.
    server.on('session', (session: Session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      if (this.draining) session.close();
    });
  }

  /** Stops accepting connections and says goodbye to the open ones (see above). Idempotent. */
  start(server: Server): void {
    if (this.draining) return;
    this.draining = true;
    // net.Server#close: the listening socket only. (http.Server#close would also close the idle keep-alive
    // connections at once, and a request a load balancer sends on one of them at that moment would be lost.)
    if (server.listening) net.Server.prototype.close.call(server);
    for (const session of this.sessions) session.close();
  }

  /** Whether a response is still being written on some connection, or an HTTP/2 session is still open. */
  busy(): boolean {
    if (this.sessions.size > 0) return true;
    for (const socket of this.sockets) if ((socket as SocketInternals)._httpMessage) return true;
    return false;
  }

  /** Open connections (busy or idle). */
  get connections(): number {
    return this.sockets.size;
  }
}

/** This response closes its connection: Node writes `Connection: close` and ends the socket after it. */
export function closeAfter(res: ServerResponse): void {
  res.shouldKeepAlive = false;
}
