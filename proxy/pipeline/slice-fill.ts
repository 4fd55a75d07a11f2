/**
 * Sliced fills (--slice-size), for large objects: a GET that misses a URL's entries asks the origin for the object
 * in slices of a fixed size (`Range: bytes=N*S-(N+1)*S-1`), each stored as a record of its own
 * (policies/http/slices.ts sliceKey), as nginx's slice module, ATS and Fastly do. A client's Range fetches only the
 * slices it covers; a full GET streams the slices in order, fetching the missing ones as it goes, at the client's
 * pace (at most the slice being written and the next one are held per response).
 *
 * The first slice describes the object: its Content-Range gives the length, its strong validator (ETag, or a strong
 * Last-Modified) names the representation, and its freshness is the object's (when it is stale it is revalidated,
 * when it is gone the object is asked for again from its first slice; the other slices stay usable while they carry
 * the same validator; with stale-if-error a stale first slice stands in for a failing origin).
 * Every later slice is asked for with If-Range and must come back as a 206 of exactly its bytes with the first
 * slice's validator: anything else means the object changed, and then the stored slices are dropped and no
 * response ever splices two versions (the client's response starts again when nothing of it was sent, and its
 * connection is aborted otherwise).
 *
 * What is not sliced goes to the whole-object fill (the pipeline's, origin-fill.ts): an origin that answers the
 * first slice's request with a 200 (it ignores Range) or with the whole object in one part, and, with a second
 * request, a first slice that cannot be sliced (no strong validator, Vary, Content-Encoding, a compressible type
 * under --compress, not storable). Such a URL is not tried in slices again for a while (UNSLICEABLE_MS).
 *
 * Concurrent requests for one slice share one origin fetch (`fetches`). Slices are not coordinated between worker
 * processes (each process fetches the slices it lacks; the disk tier they share lets them find each other's).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { bodyFromChunks, isChunked } from '../../cache-store/body.js';
import { deletableAt, newEntryMeta, type CacheEntry, type StoredHeaders } from '../../cache-store/entry.js';
import type { CacheStatusFields } from '../../policies/http/cache-status.js';
import type { RequestTarget } from '../../policies/http/cache-key.js';
import { clientValidatorsMatch, notModifiedFields } from '../../policies/http/conditionals.js';
import type { PolicyRequest } from '../../policies/http/freshness.js';
import { parseHttpDate } from '../../policies/http/http-date.js';
import { endToEndResponseHeaders } from '../../policies/http/intermediary.js';
import { freshenedHeaders, isOriginError, withoutClientValidators } from '../../policies/http/revalidation.js';
import { postTag } from '../../policies/http/post-key.js';
import { ifRangeFor, parseContentRange, parseRanges, rangeFraming, strongValidator, type ByteRange, type RangePart } from '../../policies/http/ranges.js';
import { firstSliceKind, isSlice, sliceCount, sliceKey, sliceRange, slicesCovering } from '../../policies/http/slices.js';
import { parseSurrogateKeys, TAG_FIELDS } from '../../policies/http/surrogate-keys.js';
import { writeOriginFailure } from '../http/error-answer.js';
import { ageSeconds, storedFields, ttlSeconds, type WireValue } from '../http/hit-head.js';
import { HitForMiss } from './hit-for-miss.js';
import { outcomeFields, type XCache } from './outcome.js';
import { notSatisfiableFields, withRangeFields } from './stored-response.js';
import type { PipelineOptions } from './cache-pipeline.js';

/** The pipeline's dependencies that slice fills share (see PipelineOptions), and their own. */
export interface SliceFillOptions
  extends Pick<PipelineOptions, 'store' | 'freshness' | 'origin' | 'stats' | 'outcomes' | 'log' | 'now' | 'forwarding' | 'jitter' | 'exposeTagHeaders' | 'compressor'> {
  /** Bytes per slice (--slice-size). */
  sliceSize: number;
  /**
   * Fills the object whole, as without slicing (the pipeline's fill, collapsed with others), going on from
   * `answered` when the origin's answer is already there.
   */
  whole: (req: IncomingMessage, res: ServerResponse, target: RequestTarget, answered?: Promise<Dispatcher.ResponseData>) => void;
}

