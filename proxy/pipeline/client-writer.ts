/**
 * Delivers an origin fill to one client: relays the streamed response (or serves the entry a revalidation
 * produced), undoes the origin's content coding for a client that does not accept it (an origin that compresses
 * whatever Accept-Encoding says), answers the client's own conditional request with 304 when the new response
 * matches it, cuts the
 * client's byte ranges out of the response as it arrives (a 206 or 416 on a miss, RFC 9110 §14), and
 * aborts the client's response, rather than ending it cleanly, when the origin body breaks off.
 *
 * The relayed headers are written with the first body byte (or at the end of an empty body), which is when
 * Node would send them anyway: until then nothing has reached the client, so an origin that sends its headers
 * and then fails still gets the client a 502 (or a stale entry, with stale-if-error) instead of an empty reply.
 * When the body's length is not known in advance (chunked), the first bytes are held until the end of the
 * current turn of the event loop: a body that arrived whole by then (the common small chunked response) is
 * relayed with a Cache-Status that says whether it was stored; a longer one goes out without `stored`, which
 * would not be known until its end.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import type { CacheEntry, StoredHeaders } from '../../cache-store/entry.js';
import { accepts, decodable, encodingPreference, formEtag, storedCoding, varyingOnEncoding } from '../../policies/http/content-coding.js';
import { decodeStream } from './compressor.js';
import type { CacheStatusFields, ForwardReason } from '../../policies/http/cache-status.js';
import { withVia } from '../../policies/http/intermediary.js';
import { SURROGATE_ONLY_FIELDS } from '../../policies/http/surrogate-control.js';
import type { EntryOutcome, FillConsumer, FillOutcome, OriginFill, StreamedHead } from './origin-fill.js';
import { clientValidatorsMatch, notModifiedFields } from '../../policies/http/conditionals.js';
import { hasNoContent } from '../../policies/http/message-body.js';
import { ifRangeMatches, parseContentRange, parseRanges, rangeFraming, RangeSlicer, rangesWithin } from '../../policies/http/ranges.js';
import { notSatisfiableFields, withRangeFields } from './stored-response.js';
import { writeOriginFailure } from '../http/error-answer.js';
import { writeInterim } from '../http/interim.js';
import type { ProxyStats } from '../admin/stats.js';
import { outcomeFields, type OutcomeRecorder, type XCache } from './outcome.js';

export interface ClientWriterContext {
  /** Where the MISS outcome is recorded (served entries record theirs in serveEntry). */
  outcomes: OutcomeRecorder;
  /** Where a stale entry served for a failing origin is counted (staleIfError). */
  stats: ProxyStats;
  /** Why the request went to the origin (Cache-Status fwd=). */
  forward: ForwardReason;
  collapsed: boolean;
  /** Serves a stored entry (after a 304 refresh, or stale on error) and records its outcome. */
  serveEntry: (req: IncomingMessage, res: ServerResponse, entry: CacheEntry, xcache: XCache, cacheStatus: CacheStatusFields) => void;
  /** A waiter that may not share the response fetches on its own. */
  fetchAlone: (req: IncomingMessage, res: ServerResponse) => void;
  /** Longest time a waiter waits for the shared response's headers before fetching on its own (ms). */
  waitLimit: number;
  onError?: (err: unknown) => void;
}

type WireValue = string | string[];

/** Bytes waiting in a client's socket past which it reads a disk-backed fill back from disk (see data()). */
const LAG_BYTES = 1024 * 1024;

/** Most bytes of a response of unknown length held to answer a Range on a miss (see ClientWriter.head). */
const HELD_RANGE_LIMIT = 1024 * 1024;

/**
 * The relayed response's headers for one (forward reason, collapsed) pair, built once per response: a
 * thousand collapsed waiters share one array instead of rebuilding it each.
 */
