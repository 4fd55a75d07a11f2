/**
 * The access log (--access-log on): one JSON line per request on stdout through pino's destination (sonic-boom,
 * asynchronous) in pino's line format (level, time, msg), fresh hits included:
 * method, host, url, status, cache result, tier, bytes written for the response (head included), originMs (from
 * the request's arrival to the origin's response headers, when the origin was asked for it) and ms (to the last
 * byte handed to the socket). No header is ever written (so never Authorization, Cookie or Set-Cookie), and the
 * values of the query parameters named in --log-redact-query are replaced with [redacted].
 */
import type { IncomingMessage } from 'node:http';
import pino, { type DestinationStream } from 'pino';
import { CACHE_RESULTS, RESULT_TIERS } from '../admin/metrics.js';

/** A JSON string, or null for a value that is absent. */
function text(value: string | undefined): string {
  return value === undefined ? 'null' : JSON.stringify(value);
}

export class AccessLog {
  private readonly destination: DestinationStream & { flushSync?: () => void };
  private readonly redacted: ReadonlySet<string>;

  constructor(redactQuery: string | undefined, destination?: DestinationStream) {
    this.redacted = new Set((redactQuery ?? '').split(',').map((name) => name.trim()).filter((name) => name.length > 0));
    this.destination = destination ?? pino.destination({ dest: 1, sync: false });
  }

  write(req: IncomingMessage, status: number, cache: number, tier: number, bytes: number, originMs: number, ms: number): void {
    // The line pino would write for log.info({...}, 'request'), built directly: pino's own serialisation of the
    // object costs about 7 µs a line here, this about 1 µs (the fast hit path is about 30 µs in all).
    let line = `{"level":30,"time":"${new Date().toISOString()}","method":${text(req.method)},"host":${text(req.headers.host)},"url":${text(this.redact(req.url ?? ''))},"status":${status},"cache":${text(CACHE_RESULTS[cache])},"tier":${text(RESULT_TIERS[tier])},"bytes":${bytes}`;
    if (originMs > 0) line += `,"originMs":${Math.round(originMs * 1000) / 1000}`;
    line += `,"ms":${Math.round(ms * 1000) / 1000},"msg":"request"}\n`;
    this.destination.write(line);
  }

  /** Writes out what is buffered (on shutdown). */
  flush(): void {
    try {
      this.destination.flushSync?.();
    } catch {
      // Not ready yet (nothing written) or stdout closed: nothing to flush.
    }
  }

  private redact(url: string): string {
    const mark = url.indexOf('?');
    if (mark < 0 || this.redacted.size === 0) return url;
    const params = url
      .slice(mark + 1)
      .split('&')
      .map((param) => {
        const eq = param.indexOf('=');
        const raw = eq < 0 ? param : param.slice(0, eq);
        let name = raw;
        try {
          name = decodeURIComponent(raw.replace(/\+/g, ' '));
        } catch {
          // A malformed escape: compared as written.
        }
        return this.redacted.has(name) ? `${raw}=[redacted]` : param;
      });
    return `${url.slice(0, mark)}?${params.join('&')}`;
  }
}
