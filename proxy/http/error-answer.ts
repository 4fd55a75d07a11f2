/**
 * edgecache's own error answers: a status and one short plain-text line, `Cache-Control: no-store`, and X-Cache
 * and Cache-Status like every other response (4xx from request checks, 502/504 from origin failures).
 */
import type { ServerResponse } from 'node:http';
import { formatCacheStatus, type CacheStatusFields, type XCache } from '../../policies/http/cache-status.js';

/** A short plain-text error (4xx from request checks, 502/504 from origin failures). */
export function writeError(res: ServerResponse, status: number, message: string, cacheStatus?: CacheStatusFields, xcache: XCache = 'BYPASS'): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${message}\n`;
  res.writeHead(status, [
    'content-type',
    'text/plain; charset=utf-8',
    'content-length',
    String(Buffer.byteLength(body)),
    'cache-control',
    'no-store',
    'x-cache',
    xcache,
    'cache-status',
    formatCacheStatus(cacheStatus ?? { fwd: 'bypass', detail: 'error' }),
  ]);
  res.end(body);
}

/**
 * A whole error response, as bytes for a socket that no ServerResponse owns (a request node:http could not
 * parse or handed over with its parser detached): the same one-line body, X-Cache and Cache-Status as
 * writeError, and `Connection: close`, since the caller closes the connection after it.
 */
export function closingErrorResponse(status: number, reason: string, message: string, extraFields = ''): string {
  const body = `${message}\n`;
  return (
    `HTTP/1.1 ${status} ${reason}\r\n${extraFields}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Cache-Control: no-store\r\nX-Cache: BYPASS\r\nCache-Status: ${formatCacheStatus({ fwd: 'bypass', detail: 'error' })}\r\nConnection: close\r\n\r\n${body}`
  );
}