/** How long a URL whose first slice could not be sliced goes straight to the whole-object fill. */
const UNSLICEABLE_MS = 10 * 60_000;

/** What asking for a slice came to. */
type SliceResult =
  /**
   * The slice: found stored, fetched (and stored) now, or (the first slice) revalidated by a 304, or stale standing
   * in for an origin that failed (stale-if-error).
   */
  | { kind: 'slice'; entry: CacheEntry; how: 'stored' | 'fetched' | 'revalidated' | 'stale' }
  /** First slice only: fill the object whole, from `answered` (claimed by the first request that reads it) if set. */
  | { kind: 'whole'; answered: Promise<Dispatcher.ResponseData> | undefined }
  /** The object changed since its first slice (a 200 to If-Range, another validator or length). */
  | { kind: 'changed' }
  | { kind: 'failed'; err: unknown };

/** The object a first slice describes. */
interface SlicedObject {
  primaryKey: string;
  length: number;
  /** ranges.ts strongValidator of the first slice: every slice must carry the same. */
  validator: string;
  /** The If-Range later slices are asked for with (the validator as sent). */
  ifRange: string;
  first: CacheEntry;
}

const EMPTY = Buffer.alloc(0);

export class SliceFill {
  /** Slice fetches in flight, by slice key: concurrent requests for one slice share one. */
  private readonly fetches = new Map<string, Promise<SliceResult>>();
  /** URLs whose first slice could not be sliced: filled whole for a while. */
  private readonly unsliceable: HitForMiss;

  constructor(private readonly options: SliceFillOptions) {
    this.unsliceable = new HitForMiss(UNSLICEABLE_MS, options.now);
  }

  /** Whether a request that missed the URL's entries is answered in slices. */
  takes(req: IncomingMessage, target: RequestTarget): boolean {
    // A request with credentials is answered for its sender: the whole-object fill decides what may be shared.
    return (req.method === 'GET' || req.method === 'HEAD') && req.headers.authorization === undefined && !this.unsliceable.has(target.key);
  }

