/**
 * edgecache's own error answers, built in one place: a status, one short plain-text line, `Cache-Control:
 * no-store`, and X-Cache and Cache-Status like every other response of the proxy port (4xx from request checks,
 * 502/504 from origin failures, 500 for a bug). Three ways to send the same answer: on a ServerResponse
 * (writeError), through a Fastify reply (sendError), or as bytes for a socket no ServerResponse owns
 * (closingErrorResponse).
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { CacheStatusFields } from '../../policies/http/cache-status.js';
import { gatewayError } from '../origin/origin-client.js';
import { outcomeFields, type XCache } from '../pipeline/outcome.js';

export interface ErrorAnswerOptions {
  /** Cache-Status fields; `fwd=bypass; detail=error` by default. */
  cacheStatus?: CacheStatusFields;
  /** X-Cache; BYPASS by default. */
  xcache?: XCache;
  /** Fields the status calls for (Allow with a 405, WWW-Authenticate with a 401), lower-case names. */
  fields?: Readonly<Record<string, string>>;
  /** Leave out X-Cache and Cache-Status: answers of the admin port, which serves nothing from the cache. */
  admin?: boolean;
}

/** What sendError needs of a Fastify reply (of any server type). */
interface ErrorReply<R> {
  getHeaders(): object;
  removeHeader(name: string): unknown;
  code(status: number): R;
  headers(values: Record<string, string>): R;
  send(payload: string): R;
}

/** The methods a client may use on the proxy port, for the Allow field of a 405 (RFC 9110 §15.5.6). */
export const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

/** An error answer's fields (in the order sent) and body. */
function errorAnswer(message: string, options: ErrorAnswerOptions = {}): { fields: Array<[string, string]>; body: string } {
  const body = `${message}\n`;
  const fields: Array<[string, string]> = Object.entries(options.fields ?? {});
  fields.push(['content-type', 'text/plain; charset=utf-8'], ['content-length', String(Buffer.byteLength(body))], ['cache-control', 'no-store']);
  if (!options.admin) {
    const [xcacheName, xcache, cacheStatusName, cacheStatus] = outcomeFields(options.xcache ?? 'BYPASS', options.cacheStatus ?? { fwd: 'bypass', detail: 'error' });
    fields.push([xcacheName, xcache], [cacheStatusName, cacheStatus]);
  }
  return { fields, body };
}

/** Sends an error answer on a response; one whose headers already went out can only be aborted. */
export function writeError(res: ServerResponse, status: number, message: string, options?: ErrorAnswerOptions): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { fields, body } = errorAnswer(message, options);
  res.writeHead(status, fields.flat());
  res.end(body);
}

/**
 * The origin failed before any byte of its response reached the client: 502, or 504 for a timeout, with the line
 * that says which (origin/origin-client.ts gatewayError).
 */
export function writeOriginFailure(res: ServerResponse, err: unknown, options: ErrorAnswerOptions): void {
  const failure = gatewayError(err);
  writeError(res, failure.status, failure.message, options);
}

/**
 * Sends an error answer through a Fastify reply (error and not-found handlers, routes), in place of whatever
 * the reply had been given (the fields of a response that failed, say).
 */
export function sendError<R extends ErrorReply<R>>(reply: R, status: number, message: string, options?: ErrorAnswerOptions): R {
  const { fields, body } = errorAnswer(message, options);
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
  reply.code(status);
  reply.headers(Object.fromEntries(fields));
  return reply.send(body);
}

/**
 * A whole error answer as bytes, for a socket that no ServerResponse owns (a request node:http could not parse,
 * or handed over with its parser detached), with `Connection: close`: the caller closes the connection after it.
 */
export function closingErrorResponse(status: number, message: string, options?: ErrorAnswerOptions): string {
  const { fields, body } = errorAnswer(message, options);
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (const [name, value] of fields) head += `${titleCase(name)}: ${value}\r\n`;
  return `${head}Connection: close\r\n\r\n${body}`;
}

/** `x-cache` as `X-Cache`: how these raw answers have always spelled their field names. */
function titleCase(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, letter: string) => dash + letter.toUpperCase());
}
