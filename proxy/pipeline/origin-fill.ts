/**
 * One request to the origin on behalf of the cache: a miss fill, or the revalidation of a stale entry.
 *
 * The fill decides once, on the response headers, whether the response may be stored, then streams the body
 * to every consumer as it arrives while keeping a copy for the store. A body that ends short (reset, short
 * Content-Length, broken chunking) or is delimited only by the connection closing is never stored, and
 * consumers see an error rather than a clean end.
 *
 * Several clients can share one fill (request collapsing): the first is its owner, the others join as waiters
 * and receive what was already read, then the rest. The fill is not tied to any one of them. A response that
 * could be stored but for its lifetime or its status (a 500, a 404 without freshness) goes to every waiter even
 * though it is not stored: an origin error must not cost one origin request per waiter. Only a response that
 * may not be shared (private, no-store, no-cache, Set-Cookie, or varying on a header the waiter sent
 * differently) goes to its owner alone; each waiter is then detached and fetches on its own (the pipeline
 * bounds how many at a time).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type CachePolicy from 'http-cache-semantics';
import { bodyChunks, bodyFromChunks, type Body } from '../../cache-store/body.js';
import { deletableAt, newEntryMeta, type CacheEntry, type StoredHeaders } from '../../cache-store/entry.js';
import type { BodyStream, CacheStore, PutResult } from '../../cache-store/cache-store.js';
import { WRITER_BACKLOG_LIMIT } from '../../cache-store/lmdb/body-writer.js';
import { parseVary, variantKey, varyKey } from '../../policies/http/cache-key.js';
import { parseSurrogateKeys, TAG_FIELDS } from '../../policies/http/surrogate-keys.js';
import type { Freshness, PolicyRequest } from '../../policies/http/freshness.js';
import { allowsContentLength, bodyFraming, type BodyFraming } from '../../policies/http/message-body.js';
import { parseHttpDate } from '../../policies/http/http-date.js';
import { freshenedHeaders, headResponseMatches, isOriginError, withoutClientValidators } from '../../policies/http/revalidation.js';
import { softened } from '../../cache-store/purge.js';
import { shareableUnstored, type NotStoredReason } from '../../policies/http/sharing.js';
import { endToEndResponseHeaders } from '../../policies/http/intermediary.js';
import { OriginAbort, type OriginClient } from '../origin/origin-client.js';
import { acceptsEvery, decodable, storedCoding, variesOnEncoding, varyingOnEncoding } from '../../policies/http/content-coding.js';
import type { Compressor } from './compressor.js';
import { postTag } from '../../policies/http/post-key.js';
import { combinedPart, ifRangeFor, missingRange, parseRanges, partialKey, rangesWithin, storablePart, strongValidator, type StoredPart } from '../../policies/http/ranges.js';
import { postNotStoredReason, postPolicyHeaders } from '../../policies/http/post-freshness.js';


/** The response to relay to consumers, as it streams. */
export interface StreamedHead {
  kind: 'stream';
  status: number;
  headers: StoredHeaders;
  /** Whether the response is being stored; when false, `reason` says why. */
  stored: boolean;
  /**
   * Whether `stored` is settled: the body's length was known to fit when the headers arrived (or there is no
   * body), or the fill has ended. Until then a body of unknown length may still turn out too large, so
   * Cache-Status does not claim `stored` (RFC 9211 §2.6: the parameter may be left out).
   */
  storedKnown: boolean;
  reason: NotStoredReason | undefined;
  /** May be handed to waiters: stored, or storable but for its lifetime, status, size or framing. */
  shareable: boolean;
  contentLength: number | undefined;
  /**
   * The fields for clients other than the one the fill was started for, when they differ: without those a
   * qualified no-cache or private lists (as stored, see Freshness.unstoredFields).
   */
  sharedHeaders?: StoredHeaders;
  /** Wire-ready header arrays, built once per response by the client writer. */
  wire?: Map<string, Array<string | string[]>>;
}

/** The fill ended in a stored entry that consumers serve from the cache instead of a stream. */
export interface EntryOutcome {
  kind: 'entry';
  entry: CacheEntry;
  /**
   * revalidated: a 304 refreshed the stale entry; stale-if-error: the origin failed and the stale entry stands
   * in; shared: another process fetched and stored it while this one waited.
   */
  how: 'revalidated' | 'stale-if-error' | 'shared';
  originStatus: number | undefined;
}

export type FillOutcome = StreamedHead | EntryOutcome;

export interface FillConsumer {
  /** First event: how the response will be delivered. */
  head(outcome: FillOutcome): void;
  /** A body chunk (stream outcomes only). Returning false asks for backpressure on an unstored stream. */
  data(chunk: Buffer): boolean;
  end(): void;
  /**
   * The origin failed (before or after head()). `fallback`, when given, is a stale entry that may stand in
   * (stale-if-error) for a consumer that has not sent any of the response yet.
   */
  error(err: unknown, fallback?: EntryOutcome): void;
  /** A waiter that may not receive this response (not shareable, or another Vary variant): fetch alone. */
  detached(): void;
  /** An interim (1xx) response from the origin, before head(): relayed, never stored (http/interim.ts). */
  interim?(status: number, headers: Readonly<Record<string, string | string[] | undefined>>): void;
  /** Joined a fill that writes to disk after bytes went by: read them back with readAt (after head()). */
  behind?(): void;
}

export interface FillDependencies {
  origin: OriginClient;
  store: CacheStore;
  freshness: Freshness;
  maxObjectSize: number;
  /** Fraction of lifetime to cut, for TTL jitter; 0 when off. */
  jitter: () => number;
  now: () => number;
  /** Relay Surrogate-Key / Cache-Tag to clients (they are always stored as the entry's tags). */
  exposeTagHeaders: boolean;
  /** Makes the compressed forms of stored responses (--compress); absent or disabled: none. */
  compressor?: Compressor;
  /** A second origin request was sent (a completion that could not be combined, see onResponse). */
  onRefetch?: () => void;
}