  /** Answers the request from the URL's slices, fetching those missing. */
  async serve(req: IncomingMessage, res: ServerResponse, target: RequestTarget): Promise<void> {
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const first = await this.firstSlice(req, target);
        if (first.kind === 'whole') {
          // The first request to read it goes on from the origin's answer; the others join that fill.
          const answered = first.answered;
          first.answered = undefined;
          this.options.whole(req, res, target, answered);
          return;
        }
        if (first.kind === 'failed') return this.failed(res, first.err);
        if (first.kind === 'changed') continue;
        if ((await this.answer(req, res, target, first)) === 'done') return;
        // The object changed under this response: start again only when none of it was sent.
        if (res.headersSent) {
          res.destroy();
          return;
        }
      }
      // Changed again while being answered: filled whole, as without slicing.
      this.unsliceable.mark(target.key);
      this.options.whole(req, res, target);
    } catch (err) {
      this.failed(res, err);
    }
  }

  /**
   * A request with only-if-cached (RFC 9111 §5.2.1.7): answered from the URL's stored slices when its first slice is
   * fresh for the request and every slice the response needs is stored; returns false (nothing written) otherwise.
   */
  async serveCached(req: IncomingMessage, res: ServerResponse, target: RequestTarget): Promise<boolean> {
    const { store, freshness, now } = this.options;
    const first = await store.lookupExact(sliceKey(target.key, 0)).catch(() => undefined);
    const object = first === undefined ? undefined : this.describe(first);
    if (first === undefined || object === undefined || freshness.evaluate(first.meta, req.headers, now()) !== 'fresh') return false;
    const ranges = req.method === 'GET' ? parseRanges(req.headers, first.meta.headers, object.length) : null;
    if (Array.isArray(ranges) || ranges === null) {
      const parts: RangePart[] = ranges === null ? [{ start: 0, end: object.length - 1, head: EMPTY }] : rangeFraming(ranges, object.length, first.meta.headers['content-type']).parts;
      const indices = req.method === 'HEAD' ? [] : neededSlices(parts, this.options.sliceSize);
      if (!indices.every((i) => i === 0 || this.storedNow(object, i))) return false;
    }
    try {
      // Every slice is stored: answer() reads them (one evicted meanwhile would be fetched, as a MISS).
      if ((await this.answer(req, res, target, { kind: 'slice', entry: first, how: 'stored' })) === 'changed' && !res.headersSent) return false;
    } catch (err) {
      this.failed(res, err);
    }
    return true;
  }

  private failed(res: ServerResponse, err: unknown): void {
    this.options.stats.originError(err);
    this.options.log.warn({ err }, 'sliced fill failed');
    if (res.headersSent) res.destroy();
    else writeOriginFailure(res, err, { cacheStatus: { fwd: 'uri-miss', detail: 'origin-error' } });
  }

  /** The object's first slice: stored and fresh for this request, or asked for (again). */
  private async firstSlice(req: IncomingMessage, target: RequestTarget): Promise<SliceResult> {
    const { store, freshness, now } = this.options;
    const key = sliceKey(target.key, 0);
    const stored = await store.lookupExact(key).catch(() => undefined);
    if (stored !== undefined && this.describe(stored) !== undefined && freshness.evaluate(stored.meta, req.headers, now()) === 'fresh') {
      return { kind: 'slice', entry: stored, how: 'stored' };
    }
    const previous = stored !== undefined && this.describe(stored) !== undefined ? stored : undefined;
    const result = await this.shared(key, () => this.fetchFirst(req, target, previous));
    // An origin that fails: a stale first slice may stand in (stale-if-error), with the slices of its validator.
    if (result.kind === 'failed' && previous !== undefined && freshness.canServeStaleOnError(previous.meta)) {
      this.options.stats.staleIfError++;
      return { kind: 'slice', entry: previous, how: 'stale' };
    }
    return result;
  }

  /** The object a stored first slice describes, or undefined when it is not one (another slice size, say). */
  private describe(first: CacheEntry): SlicedObject | undefined {
    const part = parseContentRange(first.meta.headers['content-range']);
    const validator = strongValidator(first.meta.headers);
    if (part === undefined || validator === undefined || !isSlice(first.meta.headers, 0, this.options.sliceSize, part.length, validator)) return undefined;
    return { primaryKey: first.meta.primaryKey, length: part.length, validator, ifRange: ifRangeFor(first.meta.headers) as string, first };
  }

  /** One fetch per slice key at a time, shared by every request that needs it meanwhile. */
  private shared(key: string, fetch: () => Promise<SliceResult>): Promise<SliceResult> {
    let pending = this.fetches.get(key);
    if (pending === undefined) {
      const started = fetch().catch((err: unknown): SliceResult => ({ kind: 'failed', err }));
      pending = started;
      this.fetches.set(key, started);
      void started.then(() => {
        if (this.fetches.get(key) === started) this.fetches.delete(key);
      });
    }
    return pending;
  }

  private async fetchFirst(req: IncomingMessage, target: RequestTarget, previous: CacheEntry | undefined): Promise<SliceResult> {
    const { store, freshness, compressor, sliceSize } = this.options;
    const since = store.purgeGeneration;
    const policyRequest = this.policyRequest(req, target);
    // A stale first slice is revalidated: the origin evaluates If-None-Match before Range (RFC 9110 §13.2.2).
    const conditional: Record<string, string> = {};
    if (previous !== undefined) {
      // The first slice's policy, made again from what is stored (a slice is revalidated as the 200 it is part of).
      const stored = freshness.storedPolicy({ status: 200, headers: previous.meta.headers }, policyRequest);
      const validators = stored.revalidationHeaders({ ...policyRequest, headers: withoutClientValidators(req.headers) });
      if (typeof validators['if-none-match'] === 'string') conditional['if-none-match'] = validators['if-none-match'];
      if (typeof validators['if-modified-since'] === 'string') conditional['if-modified-since'] = validators['if-modified-since'];
    }
    const response = await this.request(req, target, { ...conditional, range: `bytes=0-${sliceSize - 1}` });
    const status = response.statusCode;
    const originHeaders = response.headers as Record<string, string | string[] | undefined>;
    if (status === 304 && previous !== undefined) {
      discard(response);
      return { kind: 'slice', entry: await this.freshen(previous, originHeaders, since, policyRequest), how: 'revalidated' };
    }
    if (previous !== undefined && isOriginError(status) && freshness.canServeStaleOnError(previous.meta)) {
      discard(response);
      return { kind: 'failed', err: new Error(`the origin answered ${status}`) };
    }
    if (status !== 206) {
      // 200 (Range ignored), an error, a redirect...: the whole-object fill answers it as it would without slices.
      // A 416 (an empty object) says nothing about the object as a whole: asked for again, without Range.
      if (status !== 416) return { kind: 'whole', answered: Promise.resolve(response) };
      return this.unsliceableFirst(target, response);
    }
    const shape = firstSliceKind(originHeaders, sliceSize);
    // The whole object in one part: stored as the 200 it stands for.
    if (shape.kind === 'whole') return { kind: 'whole', answered: Promise.resolve(asWhole(response)) };
    const policy = freshness.createPolicy(policyRequest, { status: 200, headers: originHeaders });
    const reason = freshness.notStorableReason(policy, policyRequest, { status: 200, headers: originHeaders });
    // The request's own no-store says nothing about the URL: only this request is answered whole.
    if (reason === 'request-no-store') {
      discard(response);
      return { kind: 'whole', answered: undefined };
    }
    const unsliceable =
      shape.kind === 'unsliceable' ||
      reason !== null ||
      (compressor?.candidate(200, withoutContentRange(endToEndResponseHeaders(originHeaders)), shape.part.length) ?? false);
    if (unsliceable) return this.unsliceableFirst(target, response);
    const chunks = await readBody(response, sliceSize);
    if (chunks === undefined) return { kind: 'failed', err: new Error('the first slice is not the length its Content-Range says') };
    const entry = await this.store(target, 0, originHeaders, chunks, sliceSize, since, req);
    // A new representation: the slices of the one before it are of no use any more.
    const before = previous && this.describe(previous);
    if (before !== undefined && (before.validator !== strongValidator(entry.meta.headers) || before.length !== shape.part.length)) {
      void this.drop(target.key, before.length, 1);
    }
    return { kind: 'slice', entry, how: 'fetched' };
  }

  /**
   * The stale first slice freshened by a 304 (RFC 9111 §3.2, §4.3.4): the 304's fields replace the stored ones but
   * those describing the stored body (Content-Range among them), the lifetime starts again, the body stays.
   */
  private async freshen(previous: CacheEntry, originHeaders: Record<string, string | string[] | undefined>, since: number, policyRequest: PolicyRequest): Promise<CacheEntry> {
    const { store, freshness, jitter } = this.options;
    const update = endToEndResponseHeaders(originHeaders);
    if (!this.options.exposeTagHeaders) for (const name of TAG_FIELDS) delete update[name];
    // A cookie set on a 304 is not merged into a stored response every client gets (as origin-fill.ts freshen does).
    if (!freshness.cacheSetCookie) delete update['set-cookie'];
    const headers = freshenedHeaders(previous.meta.headers, update);
    const policy = freshness.revalidatedPolicy(freshness.storedPolicy({ status: 200, headers: previous.meta.headers }, policyRequest), policyRequest, originHeaders, { status: 200, headers });
    const lifetimes = freshness.lifetimes(policy, { status: 200, headers }, jitter());
    const entry: CacheEntry = {
      kind: 'entry',
      meta: newEntryMeta(lifetimes, { ...previous.meta, headers, storedAt: this.options.now(), deletableAt: deletableAt(lifetimes, freshness.grace) }),
      body: previous.body,
    };
    await store.replace(entry, previous.meta, since).catch(() => undefined);
    return entry;
  }

  /**
   * A first slice that cannot be sliced: its answer is let go, and the object is asked for again without Range by
   * the whole-object fill (a second origin request, for this URL only once in UNSLICEABLE_MS).
   */
  private unsliceableFirst(target: RequestTarget, response: Dispatcher.ResponseData): SliceResult {
    discard(response);
    this.unsliceable.mark(target.key);
    return { kind: 'whole', answered: undefined };
  }

  /** Slice `index` (after the first) of the object: stored with its validator, or asked for with If-Range. */
  private async slice(req: IncomingMessage, target: RequestTarget, object: SlicedObject, index: number): Promise<SliceResult> {
    if (index === 0) return { kind: 'slice', entry: object.first, how: 'stored' };
    const key = sliceKey(object.primaryKey, index);
    const stored = await this.options.store.lookupExact(key).catch(() => undefined);
    if (stored !== undefined && this.belongs(stored, object, index)) return { kind: 'slice', entry: stored, how: 'stored' };
    const result = await this.shared(key, () => this.fetchSlice(req, target, object, index));
    // A fetch started for another representation (shared with a request that began before a change): not this one's.
    if (result.kind === 'slice' && !this.belongs(result.entry, object, index)) return { kind: 'changed' };
    return result;
  }

  private belongs(entry: CacheEntry, object: SlicedObject, index: number): boolean {
    return isSlice(entry.meta.headers, index, this.options.sliceSize, object.length, object.validator);
  }

  private async fetchSlice(req: IncomingMessage, target: RequestTarget, object: SlicedObject, index: number): Promise<SliceResult> {
    const { store, sliceSize } = this.options;
    const since = store.purgeGeneration;
    const { start, end } = sliceRange(index, sliceSize, object.length);
    const response = await this.request(req, target, { range: `bytes=${start}-${end}`, 'if-range': object.ifRange });
    const originHeaders = response.headers as Record<string, string | string[] | undefined>;
    if (response.statusCode === 206 && isSlice(originHeaders, index, sliceSize, object.length, object.validator)) {
      const chunks = await readBody(response, end - start + 1);
      if (chunks === undefined) return { kind: 'failed', err: new Error(`slice ${index} is not the length its Content-Range says`) };
      return { kind: 'slice', entry: await this.store(target, index, originHeaders, chunks, end - start + 1, since, req), how: 'fetched' };
    }
    discard(response);
    const status = response.statusCode;
    if (status !== 200 && status !== 206 && status !== 416 && status !== 412) return { kind: 'failed', err: new Error(`the origin answered ${status} to slice ${index}`) };
    // The object changed: none of its stored slices may be combined with the new one.
    await this.drop(object.primaryKey, object.length, 0);
    return { kind: 'changed' };
  }

  /** Removes the stored slices of an object of `length` bytes, from slice `from` on, from every tier. */
  private async drop(primaryKey: string, length: number, from: number): Promise<void> {
    const count = sliceCount(this.options.sliceSize, length);
    for (let i = from; i < count; i++) await this.options.store.deleteExact(sliceKey(primaryKey, i)).catch(() => undefined);
  }

  private request(req: IncomingMessage, target: RequestTarget, fields: Record<string, string>): Promise<Dispatcher.ResponseData> {
    this.options.stats.originFetches++;
    // A fill's fields (the client's conditionals and Range left out), and the slice's own Range.
    const headers = this.options.forwarding.requestHeaders(req.headers, target, req.socket.remoteAddress, true);
    Object.assign(headers, fields);
    return this.options.origin.request({ method: 'GET', path: target.path, headers });
  }

  private policyRequest(req: IncomingMessage, target: RequestTarget): PolicyRequest {
    return { method: 'GET', url: target.path, headers: req.headers };
  }

  /** Stores slice `index` (a 206 of `length` bytes) under its own key, with the URL's tag; returns the entry. */
  private async store(
    target: RequestTarget,
    index: number,
    originHeaders: Record<string, string | string[] | undefined>,
    chunks: Buffer[],
    length: number,
    since: number,
    req: IncomingMessage,
  ): Promise<CacheEntry> {
    const { store, freshness, now, jitter, stats } = this.options;
    const headers: StoredHeaders = endToEndResponseHeaders(originHeaders);
    if (parseHttpDate(headers.date) === undefined) headers.date = new Date(now()).toUTCString();
    const tags = parseSurrogateKeys(headers);
    if (!this.options.exposeTagHeaders) for (const name of TAG_FIELDS) delete headers[name];
    // A slice lives as long as a 200 with its fields would (only the first slice's freshness is ever asked).
    const policy = freshness.createPolicy(this.policyRequest(req, target), { status: 200, headers: originHeaders });
    const lifetimes = freshness.lifetimes(policy, { status: 200, headers }, index === 0 ? jitter() : 0);
    const entry: CacheEntry = {
      kind: 'entry',
      meta: newEntryMeta(lifetimes, {
        key: sliceKey(target.key, index),
        primaryKey: target.key,
        status: 206,
        headers,
        storedAt: now(),
        vary: null,
        tags: [...tags, postTag(target.key)],
        deletableAt: deletableAt(lifetimes, freshness.grace),
      }),
      body: bodyFromChunks(chunks, length),
    };
    const result = await store.putExact(entry, since).catch(() => 'stored' as const);
    if (result === 'dropped') stats.notStored++;
    else stats.stored++;
    return entry;
  }

  /**
   * Answers the request from the object `first` describes: 304, 416, the whole object (200) or its ranges (206,
   * multipart for several), slice by slice. 'changed' when the object changed before the response was complete.
   */
  private async answer(req: IncomingMessage, res: ServerResponse, target: RequestTarget, first: SliceResult & { kind: 'slice' }): Promise<'done' | 'changed'> {
    const object = this.describe(first.entry) as SlicedObject;
    const { sliceSize } = this.options;
    const fields = first.entry.meta.headers;
    const method = req.method ?? 'GET';
    if (clientValidatorsMatch(req.headers, fields)) {
      this.writeHead(res, 304, object, outcomeOf(first.how, true), (head) => notModifiedFields(head));
      res.end();
      return 'done';
    }
    const ranges = method === 'GET' ? parseRanges(req.headers, fields, object.length) : null;
    if (ranges === 'unsatisfiable') {
      this.writeHead(res, 416, object, outcomeOf(first.how, true), (head) => notSatisfiableFields(head, object.length));
      res.end();
      return 'done';
    }
    const framing = ranges === null ? undefined : rangeFraming(ranges, object.length, fields['content-type']);
    const parts: RangePart[] = framing?.parts ?? [{ start: 0, end: object.length - 1, head: EMPTY }];
    const indices = method === 'HEAD' ? [] : neededSlices(parts, sliceSize);
    const stored = indices.every((i) => i === 0 || this.storedNow(object, i));
    // The first slice the response needs is in hand before anything is sent: a failure or a change is still answerable.
    const pending = new Map<number, Promise<SliceResult>>();
    const get = (position: number): Promise<SliceResult> | undefined => {
      const index = indices[position];
      if (index === undefined) return undefined;
      let got = pending.get(index);
      if (got === undefined) pending.set(index, (got = this.slice(req, target, object, index)));
      return got;
    };
    const opening = await get(0);
    if (opening !== undefined && opening.kind !== 'slice') {
      if (opening.kind === 'changed') return 'changed';
      this.failed(res, opening.kind === 'failed' ? opening.err : new Error('unexpected slice result'));
      return 'done';
    }
    if (res.destroyed) return 'done';
    const length = ['content-length', String(object.length)];
    this.writeHead(res, framing ? 206 : 200, object, outcomeOf(first.how, stored), (head) => (framing ? withRangeFields(head, framing) : [...head, ...length]));
    if (method === 'HEAD') {
      res.end();
      return 'done';
    }
    let position = 0;
    for (const part of parts) {
      if (part.head.length > 0 && !(await send(res, part.head))) return 'done';
      const { first: from, last: to } = slicesCovering(part, sliceSize);
      for (let index = from; index <= to; index++) {
        while (indices[position] !== index) position++;
        // Slices already written are let go (a part may start in the slice the part before it ended in).
        for (const done of pending.keys()) if (done < index) pending.delete(done);
        const result = await get(position);
        if (result === undefined || result.kind !== 'slice') {
          // Part of the response went out already: abort it rather than splice or shorten it.
          if (result?.kind === 'failed') this.options.stats.originError(result.err);
          return result?.kind === 'changed' ? 'changed' : (res.destroy(), 'done');
        }
        // The next slice is asked for while this one is written (one slice ahead, no more).
        void get(position + 1);
        const range = sliceRange(index, sliceSize, object.length);
        const start = Math.max(part.start, range.start) - range.start;
        const end = Math.min(part.end, range.end) + 1 - range.start;
        if (!(await sendBody(res, result.entry, start, end))) return 'done';
      }
    }
    if (framing !== undefined && framing.tail.length > 0 && !(await send(res, framing.tail))) return 'done';
    res.end();
    return 'done';
  }

  /** Whether slice `index` of the object is stored in memory or on disk now (for HIT or MISS, said up front). */
  private storedNow(object: SlicedObject, index: number): boolean {
    const entry = this.options.store.peekExact(sliceKey(object.primaryKey, index));
    return entry !== undefined && this.belongs(entry, object, index);
  }

  /**
   * The head of a response built from the first slice's fields: the object's, without the slice's Content-Range
   * (`shape` adds what the status needs), with Age, X-Cache and Cache-Status; and the outcome recorded.
   */
  private writeHead(res: ServerResponse, status: number, object: SlicedObject, outcome: Outcome, shape: (head: WireValue[]) => WireValue[]): void {
    const { now, outcomes, store } = this.options;
    const first = object.first;
    const at = now();
    const { base, originCacheStatus } = storedFields(first);
    const head: WireValue[] = [];
    for (let i = 0; i < base.length; i += 2) if (base[i] !== 'content-range') head.push(base[i] as WireValue, base[i + 1] as WireValue);
    const { xcache, cacheStatus } = outcome;
    head.push('age', String(ageSeconds(first, at)), ...outcomeFields(xcache, { ...cacheStatus, ttl: ttlSeconds(first, at) }, originCacheStatus));
    outcomes.record(xcache, res, xcache === 'MISS' ? 'origin' : store.tierOf(first), xcache === 'MISS' || xcache === 'REVALIDATED');
    res.writeHead(status, shape(head));
  }
}

