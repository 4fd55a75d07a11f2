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

export interface RawResponse {
  status: number;
  /** Status line and header fields, CRLF-separated, without the blank line. */
  head: string;
  /** Field values by lower-cased name (the last one wins). */
  headers: Record<string, string>;
  body: string;
}

/**
 * The complete responses at the start of a raw reply, in order (bodies framed by Content-Length or chunked;
 * `bodiless` marks, by position, answers to HEAD). A response still arriving is left out.
 */
export function parseResponses(reply: string, bodiless: readonly boolean[] = []): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = reply;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const head = rest.slice(0, end);
    const [statusLine = '', ...lines] = head.split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    let bodyStart = end + 4;
    let body = '';
    if (bodiless[out.length] === true || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      // no body
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      let at = bodyStart;
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', at);
        if (lineEnd === -1) return out;
        const size = parseInt(rest.slice(at, lineEnd), 16);
        if (rest.length < lineEnd + 2 + size + 2) return out;
        body += rest.slice(lineEnd + 2, lineEnd + 2 + size);
        at = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
      bodyStart = at;
      rest = rest.slice(bodyStart);
      out.push({ status, head, headers, body });
      continue;
    } else {
      const length = Number(headers['content-length'] ?? 0);
      if (rest.length < bodyStart + length) break;
      body = rest.slice(bodyStart, bodyStart + length);
      bodyStart += length;
    }
    rest = rest.slice(bodyStart);
    out.push({ status, head, headers, body });
  }
  return out;
}

export interface RawExchange {
  /** Everything the server sent. */
  reply: string;
  responses: RawResponse[];
  /** Whether the server closed the connection (before the client did). */
  closed: boolean;
}

/**
 * Writes raw bytes on a new connection and reads until `responses` complete responses have arrived (then, with
 * `waitForClose`, until the server closes too), the server closes, or `ms` passes; then the client closes.
 */
export function exchange(
  port: number,
  text: string | Buffer,
  options: { responses: number; waitForClose?: boolean; ms?: number; bodiless?: boolean[] },
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const reply = Buffer.concat(chunks).toString('latin1');
      resolve({ reply, responses: parseResponses(reply, options.bodiless), closed });
    };
    const timer = setTimeout(finish, options.ms ?? 3000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (options.waitForClose) return;
      if (parseResponses(Buffer.concat(chunks).toString('latin1'), options.bodiless).length >= options.responses) finish();
    });
    socket.on('end', () => {
      closed = true;
      finish();
    });
    socket.on('close', finish);
    socket.on('error', finish);
    socket.write(text);
  });
}

/** Connections the server still holds open (polls until there are none, or `ms` passes). */
export async function openConnections(server: net.Server, ms = 3000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const count = await new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    if (count === 0 || Date.now() >= deadline) return count;
    await sleep(20);
  }
}