export interface FillRequest {
  primaryKey: string;
  path: string;
  /** Headers for the origin (already filtered, forwarding fields added). */
  headers: Record<string, string | string[]>;
  /** The owner's request headers, for the cache policy (Vary, Authorization, request directives). */
  clientHeaders: IncomingHttpHeaders;
  /** The stale entry this fill revalidates, if any. */
  stale?: CacheEntry;
  /**
   * The purge generation when `stale` was read (CacheStore.purgeGeneration): a purge after it must not be undone
   * by the refresh. For a miss the generation is read when the fill starts.
   */
  since?: number;
  /** A cached POST (--cache-post): sent with its body, stored under its own key (see PostFill). */
  post?: PostFill;
  /**
   * A HEAD revalidating `stale` (RFC 9111 §4.3.5): sent to the origin as a HEAD, and its answer relayed without a
   * body; nothing of it is stored but the fields it freshens (see finishHead).
   */
  head?: boolean;
  /**
   * The URL's fresh stored partial content, for a GET it does not answer: the origin is asked only for what it
   * lacks, and a matching 206 is combined with it (RFC 9111 §3.4; see start and combine).
   */
  completes?: PartRead;
  /**
   * The origin's answer, already asked for (a sliced fill whose first slice came back whole, or as a 200 from an
   * origin that ignores Range: see slice-fill.ts): the fill goes on from it instead of sending a request.
   */
  answered?: Promise<Dispatcher.ResponseData>;
}

/** Stored partial content as read for a completion: the entry (under partialKey) and the part it holds. */
export interface PartRead {
  entry: CacheEntry;
  part: StoredPart;
}

/**
 * A 206 from the origin being combined with the stored part: the combined response's status and fields (a 200
 * when it is the whole representation, else a 206 of the union), and the stored bytes that go before and after
 * the new ones.
 */
interface Combining {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The union, when it is not the whole representation. */
  union: StoredPart | undefined;
  prefix: Buffer;
  suffix: Buffer;
  /** Bytes the new 206 carries (its Content-Range), and how many arrived. */
  expected: number;
  received: number;
}

/**
 * What makes a fill a cached POST's: the body sent to the origin, the full key the answer is stored under (not
 * the URL's: a POST entry never takes a GET's place), the default freshness and the request fields the key holds.
 */
export interface PostFill {
  key: string;
  body: Buffer;
  ttl: number;
  keyed: ReadonlySet<string>;
}

/**
 * Most bytes of a response that is not stored kept for waiters that join while it streams (an error page is
 * small; a large uncacheable download is streamed with backpressure instead, and late requests fetch their own).
 */
const UNSTORED_KEEP_LIMIT = 1024 * 1024;

interface Member {
  owner: boolean;
  headers: IncomingHttpHeaders;
}