function missHeaders(outcome: StreamedHead, forward: ForwardReason, collapsed: boolean): WireValue[] {
  // `stored` only once it is settled (RFC 9211 §2.6 lets it be left out): never claimed for a body that may
  // still turn out too large.
  const stored = outcome.stored && outcome.storedKnown;
  const cacheKey = `${forward}|${collapsed}|${stored}`;
  const cached = outcome.wire?.get(cacheKey);
  if (cached) return cached;
  const cacheStatus: CacheStatusFields = {
    fwd: forward,
    fwdStatus: outcome.status,
    stored,
    ...(collapsed && { collapsed: true }),
    ...(outcome.reason && { detail: outcome.reason }),
  };
  const headers: WireValue[] = [];
  // A collapsed waiter gets the fields as shared (as stored): not those a qualified no-cache or private lists.
  const fields = (collapsed && outcome.sharedHeaders) || outcome.headers;
  for (const name in fields) {
    if (name === 'cache-status' || name === 'via' || name === 'x-cache' || SURROGATE_ONLY_FIELDS.has(name)) continue;
    headers.push(name, fields[name] as WireValue);
  }
  headers.push('via', withVia(fields.via));
  headers.push(...outcomeFields('MISS', cacheStatus, outcome.headers['cache-status']));
  (outcome.wire ??= new Map()).set(cacheKey, headers);
  return headers;
}

/**
 * A response's fields as decoded for a client that does not accept its content coding: no Content-Encoding, no
 * Content-Length (the decoded length is not known in advance), the identity form's entity tag (as a hit decoded
 * from the same stored entry gets, hit-head.ts onTheFlyFields) and Vary naming Accept-Encoding.
 */
function decodedFields(headers: StoredHeaders): StoredHeaders {
  const out: StoredHeaders = {};
  for (const name in headers) if (name !== 'content-encoding' && name !== 'content-length') out[name] = headers[name] as WireValue;
  const etag = formEtag(headers.etag, 'identity');
  if (etag !== undefined) out.etag = etag;
  return varyingOnEncoding(out);
}

/** The streamed response as a client that does not accept its coding gets it (see ClientWriter.decode). */
function decodedHead(outcome: StreamedHead): StreamedHead {
  const decoded: StreamedHead = { ...outcome, headers: decodedFields(outcome.headers), contentLength: undefined, wire: undefined };
  if (outcome.sharedHeaders !== undefined) decoded.sharedHeaders = decodedFields(outcome.sharedHeaders);
  return decoded;
}

export class ClientWriter implements FillConsumer {
  /** The origin's content coding being undone for this client (see decode()). */
  private decoding: Transform | undefined;
  private bodyless = false;
  private finished = false;
  /** The relayed response, until its headers are written (with the first body byte, or at its end). */
  private pending: StreamedHead | undefined;
  /** Body chunks held back with the headers until the end of this turn (see above). */
  private held: Buffer[] = [];
  private holdTimer: NodeJS.Immediate | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  /** A Range on a miss: cuts the 206's body out of the response as it streams, with the 206's fields. */
  private slicer: RangeSlicer | undefined;
  private rangeFields: WireValue[] | undefined;
  /** A Range on a miss of unknown length: the body so far, held until its end (see head()). */
  private rangeHeld: { chunks: Buffer[]; bytes: number } | undefined;
  /** Bytes of the response body handed to deliver() so far. */
  private offset = 0;
  /** Reading back from the fill's disk copy (see data()); the end waits until it has caught up. */
  private lagging = false;
  private endPending = false;