/** What a response says it was (X-Cache, Cache-Status) and how it is counted. */
interface Outcome {
  xcache: XCache;
  cacheStatus: CacheStatusFields;
}

/**
 * A response's outcome from how its first slice was had and whether every other slice it needs was stored: STALE
 * for a stale first slice standing in for a failing origin, MISS when any slice is fetched, REVALIDATED when only
 * the first slice was (a 304), HIT otherwise.
 */
function outcomeOf(first: 'stored' | 'fetched' | 'revalidated' | 'stale', othersStored: boolean): Outcome {
  if (first === 'stale') return { xcache: 'STALE', cacheStatus: { fwd: 'stale', detail: 'stale-if-error' } };
  if (first === 'fetched' || !othersStored) return { xcache: 'MISS', cacheStatus: { fwd: 'uri-miss', stored: true } };
  if (first === 'revalidated') return { xcache: 'REVALIDATED', cacheStatus: { fwd: 'stale', fwdStatus: 304 } };
  return { xcache: 'HIT', cacheStatus: { hit: true } };
}

/** The slice indices the parts cover, in order, each once. */
function neededSlices(parts: readonly ByteRange[], size: number): number[] {
  const out: number[] = [];
  for (const part of parts) {
    const { first, last } = slicesCovering(part, size);
    for (let i = first; i <= last; i++) if (out[out.length - 1] !== i) out.push(i);
  }
  return out;
}

