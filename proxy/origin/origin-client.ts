/**
 * The connection pool to the origin (undici Pool) and the mapping of its failures to gateway errors:
 * nothing listening → 502, no headers in time → 504 (RFC 9110 §15.6.3, §15.6.5).
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { Pool, errors, type Dispatcher } from 'undici';

export interface OriginClientOptions {
  origin: string;
  connections: number;
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
  /** Called with the seconds from sending each request to its response headers (the origin latency metric). */
  onHeaders?: (seconds: number) => void;
}

export interface OriginRequest {
  method: 'GET' | 'HEAD' | 'POST';
  /** A cached POST's body, buffered (see pipeline/post-pipeline.ts), or a stream of it when it is not cached. */
  body?: Buffer | Readable;
  /** Path and query as received; the origin's base path is prepended. */
  path: string;
  headers: Record<string, string | string[]>;
  signal?: AbortSignal | OriginAbort;
  /** Each interim (1xx) response the origin sends before the final one (undici's `onInfo`). */
  onInfo?: (status: number, headers: Record<string, string | string[] | undefined>) => void;
}

/**
 * What aborts an origin request: undici takes an EventEmitter as a request's signal, and one costs a fraction of
 * an AbortController (whose AbortSignal is an EventTarget: about 2 % of a miss's CPU, made for every fill and
 * nearly never used). `abort()` emits 'abort' once; undici then fails the request (RequestAbortedError).
 */
export class OriginAbort extends EventEmitter {
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

export class OriginClient {
  readonly url: URL;
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly onHeaders: ((seconds: number) => void) | undefined;

  constructor(options: OriginClientOptions) {
    this.url = new URL(options.origin);
    this.basePath = this.url.pathname === '/' ? '' : this.url.pathname;
    this.onHeaders = options.onHeaders;
    this.pool = new Pool(this.url.origin, {
      connections: options.connections,
      connectTimeout: options.connectTimeout,
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
      keepAliveTimeout: 4_000,
    });
  }

  /** The pool itself, for the pass-through (one pool: --origin-connections bounds every origin connection). */
  get dispatcher(): Dispatcher {
    return this.pool;
  }

  /** The origin's Host header value. */
  get host(): string {
    return this.url.host;
  }

  /** Reports the origin latency of a request sent through the pool by someone else (the pass-through). */
  headersReceived(started: number): void {
    this.onHeaders?.((performance.now() - started) / 1000);
  }

  request(request: OriginRequest): Promise<Dispatcher.ResponseData> {
    const started = performance.now();
    const onHeaders = this.onHeaders;
    const response = this.pool.request({
      method: request.method,
      path: this.basePath + request.path,
      headers: request.headers,
      ...(request.body !== undefined && { body: request.body }),
      ...(request.signal && { signal: request.signal }),
      ...(request.onInfo && { onInfo: ({ statusCode, headers }: { statusCode: number; headers: Record<string, string | string[] | undefined> }) => request.onInfo?.(statusCode, headers) }),
    });
    if (onHeaders === undefined) return response;
    return response.then((data) => {
      onHeaders((performance.now() - started) / 1000);
      return data;
    });
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** What went wrong with an origin request, as counted in edgecache_origin_errors_total{kind}. */
export type OriginErrorKind = 'refused' | 'dns' | 'connect-timeout' | 'headers-timeout' | 'body-timeout' | 'reset' | 'other';

export interface GatewayError {
  status: 502 | 504;
  message: string;
  kind: OriginErrorKind;
}

/** Turns an undici/network error into the status and one-line body the client receives, and its kind. */
export function gatewayError(err: unknown): GatewayError {
  const code = (err as { code?: string } | undefined)?.code;
  if (err instanceof errors.HeadersTimeoutError || code === 'UND_ERR_HEADERS_TIMEOUT') {
    return { status: 504, message: 'origin did not send response headers in time', kind: 'headers-timeout' };
  }
  // Headers, then no body byte within --origin-body-timeout (before any byte of it reached the client).
  if (err instanceof errors.BodyTimeoutError || code === 'UND_ERR_BODY_TIMEOUT') {
    return { status: 504, message: 'origin did not send the response body in time', kind: 'body-timeout' };
  }
  if (err instanceof errors.ConnectTimeoutError || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
    return { status: 504, message: 'origin connection timed out', kind: 'connect-timeout' };
  }
  if (code === 'ECONNREFUSED') return { status: 502, message: 'origin refused the connection', kind: 'refused' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { status: 502, message: 'origin host name could not be resolved', kind: 'dns' };
  // (HPE_INVALID_EOF_STATE: the connection closed inside a message, e.g. after the headers of a Connection: close
  // response and before its body.)
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE' || code === 'HPE_INVALID_EOF_STATE') {
    return { status: 502, message: 'origin closed the connection', kind: 'reset' };
  }
  return { status: 502, message: 'origin request failed', kind: 'other' };
}
