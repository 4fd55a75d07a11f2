/** Small HTTP clients for tests: a buffered request over node:http, and a raw socket for parser-level cases. */
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import net from 'node:net';

export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export interface RequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Fail the promise if no complete response arrives within this many ms. */
  timeout?: number;
}

/** One request on a fresh connection; rejects when the response is aborted before its end. */
export function request(url: string, options: RequestOptions = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { ...options.headers };
    if (options.body !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) {
      headers['content-length'] = Buffer.byteLength(options.body);
    }
    const req = http.request(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (!res.complete) {
          reject(new Error('response aborted before its end'));
          return;
        }
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString() });
      });
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('response aborted')));
    });
    req.on('error', reject);
    req.setTimeout(options.timeout ?? 10_000, () => req.destroy(new Error('request timed out')));
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Writes raw bytes to the server and returns everything it sends back until it closes (or `ms` passes). */
export function raw(port: number, text: string, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, ms);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (chunks.length) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(err);
    });
    socket.write(text);
  });
}

/** Status code of the first final (non-1xx) response in a raw reply. */
export function rawStatus(reply: string): number {
  for (const match of reply.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)) {
    const status = Number(match[1]);
    if (status >= 200) return status;
  }
  return 0;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
