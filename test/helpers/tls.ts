/**
 * TLS and HTTP/2 for tests: self-signed certificates made with openssl in a temporary directory, an HTTPS
 * HTTP/1.1 request, and HTTP/2 requests (over TLS, or h2c with prior knowledge) on one node:http2 session.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';

export interface TestCert {
  certPath: string;
  keyPath: string;
  cert: Buffer;
}

/** A new self-signed certificate for localhost (and 127.0.0.1), valid for a day. */
export function makeCert(dir = mkdtempSync(path.join(tmpdir(), 'edgecache-tls-')), name = 'server', cn = 'localhost'): TestCert {
  const certPath = path.join(dir, `${name}.crt`);
  const keyPath = path.join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1', '-keyout', keyPath, '-out', certPath],
    { stdio: 'ignore' },
  );
  return { certPath, keyPath, cert: readFileSync(certPath) };
}

export interface H1Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  alpn: string | false | null;
}

/** One HTTPS request over HTTP/1.1 (a new connection, ALPN offering http/1.1 only unless `alpn` says otherwise). */
export function httpsRequest(
  port: number,
  urlPath: string,
  options: { ca: Buffer; method?: string; headers?: Record<string, string>; alpn?: string[] },
): Promise<H1Response> {
  return new Promise((resolve, reject) => {
    const requestOptions: https.RequestOptions & { ALPNProtocols: string[] } = {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: options.method ?? 'GET',
        headers: options.headers,
        ca: options.ca,
        servername: 'localhost',
        ALPNProtocols: options.alpn ?? ['http/1.1'],
        agent: false,
    };
    const req = https.request(
      requestOptions,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), alpn: (res.socket as TLSSocket | null)?.alpnProtocol ?? null }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  /** Interim (1xx) responses, in order. */
  informational: IncomingHttpHeaders[];
  body: Buffer;
}

/** An HTTP/2 session: over TLS (`https://…`, trusting `ca`) or h2c with prior knowledge (`http://…`). */
export function h2Connect(url: string, ca?: Buffer): ClientHttp2Session {
  const session = http2.connect(url, ca ? { ca, servername: 'localhost' } : {});
  session.on('error', () => undefined);
  return session;
}

/** One request on a session. */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ...headers }, { endStream: body === undefined });
    const informational: IncomingHttpHeaders[] = [];
    const chunks: Buffer[] = [];
    let head: IncomingHttpHeaders | undefined;
    stream.on('headers', (h) => informational.push(h));
    stream.on('response', (h) => (head = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      if (!head) return reject(new Error('no response'));
      resolve({ status: Number(head[':status']), headers: head, informational, body: Buffer.concat(chunks) });
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

/** Closes a session and waits for it. */
export function h2Close(session: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => session.close(() => resolve()));
}
