/** A real origin server on 127.0.0.1 for tests: records every request and answers with a test's handler. */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export type OriginHandler = (req: IncomingMessage, res: ServerResponse, recorded: RecordedRequest) => void | Promise<void>;

export interface TestOrigin {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Requests for one path (path and query). */
  count(path?: string): number;
  setHandler(handler: OriginHandler): void;
  close(): Promise<void>;
}

export async function startOrigin(handler: OriginHandler): Promise<TestOrigin> {
  const requests: RecordedRequest[] = [];
  let current = handler;
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks),
      };
      requests.push(recorded);
      Promise.resolve(current(req, res, recorded)).catch((err: unknown) => {
        res.destroy(err as Error);
      });
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    count: (path) => (path === undefined ? requests.length : requests.filter((r) => r.url === path).length),
    setHandler: (h) => {
      current = h;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Answers a request for a path that `RoutedOrigin.path` made; `n`: how many requests that path has had. */
export type PathHandler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

export interface RoutedOrigin extends TestOrigin {
  /** A new path (`<prefix><number>`) that the origin answers with `handler`; any other path gets a 404. */
  path(handler: PathHandler): string;
}

/** An origin whose answers each test sets per path, for files whose tests each need their own behaviour. */
export async function startRoutedOrigin(prefix: string): Promise<RoutedOrigin> {
  const handlers = new Map<string, PathHandler>();
  const origin = await startOrigin((req, res) => {
    const handler = handlers.get(req.url ?? '');
    if (handler) handler(req, res, origin.count(req.url));
    else res.writeHead(404).end();
  });
  let n = 0;
  return Object.assign(origin, {
    path(handler: PathHandler): string {
      const p = `${prefix}${++n}`;
      handlers.set(p, handler);
      return p;
    },
  });
}