export class OriginFill {
  private readonly consumers = new Map<FillConsumer, Member>();
  private readonly chunks: Buffer[] = [];
  /** Bytes in `chunks`. */
  private bytes = 0;
  private outcome: FillOutcome | undefined;
  private varyFields: string[] | null = null;
  private tags: string[] = [];
  private state: 'connecting' | 'streaming' | 'complete' | 'failed' = 'connecting';
  /** Why the fill failed (summary 'failed'), for the origin error counters. */
  failure: unknown;
  /** Whether the body is kept as it arrives: to store it, or for waiters that join late (up to keepLimit). */
  private keep = true;
  private keepLimit = 0;
  /** Whether the response is to be stored once complete. */
  private storing = true;
  /** Responses reading the body back from the disk copy (readingBack). */
  private readers = 0;
  /** The part of the representation a 206 being stored as partial content holds (see onResponse). */
  private partial: StoredPart | undefined;
  /** A completion's request for the rest of a stored part is out (see start); cleared by its answer. */
  private completion: PartRead | undefined;
  /** The completion's 206 being combined with the stored part (see combine). */
  private combining: Combining | undefined;
  /** What the store did with it, once it ended. */
  private putResult: PutResult | undefined;
  /** The purge generation the response predates (see CacheStore.put); set when the fill starts. */
  private since: number | undefined;
  private body: Dispatcher.ResponseData['body'] | undefined;
  /**
   * A body larger than the memory tier takes (store.memoryObjectLimit) is written to the disk tier as it streams
   * instead of being kept here; consumers behind the origin read it back from there (readAt).
   */
  private stream: BodyStream | undefined;
  private readonly abort = new OriginAbort();
  private policy: CachePolicy | undefined;
  private readonly policyRequest: PolicyRequest;
  /** Resolves when the fill is over (stored, failed, or streamed out). */
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly deps: FillDependencies,
    readonly request: FillRequest,
  ) {
    // A cached POST is a lookup keyed by its body (and credentials): the policy judges its answer as a GET's, the
    // Authorization it carried already in the key.
    const policyHeaders = request.post ? { ...request.clientHeaders, authorization: undefined } : request.clientHeaders;
    this.policyRequest = { method: 'GET', url: request.path, headers: policyHeaders };
    this.answered = request.answered;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  private started = false;
  /** The origin's answer received before the fill began (FillRequest.answered), until send() uses it. */
  private answered: Promise<Dispatcher.ResponseData> | undefined;
  /** The origin's Vary, when Accept-Encoding was added to it (see servedInForms). */
  private varyBefore: { value: string | string[] | undefined } | undefined;

  start(): this {
    if (this.started || this.state !== 'connecting') return this;
    this.started = true;
    this.since = this.request.since ?? this.deps.store.purgeGeneration;
    const headers = { ...this.request.headers };
    const stale = this.request.stale;
    if (stale?.meta.hasValidator) {
      const storedPolicy = this.deps.freshness.storedPolicy(stale.meta, this.policyRequest);
      const validators = storedPolicy.revalidationHeaders({ ...this.policyRequest, headers: withoutClientValidators(this.request.clientHeaders) });
      if (validators['if-none-match']) headers['if-none-match'] = validators['if-none-match'];
      if (validators['if-modified-since']) headers['if-modified-since'] = validators['if-modified-since'];
    }
    const completes = this.request.completes;
    const missing = completes && missingRange(completes.part);
    if (completes && missing !== undefined) {
      // Only what the stored part lacks (RFC 9111 §3.4), and only if the representation is still the one it is
      // part of: a changed one comes back whole (If-Range, RFC 9110 §13.1.5).
      headers.range = missing;
      const ifRange = ifRangeFor(completes.entry.meta.headers);
      if (ifRange !== undefined) headers['if-range'] = ifRange;
      this.completion = completes;
    }
    this.send(headers);
    return this;
  }

  /** Sends the fill's request to the origin (again, as a plain GET, for a completion that cannot be combined). */
  private send(headers: Record<string, string | string[]>): void {
    // Interim responses (103 Early Hints...) go to the clients waiting now and nowhere else: never into the entry.
    const onInfo = (status: number, fields: Record<string, string | string[] | undefined>): void => {
      if (this.state !== 'connecting') return;
      for (const consumer of this.consumers.keys()) consumer.interim?.(status, fields);
    };
    const post = this.request.post;
    const method = this.request.head && this.request.stale ? ('HEAD' as const) : ('GET' as const);
    const request = post
      ? { method: 'POST' as const, path: this.request.path, headers, body: post.body, signal: this.abort, onInfo }
      : { method, path: this.request.path, headers, signal: this.abort, onInfo };
    // An answer received before the fill began is used once (a second send is a new request).
    const answered = this.answered;
    this.answered = undefined;
    (answered ?? this.deps.origin.request(request)).then(
      (response) => {
        try {
          this.onResponse(response);
        } catch (err) {
          response.body.destroy();
          this.fail(err);
        }
      },
      (err: unknown) => this.fail(err),
    );
  }

  /**
   * Adds a consumer. The owner is the client the fill was started for; a waiter receives what was already
   * read, then the rest. Returns false when a waiter cannot be given the whole response any more.
   */
  join(consumer: FillConsumer, owner: boolean, headers: IncomingHttpHeaders): boolean {
    if (!owner && !this.acceptsWaiter(headers)) return false;
    this.consumers.set(consumer, { owner, headers });
    if (this.outcome) {
      consumer.head(this.outcome);
      if (this.outcome.kind === 'stream' && this.stream !== undefined) {
        // Written to disk as it streams: the consumer reads what it missed from there (readAt), at its pace.
        consumer.behind?.();
        if (this.state === 'complete') consumer.end();
        return true;
      }
      if (this.outcome.kind === 'stream') for (const chunk of this.chunks) consumer.data(chunk);
      if (this.state === 'complete' && this.outcome.kind === 'stream') consumer.end();
    }
    return true;
  }

  private acceptsWaiter(headers: IncomingHttpHeaders): boolean {
    if (this.state === 'failed') return false;
    if (this.state === 'connecting') return true;
    const outcome = this.outcome;
    if (outcome === undefined) return false;
    if (outcome.kind === 'entry') return true;
    // A late waiter needs every byte: the fill must still hold them all (or be writing them to disk).
    return outcome.shareable && (this.keep || (this.stream !== undefined && this.storing)) && this.sameVariant(headers);
  }

  /** The purge generation the fill's response predates, once it has started (see CacheStore.put). */
  get purgeGeneration(): number | undefined {
    return this.since;
  }

  /** Surrogate keys of the response, once its headers have arrived. */
  get responseTags(): readonly string[] | undefined {
    return this.outcome === undefined ? undefined : this.tags;
  }

  private sameVariant(headers: IncomingHttpHeaders): boolean {
    if (!this.codingAccepted(headers)) return false;
    // A combined part that is not the whole representation answers only ranges within it.
    const union = this.combining?.union;
    if (union !== undefined && !answersFrom(headers, this.combining?.headers ?? {}, union)) return false;
    if (this.varyFields === null) return true;
    return varyKey(this.varyFields, headers) === varyKey(this.varyFields, this.request.clientHeaders);
  }

  /**
   * Whether a waiter may be handed the streamed response as far as its content coding goes. A coding edgecache can
   * undo always: a waiter that does not accept it gets it decoded (client-writer.ts). With --compress on,
   * Accept-Encoding selects no variant (keyFields), so a waiter that does not accept a coding edgecache cannot
   * undo is detached: it fetches on its own, never handed a coding it refused.
   */
  private codingAccepted(headers: IncomingHttpHeaders): boolean {
    const outcome = this.outcome;
    if (outcome?.kind !== 'stream' || !this.deps.compressor?.enabled) return true;
    const coding = storedCoding(outcome.headers['content-encoding']);
    if (coding === 'identity' || decodable(coding)) return true;
    // A coding edgecache cannot undo (zstd, several codings), chosen by Accept-Encoding: only for a waiter that
    // accepts every one of them. (Without Vary: Accept-Encoding the origin says it is for any client.)
    return !variesOnEncoding(outcome.headers.vary) || acceptsEvery(headers['accept-encoding'], outcome.headers['content-encoding']);
  }

  /** A consumer went away (client disconnected). An unstored fill nobody reads is aborted. */
  leave(consumer: FillConsumer): void {
    this.consumers.delete(consumer);
    if (this.consumers.size === 0 && !this.storing && this.state !== 'complete' && this.state !== 'failed') {
      this.abort.abort();
      this.body?.destroy();
    }
  }

  /** Whether consumers can read bytes already received back (readAt): the body is being written to disk. */
  get readable(): boolean {
    return this.stream !== undefined && this.storing;
  }

  /** Bytes of the body received so far. */
  get received(): number {
    return this.stream?.writer.received ?? this.bytes;
  }

  /** Received bytes from `offset` (to the end of a disk chunk), or undefined (not received, or gone). */
  readAt(offset: number): Buffer | undefined {
    return this.stream?.writer.read(offset);
  }

  /**
   * Resumes an unstored stream paused for backpressure (a body going to disk waits for the disk instead, and one
   * no longer stored for the responses still reading it back).
   */
  resume(): void {
    if (this.stream !== undefined && (this.storing || this.readers > 0)) return;
    this.body?.resume();
  }

  /** How the fill ended, for statistics. */
  get summary(): 'stored' | 'not-stored' | 'entry' | 'failed' | 'pending' {
    if (this.state === 'failed') return 'failed';
    if (this.state !== 'complete') return 'pending';
    if (this.outcome?.kind === 'entry') return 'entry';
    return this.putResult !== undefined && this.putResult !== 'dropped' ? 'stored' : 'not-stored';
  }

  /** Serves an entry another process stored while this fill waited for its turn (instead of fetching). */
  adopt(entry: CacheEntry): void {
    if (this.state !== 'connecting' || this.started) return;
    this.deliverEntry({ kind: 'entry', entry, how: 'shared', originStatus: undefined });
  }

  /** Whether the response turned out not shareable (for hit-for-miss), once known. */
  get unshareable(): NotStoredReason | undefined {
    const outcome = this.outcome;
    return outcome?.kind === 'stream' && !outcome.shareable ? outcome.reason : undefined;
  }

  private onResponse(response: Dispatcher.ResponseData): void {
    const stale = this.request.stale;
    let status = response.statusCode;
    let originHeaders = response.headers as Record<string, string | string[] | undefined>;
    const completion = this.completion;
    this.completion = undefined;
    if (completion !== undefined && (status === 206 || status === 416)) {
      const combining = status === 206 ? this.combine(completion, originHeaders) : undefined;
      if (combining === undefined) {
        // Not a part that combines with the stored one (RFC 9111 §3.4): never served or stored as the whole
        // representation. The whole is fetched with a plain GET, and answered and stored as any fill's.
        response.body.on('error', () => undefined);
        response.body.destroy();
        this.deps.onRefetch?.();
        this.send({ ...this.request.headers });
        return;
      }
      this.combining = combining;
      status = combining.status;
      originHeaders = combining.headers;
    }
    if (stale && status === 304) {
      response.body.resume();
      this.finishRevalidation(stale, originHeaders, status);
      return;
    }
    if (stale && isOriginError(status) && this.deps.freshness.canServeStaleOnError(stale.meta)) {
      response.body.resume();
      this.deliverEntry({ kind: 'entry', entry: stale, how: 'stale-if-error', originStatus: status });
      return;
    }
    if (stale && this.request.head) {
      this.finishHead(stale, response);
      return;
    }
    this.body = response.body;
    const headers = endToEndResponseHeaders(originHeaders);
    // No Date, or one that is not an HTTP-date (RFC 9110 §6.6.1): the time the response was received.
    if (parseHttpDate(headers.date) === undefined) headers.date = new Date(this.deps.now()).toUTCString();
    this.tags = parseSurrogateKeys(headers);
    if (!this.deps.exposeTagHeaders) for (const name of TAG_FIELDS) delete headers[name];
    // A 204 or 304 has no content whatever its fields say: undici reads no body (and reports a Content-Length it
    // did not get as a length mismatch). A 204 may not carry Content-Length at all (RFC 9110 §8.6): a client that
    // believed it would wait for bytes that never come.
    const framing = bodyFraming(status, originHeaders);
    const { noContent, length: contentLength } = framing;
    if (!allowsContentLength(status)) delete headers['content-length'];
    // A single-part 206 (an origin that answered the fill with part of the representation) may be kept as stored
    // partial content, apart from the URL's entries (ranges.ts partialKey), when its fields would let a 200 be
    // stored; only in memory-sized pieces (it is never written to disk as it streams).
    const part = status === 206 && !this.request.post && !stale ? storablePart(originHeaders, contentLength) : undefined;
    let reason = part !== undefined && part.end - part.start < this.deps.store.memoryObjectLimit ? this.notStoredReason(200, originHeaders, framing) : undefined;
    if (reason === null) this.partial = part;
    else reason = this.notStoredReason(status, originHeaders, framing);
    if (reason === null && contentLength !== undefined && contentLength > this.deps.store.memoryObjectLimit) {
      this.openDiskStream();
      if (this.stream === undefined) reason = 'too-large';
    }
    // Served in several forms: Vary: Accept-Encoding on what is stored and streamed. (A body streamed to disk is
    // stored as sent, never compressed: only an origin's coding makes it so.)
    if (this.servedInForms(status, headers, contentLength)) {
      this.varyBefore = { value: headers.vary };
      varyingOnEncoding(headers);
    }
    const shareable = reason === null || shareableUnstored(reason, originHeaders);
    this.storing = reason === null;
    // Kept to be stored (up to --max-object-size), or so that waiters joining late still get every byte.
    this.keepLimit = this.storing ? this.deps.maxObjectSize : Math.min(this.deps.maxObjectSize, UNSTORED_KEEP_LIMIT);
    this.keep = this.stream === undefined && shareable && !(contentLength !== undefined && contentLength > this.keepLimit);
    this.state = 'streaming';
    this.varyFields = this.keyFields(parseVary(headers.vary));
    const outcome: StreamedHead = {
      kind: 'stream',
      status,
      headers,
      stored: reason === null,
      storedKnown: reason !== null || contentLength !== undefined,
      reason: reason ?? undefined,
      shareable,
      contentLength,
    };
    const unstored = this.deps.freshness.unstoredFields({ status, headers });
    if (unstored.length > 0) outcome.sharedHeaders = withoutFields(headers, unstored);
    // A real answer that may not be stored supersedes the stale copy; an origin error does not.
    if (stale && reason !== null && status < 500) void this.deps.store.invalidate(this.request.primaryKey);
    this.outcome = outcome;
    for (const [consumer, member] of this.consumers) {
      if (member.owner || (outcome.shareable && this.sameVariant(member.headers))) {
        consumer.head(outcome);
      } else {
        this.consumers.delete(consumer);
        consumer.detached();
      }
    }
    if (noContent) {
      // Whatever undici makes of the fields (a length mismatch), the response is complete now.
      response.body.on('error', () => undefined);
      response.body.resume();
      void this.onEnd(headers, status);
      return;
    }
    if (this.consumers.size === 0 && !this.storing) {
      this.abort.abort();
      response.body.destroy();
      this.state = 'complete';
      this.finish();
      return;
    }

    const combining = this.combining;
    if (combining === undefined) {
      response.body.on('data', (chunk: Buffer) => this.onData(chunk));
      response.body.on('end', () => void this.onEnd(headers, status));
    } else {
      // The stored bytes before the new ones, the new ones as they arrive, the stored bytes after them.
      if (combining.prefix.length > 0) this.onData(combining.prefix);
      response.body.on('data', (chunk: Buffer) => {
        combining.received += chunk.length;
        this.onData(chunk);
      });
      response.body.on('end', () => {
        // A new part of another length than its Content-Range says cannot be combined: nothing is stored, and
        // the clients' responses (of the combined length) are cut off rather than ended short.
        if (combining.received !== combining.expected) return this.fail(new Error('partial response does not match its Content-Range'));
        if (combining.suffix.length > 0 && this.state === 'streaming') this.onData(combining.suffix);
        void this.onEnd(headers, status);
      });
    }
    response.body.on('error', (err: Error) => this.fail(err));
  }

  /**
   * How a 206 answering a completion combines with the stored part (RFC 9110 §15.3.7.3, RFC 9111 §3.4), or
   * undefined when it may not: both must carry the same strong validator, the new one a single part of the same
   * complete length (a body of its Content-Range's length, no Vary, not delimited by the connection closing)
   * that overlaps or adjoins the stored one. The combined response has the stored part's fields, those the new
   * response carries replacing them (but Content-Range; Date and Age are the new response's only). When the union
   * is the whole representation it is a 200, stored as the URL's entry; otherwise a 206 of the union, stored as
   * the larger part, and only when it holds every range the owner asked for (else the whole is fetched).
   */
  private combine(completion: PartRead, originHeaders: Record<string, string | string[] | undefined>): Combining | undefined {
    const framing = bodyFraming(206, originHeaders);
    if (framing.closeDelimited) return undefined;
    const next = storablePart(originHeaders, framing.length);
    const stored = completion.entry.meta.headers;
    const validator = strongValidator(stored);
    if (next === undefined || validator === undefined || strongValidator(originHeaders) !== validator) return undefined;
    const union = combinedPart(completion.part, next);
    if (union === undefined) return undefined;
    const headers: Record<string, string | string[] | undefined> = { ...stored };
    delete headers.date;
    delete headers.age;
    Object.assign(headers, endToEndResponseHeaders(originHeaders));
    delete headers['content-range'];
    delete headers['transfer-encoding'];
    const whole = union.start === 0 && union.end === union.length - 1;
    headers['content-length'] = String(union.end - union.start + 1);
    if (!whole) {
      headers['content-range'] = `bytes ${union.start}-${union.end}/${union.length}`;
      if (!answersFrom(this.request.clientHeaders, headers, union)) return undefined;
    }
    const part = completion.part;
    const bytes = storedBytes(completion.entry.body);
    return {
      status: whole ? 200 : 206,
      headers,
      union: whole ? undefined : union,
      prefix: next.start > part.start ? bytes.subarray(0, next.start - part.start) : EMPTY,
      suffix: part.end > next.end ? bytes.subarray(next.end + 1 - part.start) : EMPTY,
      expected: next.end - next.start + 1,
      received: 0,
    };
  }

  /**
   * Whether edgecache will serve this response in more than one form: compressible (it will be compressed once
   * stored), or compressed by the origin in a coding edgecache can undo for clients that do not accept it.
   */
  private servedInForms(status: number, headers: StoredHeaders, length: number | undefined): boolean {
    const compressor = this.deps.compressor;
    if (compressor === undefined || !compressor.enabled) return false;
    return (this.stream === undefined && compressor.candidate(status, headers, length)) || decodable(storedCoding(headers['content-encoding']));
  }

  /**
   * The Vary fields that select a stored variant. With --compress on, Accept-Encoding is not one of them:
   * edgecache negotiates the content coding itself among the forms of one entry (and undoes the origin's
   * coding for a client that does not accept it), so one origin fetch serves every Accept-Encoding.
   */
  private keyFields(vary: string[] | '*' | null): string[] | null {
    if (vary === '*' || vary === null) return null;
    if (!this.deps.compressor?.enabled) return vary;
    const fields = vary.filter((f) => f !== 'accept-encoding');
    return fields.length === 0 ? null : fields;
  }

  private notStoredReason(status: number, originHeaders: Record<string, string | string[] | undefined>, framing: BodyFraming): NotStoredReason | null {
    const post = this.request.post;
    const response = { status, headers: post ? postPolicyHeaders(originHeaders, post.ttl) : originHeaders };
    if (post) {
      this.policy = this.deps.freshness.createPolicy(this.policyRequest, response);
      const postReason = postNotStoredReason(status, originHeaders, post.keyed);
      if (postReason !== null) return postReason;
    }
    this.policy = this.deps.freshness.createPolicy(this.policyRequest, response);
    const reason = this.deps.freshness.notStorableReason(this.policy, this.policyRequest, response);
    if (reason !== null) return reason;
    if (framing.length !== undefined && framing.length > this.deps.maxObjectSize) return 'too-large';
    if (framing.closeDelimited) return 'close-delimited';
    return null;
  }

  private onData(chunk: Buffer): void {
    if (this.stream !== undefined && this.storing) {
      this.toDisk(chunk);
    } else if (this.stream !== undefined && this.readers > 0) {
      // No longer stored, and responses are still reading it back: held for them (the origin is paused).
      this.stream.writer.append(chunk);
    } else if (this.keep) {
      this.bytes += chunk.length;
      if (this.bytes > this.keepLimit) {
        this.keep = false;
        this.chunks.length = 0;
        if (this.storing && this.outcome?.kind === 'stream') {
          this.storing = false;
          this.outcome.stored = false;
          this.outcome.storedKnown = true;
          this.outcome.reason = 'too-large';
        }
      } else if (this.partial !== undefined && this.bytes > this.partial.end - this.partial.start + 1) {
        // Partial content longer than its Content-Range says: not stored (see partEnded).
        this.notStoringPart();
      } else {
        this.chunks.push(chunk);
        // A body of unknown length that outgrows the memory tier's limit goes on to disk from here.
        if (this.storing && this.bytes > this.deps.store.memoryObjectLimit) {
          this.openDiskStream();
          if (this.stream !== undefined) {
            this.keep = false;
            const kept = this.chunks.splice(0);
            this.bytes = 0;
            for (const part of kept) this.toDisk(part);
          }
        }
      }
    }
    let wantsMore = true;
    for (const consumer of this.consumers.keys()) if (!consumer.data(chunk)) wantsMore = false;
    // A response being stored is read at the origin's pace whatever the clients' (it is kept in full anyway).
    if (!wantsMore && !this.storing) this.body?.pause();
  }

  /** Starts writing the body to the disk tier as it streams (this.stream stays undefined when it cannot). */
  private openDiskStream(): void {
    this.stream = this.deps.store.openStream();
    this.stream?.writer.onFailure(() => this.stopStoring(undefined));
  }

  /** Appends to the disk tier's copy; past --max-object-size it is not stored after all. */
  private toDisk(chunk: Buffer): void {
    const stream = this.stream as BodyStream;
    this.bytes += chunk.length;
    if (this.bytes > this.deps.maxObjectSize) {
      // (Responses reading it back get this chunk from memory; see stopStoring.)
      stream.writer.stop();
      stream.writer.append(chunk);
      this.stopStoring('too-large');
      return;
    }
    stream.writer.append(chunk);
    // The origin is read as fast as the disk takes it (never faster: the chunks not yet committed are held).
    if (stream.writer.backlog > WRITER_BACKLOG_LIMIT && this.body && !this.body.isPaused()) {
      this.body.pause();
      stream.writer.drained(() => this.flow());
    }
  }

  /**
   * The body going to disk will not be stored after all: a write failed (a full disk) or it outgrew
   * --max-object-size. The response goes on from the origin. Responses reading it back from the disk copy keep
   * reading what was written (the writer holds it until they let go) while the origin waits; once none is behind,
   * the copy is removed and the rest streams from the origin to every client, paced by them.
   */
  private stopStoring(reason: NotStoredReason | undefined): void {
    if (!this.storing || this.stream === undefined) return;
    this.storing = false;
    if (this.outcome?.kind === 'stream') {
      this.outcome.stored = false;
      this.outcome.storedKnown = true;
      if (reason !== undefined) this.outcome.reason = reason;
    }
    this.flow();
  }

  /** Pauses or resumes the origin's body as the disk copy and the responses reading it back allow. */
  private flow(): void {
    const body = this.body;
    const stream = this.stream;
    if (stream !== undefined && this.storing) {
      if (stream.writer.backlog <= WRITER_BACKLOG_LIMIT / 2) body?.resume();
      return;
    }
    if (stream !== undefined && this.readers > 0) {
      body?.pause();
      return;
    }
    // Nobody reads the unstored copy back: it goes (the writer holds nothing more).
    if (stream !== undefined) stream.writer.abort();
    if (this.state === 'streaming') body?.resume();
  }

  /**
   * A response starts (true) or stops (false) reading the body back from the disk copy (readAt): the copy is
   * kept for it, and while the body is not being stored the origin waits until every such response caught up.
   */
  readingBack(on: boolean): void {
    const writer = this.stream?.writer;
    if (writer === undefined) return;
    if (on) {
      this.readers++;
      writer.retain();
      return;
    }
    this.readers--;
    writer.release();
    if (this.readers === 0 && !this.storing) this.flow();
  }

  /** Partial content whose body is not the length its Content-Range says: relayed, never stored. */
  private notStoringPart(): void {
    this.storing = false;
    this.keep = false;
    this.chunks.length = 0;
    if (this.outcome?.kind === 'stream') {
      this.outcome.stored = false;
      this.outcome.reason = 'not-cacheable';
    }
  }

  private async onEnd(headers: StoredHeaders, status: number): Promise<void> {
    if (this.state !== 'streaming') return;
    // A body of unknown length that turned out too small to compress is served in one form only: its stored
    // Vary goes back to the origin's (the client streamed it already had the wider one, which is harmless).
    const before = this.varyBefore;
    if (before !== undefined && this.deps.compressor && !decodable(storedCoding(headers['content-encoding'])) && !this.deps.compressor.candidate(status, headers, this.bytes)) {
      if (before.value === undefined) delete headers.vary;
      else headers.vary = before.value;
    }
    if (this.storing && this.policy && this.stream !== undefined) {
      // The body is on disk: the entry's final record makes it visible (its body is set by the disk tier).
      const entry = this.buildEntry(status, headers, Buffer.alloc(0), this.policy);
      try {
        this.putResult = await this.deps.store.putStreamed(entry, this.stream, this.since);
      } catch {
        this.putResult = 'dropped';
      }
      if (this.putResult === 'dropped' && this.outcome?.kind === 'stream') this.outcome.stored = false;
    } else if (this.storing && this.policy && this.partial !== undefined && this.bytes !== this.partial.end - this.partial.start + 1) {
      // Partial content shorter than its Content-Range says (a chunked 206): not stored.
      this.notStoringPart();
    } else if (this.storing && this.policy) {
      const entry = this.buildEntry(status, headers, bodyFromChunks(this.chunks, this.bytes), this.policy);
      try {
        const exact = this.request.post !== undefined || this.partial !== undefined;
        this.putResult = exact ? await this.deps.store.putExact(entry, this.since) : await this.deps.store.put(entry, this.since);
      } catch {
        // A failing tier must not fail the response; the tier counts and logs its own errors.
        this.putResult = 'stored';
      }
      // A purge since the fill started dropped it (see CacheStore.put): it is not stored after all.
      if (this.putResult === 'dropped' && this.outcome?.kind === 'stream') this.outcome.stored = false;
      // Compressed once, off the response path: hits get the forms once they are added to the entry.
      else this.deps.compressor?.schedule(entry, this.since ?? this.deps.store.purgeGeneration);
    }
    // A complete entry supersedes the stored part it completed (or that a changed representation replaced).
    const stored = this.putResult !== undefined && this.putResult !== 'dropped';
    if (this.request.completes !== undefined && this.partial === undefined && stored) {
      void this.deps.store.deleteExact(partialKey(this.request.primaryKey)).catch(() => undefined);
    }
    if (this.outcome?.kind === 'stream') this.outcome.storedKnown = true;
    this.state = 'complete';
    for (const consumer of this.consumers.keys()) consumer.end();
    this.finish();
  }

  private buildEntry(status: number, fields: StoredHeaders, body: Body, policy: CachePolicy): CacheEntry {
    const partial = this.partial !== undefined;
    // Fields a qualified no-cache or private lists are not kept (RFC 9111 §5.2.2.4, §5.2.2.7).
    const unstored = this.deps.freshness.unstoredFields({ status, headers: fields });
    const headers = unstored.length > 0 ? withoutFields(fields, unstored) : fields;
    // Stored partial content lives as long as a 200 with its fields would.
    const lifetimes = this.deps.freshness.lifetimes(policy, { status: partial ? 200 : status, headers }, this.deps.jitter());
    const post = this.request.post;
    // A POST entry is keyed by body and credentials; the Vary fields its key holds select nothing more.
    const vary = post || partial ? null : this.varyFields;
    const key = post
      ? post.key
      : partial
        ? partialKey(this.request.primaryKey)
        : vary
          ? variantKey(this.request.primaryKey, varyKey(vary, this.request.clientHeaders))
          : this.request.primaryKey;
    return {
      kind: 'entry',
      meta: newEntryMeta(lifetimes, {
        key,
        primaryKey: this.request.primaryKey,
        status,
        headers,
        storedAt: this.deps.now(),
        vary,
        // Entries kept beside the URL's (a POST's, partial content) carry the URL's tag: a purge of the URL finds them.
        tags: post || partial ? [...this.tags, postTag(this.request.primaryKey)] : this.tags,
        deletableAt: deletableAt(lifetimes, this.deps.freshness.grace),
      }),
      body,
    };
  }

  /**
   * A 304 answered the revalidation (or a HEAD's 200 that describes the stored response, see finishHead): update the
   * stored headers and lifetimes, keep the stored body, and serve the freshened entry.
   */
  private finishRevalidation(stale: CacheEntry, originHeaders: Record<string, string | string[] | undefined>, originStatus: number): void {
    const { outcome, own, shared } = this.freshen(stale, originHeaders, originStatus);
    if (shared) this.deliverEntry(outcome, own);
    else this.deliverToOwner(own ?? outcome);
  }

  /**
   * The stale entry freshened by an origin answer saying it still holds (a 304, or a HEAD's 200 that describes it,
   * RFC 9111 §3.2, §4.3.4, §4.3.5): the answer's fields replace the stored ones but those describing the stored
   * body, the lifetime starts again from the answer, the body stays, and the store is updated. `shared` is false
   * when the answer says the response may no longer be shared (no-store, private, Vary: *): then the stored copy is
   * gone, as for a 200 that says so, and only the client that asked may have it (`own`, with the answer's cookie).
   */
  private freshen(
    stale: CacheEntry,
    originHeaders: Record<string, string | string[] | undefined>,
    originStatus: number,
  ): { outcome: EntryOutcome; own: EntryOutcome | undefined; shared: boolean } {
    const update = endToEndResponseHeaders(originHeaders);
    const newTags = parseSurrogateKeys(update);
    this.tags = newTags.length > 0 ? newTags : stale.meta.tags;
    if (!this.deps.exposeTagHeaders) for (const name of TAG_FIELDS) delete update[name];
    // A cookie set on the answer is for the client whose request caused it, as on any other response: merged into
    // the stored headers it would be handed to everyone (unless --cache-set-cookie allows storing cookies).
    const cookie = this.deps.freshness.cacheSetCookie ? undefined : update['set-cookie'];
    if (cookie !== undefined) delete update['set-cookie'];
    const headers = freshenedHeaders(stale.meta.headers, update);
    // Vary keeps Accept-Encoding while the entry is served in several forms, whatever the 304 said.
    if (this.servedInForms(stale.meta.status, headers, stale.body.length)) varyingOnEncoding(headers);
    const policy = this.deps.freshness.revalidatedPolicy(this.deps.freshness.storedPolicy(stale.meta, this.policyRequest), this.policyRequest, originHeaders, { status: stale.meta.status, headers });
    this.varyFields = stale.meta.vary;
    const entry = this.buildEntry(stale.meta.status, headers, stale.body, policy);
    entry.meta.key = stale.meta.key;
    // The body is unchanged, and so are its compressed forms.
    if (stale.forms !== undefined && stale.meta.encodings != null) {
      entry.forms = stale.forms;
      entry.meta.encodings = stale.meta.encodings;
    }
    const outcome: EntryOutcome = { kind: 'entry', entry, how: 'revalidated', originStatus };
    const own = cookie === undefined ? undefined : { ...outcome, entry: { ...entry, meta: { ...entry.meta, headers: { ...headers, 'set-cookie': cookie } } } };
    const reason = this.deps.freshness.notStorableReason(policy, this.policyRequest, { status: stale.meta.status, headers });
    if (reason === 'no-store' || reason === 'private' || reason === 'vary-star') {
      void this.deps.store.invalidate(this.request.primaryKey).catch(() => undefined);
      return { outcome, own, shared: false };
    }
    const since = this.since ?? this.deps.store.purgeGeneration;
    void this.deps.store
      .replace(entry, stale.meta, since)
      .then((result) => {
        if (result !== 'dropped' && entry.forms === undefined) this.deps.compressor?.schedule(entry, since);
      })
      .catch(() => undefined);
    return { outcome, own, shared: true };
  }

  /**
   * The origin's answer to a HEAD about a stale entry (RFC 9111 §4.3.5), other than a 304 or an error the stale
   * entry stands in for. A 200 that describes the stored response (policies/http/revalidation.ts
   * headResponseMatches) freshens it as a 304 would, and the client is answered from it (its stored fields the HEAD
   * did not carry are kept). Any other answer is relayed as it is, without a body: a 200 that does not describe the
   * stored response leaves it stale (marked so, when a request directive had it revalidated while still fresh) for
   * the next GET to revalidate; any other status changes nothing stored. No body is read, stored or cut short.
   */
  private finishHead(stale: CacheEntry, response: Dispatcher.ResponseData): void {
    const status = response.statusCode;
    const originHeaders = response.headers as Record<string, string | string[] | undefined>;
    response.body.on('error', () => undefined);
    response.body.resume();
    if (status === 200 && headResponseMatches(stale.meta.headers, stale.body.length, originHeaders)) {
      this.finishRevalidation(stale, originHeaders, status);
      return;
    }
    if (status === 200 && this.deps.now() - stale.meta.ageBase < stale.meta.lifetime) {
      void this.deps.store.replace(softened(stale, this.deps.now()), stale.meta, this.since).catch(() => undefined);
    }
    const headers = endToEndResponseHeaders(originHeaders);
    if (parseHttpDate(headers.date) === undefined) headers.date = new Date(this.deps.now()).toUTCString();
    if (!this.deps.exposeTagHeaders) for (const name of TAG_FIELDS) delete headers[name];
    if (!allowsContentLength(status)) delete headers['content-length'];
    this.storing = false;
    this.keep = false;
    // Only its owner reads a HEAD's fill (the pipeline collapses none into it): no waiter to share it with.
    const outcome: StreamedHead = { kind: 'stream', status, headers, stored: false, storedKnown: true, reason: undefined, shareable: false, contentLength: undefined };
    this.outcome = outcome;
    this.state = 'complete';
    for (const consumer of this.consumers.keys()) consumer.head(outcome);
    for (const consumer of this.consumers.keys()) consumer.end();
    this.finish();
  }

  /** A revalidated response for its owner only: waiters fetch on their own, and no late joiner is accepted. */
  private deliverToOwner(outcome: EntryOutcome): void {
    this.state = 'complete';
    for (const [consumer, member] of this.consumers) {
      if (member.owner) consumer.head(outcome);
      else consumer.detached();
    }
    this.finish();
  }

  /** Hands every consumer the entry; `ownerOutcome`, when given, goes to the owner instead (its own cookie). */
  private deliverEntry(outcome: EntryOutcome, ownerOutcome?: EntryOutcome): void {
    this.outcome = outcome;
    this.state = 'complete';
    for (const [consumer, member] of this.consumers) consumer.head(member.owner && ownerOutcome ? ownerOutcome : outcome);
    this.finish();
  }

  private fail(err: unknown): void {
    if (this.state === 'complete' || this.state === 'failed') return;
    const stale = this.request.stale;
    // A stale entry may stand in for a failed revalidation, for every client that has not been sent any of the
    // response yet (ClientWriter sends the headers with the first body byte), as for an unreachable origin.
    const fallback: EntryOutcome | undefined =
      stale && this.deps.freshness.canServeStaleOnError(stale.meta)
        ? { kind: 'entry', entry: stale, how: 'stale-if-error', originStatus: this.outcome?.kind === 'stream' ? this.outcome.status : undefined }
        : undefined;
    if (this.state === 'connecting' && fallback) {
      this.deliverEntry(fallback);
      return;
    }
    this.state = 'failed';
    this.failure = err;
    this.stream?.writer.abort();
    this.keep = false;
    this.chunks.length = 0;
    this.body?.destroy();
    for (const consumer of this.consumers.keys()) consumer.error(err, fallback);
    this.finish();
  }

  private finish(): void {
    // An unstored body is not kept past the fill (a stored one lives on in the cache).
    if (!this.storing) {
      this.keep = false;
      this.chunks.length = 0;
    }
    this.consumers.clear();
    this.resolveDone();
  }
}

const EMPTY = Buffer.alloc(0);

/** A stored part's bytes in one buffer (a part is at most the memory tier's per-object size). */
function storedBytes(body: Body): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.concat([...bodyChunks(body)]);
}

/** Whether every range a request asks for lies within a part (of the representation `fields` describe). */
function answersFrom(request: IncomingHttpHeaders, fields: Readonly<Record<string, string | string[] | undefined>>, part: StoredPart): boolean {
  const ranges = parseRanges(request, fields, part.length);
  return Array.isArray(ranges) && rangesWithin(ranges, part);
}

/** A response's fields without the named ones (lower case). */
function withoutFields(headers: StoredHeaders, names: readonly string[]): StoredHeaders {
  const out: StoredHeaders = {};
  for (const name in headers) if (!names.includes(name)) out[name] = headers[name] as string | string[];
  return out;
}