/** A body read whole, when it is exactly `expected` bytes (never more are held); undefined otherwise. */
async function readBody(response: Dispatcher.ResponseData, expected: number): Promise<Buffer[] | undefined> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > expected) {
      response.body.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return received === expected ? chunks : undefined;
}

/** An answer not used: its body is let go. */
function discard(response: Dispatcher.ResponseData): void {
  response.body.on('error', () => undefined);
  response.body.destroy();
}

/** A 206 holding the whole object, as the 200 it stands for. */
function asWhole(response: Dispatcher.ResponseData): Dispatcher.ResponseData {
  return { ...response, statusCode: 200, headers: withoutContentRange(response.headers as Record<string, string | string[] | undefined>) };
}

function withoutContentRange<T extends Record<string, string | string[] | undefined>>(headers: T): T {
  const out = { ...headers };
  delete out['content-range'];
  return out;
}

/** Writes bytes; resolves false when the client went away. Waits for the socket to drain (backpressure). */
function send(res: ServerResponse, bytes: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(bytes)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      res.off('drain', drained);
      res.off('close', closed);
      resolve(ok);
    };
    const drained = (): void => done(true);
    const closed = (): void => done(false);
    res.once('drain', drained);
    res.once('close', closed);
  });
}

/** Writes bytes [start, end) of a slice's body, a chunk at a time for a body read from disk. */
async function sendBody(res: ServerResponse, entry: CacheEntry, start: number, end: number): Promise<boolean> {
  const body = entry.body;
  if (!isChunked(body)) return send(res, body.subarray(start, end));
  for (const piece of body.chunks(start, end)) if (!(await send(res, piece))) return false;
  return true;
}