  /** An interim response from the origin, while this client waits for the final one. */
  interim(status: number, headers: Readonly<Record<string, string | string[] | undefined>>): void {
    if (this.finished || this.pending !== undefined) return;
    writeInterim(this.req, this.res, status, headers);
  }

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly fill: OriginFill,
    private readonly ctx: ClientWriterContext,
  ) {
    res.on('close', () => {
      this.setLagging(false);
      clearTimeout(this.waitTimer);
      clearImmediate(this.holdTimer);
      if (!this.finished) this.fill.leave(this);
      // A client gone before the decoded body's end: its zlib stream (native memory) goes with it.
      if (this.decoding !== undefined && !this.decoding.writableFinished) this.decoding.destroy();
    });
    res.on('drain', () => {
      this.fill.resume();
      if (this.lagging) this.pull();
    });
    if (ctx.collapsed) {
      // A waiter's patience is bounded: past it, it stops waiting for the shared fetch and goes on its own.
      this.waitTimer = setTimeout(() => {
        if (this.finished || this.pending !== undefined || res.headersSent) return;
        this.fill.leave(this);
        this.detached();
      }, ctx.waitLimit);
      this.waitTimer.unref();
    }
  }

  detached(): void {
    clearTimeout(this.waitTimer);
    this.finished = true;
    this.ctx.fetchAlone(this.req, this.res);
  }

  head(outcome: FillOutcome): void {
    clearTimeout(this.waitTimer);
    const { req, res, ctx } = this;
    if (outcome.kind === 'entry') {
      this.serveEntry(outcome);
      return;
    }
    const coding = storedCoding(outcome.headers['content-encoding']);
    if (coding !== 'identity' && decodable(coding) && outcome.status !== 206 && !accepts(encodingPreference(req.headers['accept-encoding']), coding)) {
      this.decode(outcome, coding);
      return;
    }
    // (Validators answer a GET or HEAD with 304; a cached POST is answered in full.)
    if (outcome.status === 200 && req.method !== 'POST' && clientValidatorsMatch(req.headers, outcome.headers)) {
      ctx.outcomes.record('MISS', res);
      res.writeHead(304, notModifiedFields(missHeaders(outcome, ctx.forward, ctx.collapsed)));
      res.end();
      this.bodyless = true;
      this.finished = true;
      return;
    }
    if (req.method === 'HEAD' || hasNoContent(outcome.status)) {
      ctx.outcomes.record('MISS', res);
      res.writeHead(outcome.status, missHeaders(outcome, ctx.forward, ctx.collapsed));
      res.end();
      this.bodyless = true;
      this.finished = true;
      return;
    }
    if (outcome.status === 200 && req.method === 'GET' && req.headers.range !== undefined && outcome.contentLength === undefined) {
      // A Range on a miss of unknown length (chunked): Content-Range needs the length, so the body is held to its
      // end (up to HELD_RANGE_LIMIT; a longer one goes out whole, as RFC 9110 §14.2 allows).
      if (ifRangeMatches(req.headers, outcome.headers)) this.rangeHeld = { chunks: [], bytes: 0 };
    }
    if (outcome.status === 200 && req.method === 'GET' && req.headers.range !== undefined && outcome.contentLength !== undefined) {
      // A Range on a miss: the ranges are cut out of the whole response as it arrives (RFC 9110 §14).
      const ranges = parseRanges(req.headers, outcome.headers, outcome.contentLength);
      if (ranges === 'unsatisfiable') {
        ctx.outcomes.record('MISS', res);
        res.writeHead(416, notSatisfiableFields(missHeaders(outcome, ctx.forward, ctx.collapsed), outcome.contentLength));
        res.end();
        this.bodyless = true;
        this.finished = true;
        return;
      }
      if (ranges !== null) {
        const framing = rangeFraming(ranges, outcome.contentLength, outcome.headers['content-type']);
        this.slicer = new RangeSlicer(framing);
        this.rangeFields = withRangeFields(missHeaders(outcome, ctx.forward, ctx.collapsed), framing);
      }
    }
    if (outcome.status === 206 && req.method === 'GET' && req.headers.range !== undefined && outcome.contentLength !== undefined) {
      // A part from the origin (one it sent unasked, or a stored part combined with the rest): the client's ranges
      // are cut out of it when they all lie within it; otherwise (or when its length is not its Content-Range's)
      // it is relayed as it is.
      const part = parseContentRange(outcome.headers['content-range']);
      const ranges = part && outcome.contentLength === part.end - part.start + 1 && parseRanges(req.headers, outcome.headers, part.length);
      if (part !== undefined && Array.isArray(ranges) && rangesWithin(ranges, part)) {
        const framing = rangeFraming(ranges, part.length, outcome.headers['content-type']);
        this.slicer = new RangeSlicer(framing, part.start);
        this.rangeFields = withRangeFields(missHeaders(outcome, ctx.forward, ctx.collapsed), framing);
      }
    }
    this.pending = outcome;
  }

  /**
   * The origin sent a coding this client does not accept (it compressed whatever Accept-Encoding said, as
   * pre-compressed objects in a bucket are): the body is decoded on its way out, as a hit from the stored entry
   * would be, never relayed in a coding the client refused and never fetched again. Validators and ranges are
   * not evaluated against the decoded bytes: the whole decoded representation goes out (RFC 9110 §14.2 allows it).
   */
  private decode(outcome: StreamedHead, coding: 'br' | 'gzip' | 'deflate'): void {
    const { req, res } = this;
    this.pending = decodedHead(outcome);
    if (req.method === 'HEAD' || hasNoContent(outcome.status)) {
      this.writeHead();
      res.end();
      this.bodyless = true;
      this.finished = true;
      return;
    }
    const stream = decodeStream(coding);
    this.decoding = stream;
    // Its bytes go out with backpressure (pipe); once it has room again, the fill (or the read-back) goes on.
    stream.on('drain', () => {
      this.fill.resume();
      if (this.lagging) this.pull();
    });
    stream.on('error', () => {
      // A body that does not decode: the response cannot be completed.
      this.finished = true;
      res.destroy();
    });
    stream.on('end', () => {
      this.finished = true;
    });
    this.writeHead();
    stream.pipe(res);
  }

  private writeHead(): void {
    const outcome = this.pending;
    if (outcome === undefined) return;
    this.pending = undefined;
    this.ctx.outcomes.record('MISS', this.res);
    if (this.rangeFields !== undefined) this.res.writeHead(206, this.rangeFields);
    else this.res.writeHead(outcome.status, missHeaders(outcome, this.ctx.forward, this.ctx.collapsed));
  }

  data(chunk: Buffer): boolean {
    if (this.bodyless || this.lagging) return true;
    if (this.fill.readable && this.res.writableLength > LAG_BYTES) {
      // The client is slower than the origin, and the body is going to disk: it reads from there from now on,
      // at its own pace (pull), rather than buffering here or holding the fill back.
      this.setLagging(true);
      return true;
    }
    this.offset += chunk.length;
    return this.deliver(chunk);
  }

  /** Joined a disk-backed fill late: everything so far is read back from the disk tier. */
  behind(): void {
    this.setLagging(true);
    this.pull();
  }

  /** Starts or stops reading back from the fill's disk copy, which the fill keeps while this reads it. */
  private setLagging(on: boolean): void {
    if (this.lagging === on) return;
    this.lagging = on;
    this.fill.readingBack(on);
  }

  /** Writes bytes read back from the fill's disk copy until the socket pushes back or it has caught up. */
  private pull(): void {
    while (this.lagging && !this.bodyless && !this.res.destroyed) {
      const bytes = this.fill.readAt(this.offset);
      if (bytes === undefined || bytes.length === 0) {
        if (this.offset < this.fill.received) {
          // A chunk that is gone (the fill failed, the entry was removed): the response cannot be completed.
          this.finished = true;
          this.res.destroy();
          return;
        }
        this.setLagging(false);
        if (this.endPending) this.end();
        return;
      }
      this.offset += bytes.length;
      if (!this.deliver(bytes)) return; // the next 'drain' pulls again
    }
  }

  private deliver(chunk: Buffer): boolean {
    if (this.bodyless) return true;
    if (this.decoding !== undefined) return this.decoding.write(chunk);
    if (this.slicer !== undefined) return this.rangeData(this.slicer, chunk);
    if (this.rangeHeld !== undefined) {
      const held = this.rangeHeld;
      held.chunks.push(chunk);
      held.bytes += chunk.length;
      if (held.bytes <= HELD_RANGE_LIMIT) return true;
      // Too long to hold: the whole response goes out.
      this.rangeHeld = undefined;
      this.writeHead();
      let more = true;
      for (const bytes of held.chunks) more = this.res.write(bytes) && more;
      return more;
    }
    // (Once holding, every chunk is held until the release, to keep them in order.)
    if (this.holdTimer !== undefined || (this.pending !== undefined && !this.pending.storedKnown)) {
      this.held.push(chunk);
      this.holdTimer ??= setImmediate(() => this.release());
      return true;
    }
    this.writeHead();
    return this.res.write(chunk);
  }

  /** The 206's bytes that `chunk` holds; once all are out, the response ends and the writer leaves the fill. */
  private rangeData(slicer: RangeSlicer, chunk: Buffer): boolean {
    const out = slicer.push(chunk);
    let more = true;
    if (out.length > 0) {
      this.writeHead();
      for (const bytes of out) more = this.res.write(bytes) && more;
    }
    if (slicer.done) {
      this.bodyless = true;
      this.finished = true;
      this.res.end();
      // Nobody else reading an unstored response: the fill may stop fetching it.
      this.fill.leave(this);
      return true;
    }
    return more;
  }

  end(): void {
    if (this.bodyless) return;
    if (this.lagging) {
      this.endPending = true;
      return;
    }
    if (this.decoding !== undefined) {
      // The decoder ends the response once its last bytes are out (pipe).
      this.decoding.end();
      return;
    }
    if (this.rangeHeld !== undefined) return this.endHeldRange(this.rangeHeld);
    if (this.slicer !== undefined) {
      // The body ended before the ranges' last byte (it cannot, with a Content-Length, but never end cleanly short).
      this.finished = true;
      if (this.res.headersSent) this.res.destroy();
      else writeOriginFailure(this.res, new Error('origin body ended before the requested range'), { xcache: 'MISS', cacheStatus: { fwd: this.ctx.forward, detail: 'origin-error' } });
      return;
    }
    this.release();
    this.finished = true;
    this.res.end();
  }

  /** A held body of unknown length has ended: its ranges (206), a 416, or the whole of it. */
  private endHeldRange(held: { chunks: Buffer[]; bytes: number }): void {
    this.rangeHeld = undefined;
    this.finished = true;
    const outcome = this.pending;
    const body = Buffer.concat(held.chunks, held.bytes);
    if (outcome === undefined) {
      this.res.end(body);
      return;
    }
    const ranges = parseRanges(this.req.headers, outcome.headers, held.bytes);
    if (ranges === 'unsatisfiable') {
      this.pending = undefined;
      this.ctx.outcomes.record('MISS', this.res);
      this.res.writeHead(416, notSatisfiableFields(missHeaders(outcome, this.ctx.forward, this.ctx.collapsed), held.bytes));
      this.res.end();
      return;
    }
    if (ranges === null) {
      this.writeHead();
      this.res.end(body);
      return;
    }
    const framing = rangeFraming(ranges, held.bytes, outcome.headers['content-type']);
    this.rangeFields = withRangeFields(missHeaders(outcome, this.ctx.forward, this.ctx.collapsed), framing);
    this.writeHead();
    for (const bytes of new RangeSlicer(framing).push(body)) this.res.write(bytes);
    this.res.end();
  }

  /** Writes the headers and the chunks held with them. */
  private release(): void {
    clearImmediate(this.holdTimer);
    this.holdTimer = undefined;
    this.writeHead();
    for (const chunk of this.held) this.res.write(chunk);
    this.held = [];
  }

  error(err: unknown, fallback?: EntryOutcome): void {
    clearTimeout(this.waitTimer);
    this.ctx.onError?.(err);
    this.finished = true;
    // Answered in full already (HEAD, 204, or a 304 to the client's own validators): nothing more to say.
    if (this.bodyless) return;
    this.pending = undefined;
    clearImmediate(this.holdTimer);
    this.held = [];
    if (this.decoding !== undefined) {
      // The decoded response is under way: it cannot be completed.
      this.decoding.unpipe(this.res);
      this.decoding.destroy();
      this.res.destroy();
      return;
    }
    if (!this.res.headersSent) {
      // Nothing of the response has gone out: answer as for an origin that failed before its headers.
      if (fallback) {
        this.serveEntry(fallback);
        return;
      }
      writeOriginFailure(this.res, err, {
        xcache: 'MISS',
        cacheStatus: { fwd: this.ctx.forward, ...(this.ctx.collapsed && { collapsed: true }), detail: 'origin-error' },
      });
      return;
    }
    // Headers (and perhaps part of the body) are out: the only honest signal left is an aborted response.
    this.res.destroy();
  }

  private serveEntry(outcome: EntryOutcome): void {
    const { req, res, ctx } = this;
    this.finished = true;
    if (outcome.how === 'shared') {
      ctx.serveEntry(req, res, outcome.entry, 'HIT', { hit: true, collapsed: true });
      return;
    }
    const revalidated = outcome.how === 'revalidated';
    if (!revalidated) ctx.stats.staleIfError++;
    ctx.serveEntry(req, res, outcome.entry, revalidated ? 'REVALIDATED' : 'STALE', {
      fwd: ctx.forward,
      ...(outcome.originStatus !== undefined && { fwdStatus: outcome.originStatus }),
      ...(ctx.collapsed && { collapsed: true }),
      ...(!revalidated && { detail: outcome.originStatus === undefined ? 'stale-if-error; origin-unreachable' : 'stale-if-error' }),
    });
  }
}
