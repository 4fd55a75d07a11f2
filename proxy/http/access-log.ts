/**
 * The access log (--access-log on): one JSON line per request on stdout through pino's destination (sonic-boom,
 * synchronous as pino's default, batched, in its Buffer mode) in pino's line format (level, time, msg), fresh hits included:
 * method, host, url, status, cache result, tier, bytes written for the response (head included), originMs (from
 * the request's arrival to the origin's response headers, when the origin was asked for it) and ms (to the last
 * byte handed to the socket). No header is ever written (so never Authorization, Cookie or Set-Cookie), and the
 * values of the query parameters named in --log-redact-query are replaced with [redacted].
 */
import type { IncomingMessage } from 'node:http';
import pino from 'pino';
import { CACHE_RESULTS, RESULT_TIERS } from '../admin/metrics.js';

/** A JSON string, or null for a value that is absent. */
function text(value: string | undefined): string {
  return value === undefined ? 'null' : JSON.stringify(value);
}

export class AccessLog {
  /** sonic-boom in Buffer mode (its types know only the string mode's write). */
  private readonly destination: { write(line: Buffer): boolean; flushSync(): void };
  private readonly redacted: ReadonlySet<string>;

  constructor(redactQuery: string | undefined) {
    this.redacted = new Set((redactQuery ?? '').split(',').map((name) => name.trim()).filter((name) => name.length > 0));
    // Buffer mode: sonic-boom's string mode measures its whole pending chunk (Buffer.byteLength of a string of up
    // to 16 KiB, flattened) on every write, about 3 µs a line under load; in Buffer mode a line costs its encoding.
    // Lines are written out in batches of at least 3 KiB or every 100 ms, whichever comes first (and at shutdown,
    // flush()), each batch with one synchronous write(2), as pino's own destination does by default: about 0.2 µs a
    // line. (The asynchronous mode hands each write to libuv's thread pool and back: 7 µs a line, and a backlog
    // under load.) Each write is at most 4 KiB of whole lines (PIPE_BUF): under --workers every process writes to
    // the same stdout, often a pipe (docker, kubectl), where only writes up to PIPE_BUF are atomic, so lines of two
    // workers never interleave. As with pino, a stdout that stops reading (a stalled log collector) holds the
    // process up.
    this.destination = pino.destination({ dest: 1, sync: true, contentMode: 'buffer', minLength: 3072, maxWrite: 4096, periodicFlush: 100 }) as unknown as AccessLog['destination'];
  }

  /** The time field's text, made once per millisecond (toISOString costs about 0.5 µs). */
  private isoMs = 0;
  private iso = '';

  write(req: IncomingMessage, status: number, cache: number, tier: number, bytes: number, originMs: number, ms: number): void {
    // The line pino would write for log.info({...}, 'request'), built directly: pino's own serialisation of the
    // object costs about 7 µs a line here, this about 1 µs (the fast hit path is about 30 µs in all).
    const now = Date.now();
    if (now !== this.isoMs) {
      this.isoMs = now;
      this.iso = new Date(now).toISOString();
    }
    let line = `{"level":30,"time":"${this.iso}","method":${text(req.method)},"host":${text(req.headers.host)},"url":${text(this.redact(req.url ?? ''))},"status":${status},"cache":${text(CACHE_RESULTS[cache])},"tier":${text(RESULT_TIERS[tier])},"bytes":${bytes}`;
    if (originMs > 0) line += `,"originMs":${Math.round(originMs * 1000) / 1000}`;
    line += `,"ms":${Math.round(ms * 1000) / 1000},"msg":"request"}\n`;
    this.destination.write(Buffer.from(line));
  }

  /** Writes out what is buffered (on shutdown). */
  flush(): void {
    try {
      this.destination.flushSync();
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
