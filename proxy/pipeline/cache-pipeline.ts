/**
 * The full GET/HEAD path: look the request (its target checked by http/request-target.ts) up in every tier, and
 * then serve it fresh, serve it stale while refreshing, revalidate it, or fill it from the origin (RFC 9111 §4).
 * Concurrent misses and revalidations of one key share one origin fetch; the hit path (hit-path.ts)
 * short-cuts the commonest case, and everything else is decided here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { writeInterim, writeStoredEarlyHints } from '../http/interim.js';
import type { Logger } from 'pino';
import type { CacheStore } from '../../cache-store/cache-store.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import { normalizeNominated, type RequestTarget } from '../../policies/http/cache-key.js';
import { parseCacheControl, pragmaNoCache } from '../../policies/http/cache-control.js';
import type { Freshness } from '../../policies/http/freshness.js';
import type { CacheStatusFields, ForwardReason } from '../../policies/http/cache-status.js';
import { ClientWriter } from './client-writer.js';
import type { Forwarding } from '../origin/forwarding.js';
import type { OriginClient } from '../origin/origin-client.js';
import { HitForMiss } from './hit-for-miss.js';
import { KeyedLimiter } from './keyed-limiter.js';
import { OriginFill, type PartRead } from './origin-fill.js';
import { outcomeFields, type OutcomeRecorder, type XCache } from './outcome.js';
import { clientValidatorsMatch } from '../../policies/http/conditionals.js';
import { parseContentRange, parseRanges, partialKey, rangesWithin } from '../../policies/http/ranges.js';
import { allowsContentLength, hasNoContent } from '../../policies/http/message-body.js';
import { writeError, writeOriginFailure } from '../http/error-answer.js';
import { relayResponse } from '../http/relay.js';
import { writeNotModified, writeRanges, writeRangeNotSatisfiable, writeStored, writeTransformed } from './stored-response.js';
import type { Transform } from 'node:stream';
import { acceptsEvery, encodingPreference, type Coding } from '../../policies/http/content-coding.js';
import { encodedAs, foreignCoding, formBody, onTheFlyFields, servedForm, storedFields } from '../http/hit-head.js';
import { compressStream, decodeStream, type Compressor } from './compressor.js';
import { SliceFill } from './slice-fill.js';
import type { Dispatcher } from 'undici';
import type { Coordinator } from '../cluster/coordinator.js';
import type { ProxyStats } from '../admin/stats.js';

export interface PipelineOptions {
  store: CacheStore;
  freshness: Freshness;
  origin: OriginClient;
  stats: ProxyStats;
  /** Where each response's outcome is counted (HIT, MISS, ...). */
  outcomes: OutcomeRecorder;
  log: Logger;
  now: () => number;
  maxObjectSize: number;
  /** The header fields sent to the origin and relayed back. */
  forwarding: Forwarding;
  /** Fraction of the lifetime to cut from a new entry (TTL jitter); returns 0 when jitter is off. */
  jitter: () => number;
  /** Share concurrent origin fetches for one key. */
  coalesce: boolean;
  /** Longest wait (ms) of a collapsed request for the shared response's headers. */
  coalesceWait: number;
  /** How long (ms) a URL whose response could not be shared skips the collapsing queue. */
  hitForMiss: number;
  exposeTagHeaders: boolean;
  /** Agreement with other worker processes on who fetches a cold key. */
  coordinator: Coordinator;
  /** Makes and stores the compressed forms of stored responses (--compress). */
  compressor?: Compressor;
  /**
   * Most origin fetches at a time, per key, by waiters that could not share the response they waited for
   * (DETACHED_FETCHES_PER_KEY by default).
   */
  detachedFetchesPerKey?: number;
  /** Bytes per slice of a sliced fill (--slice-size; slice-fill.ts); 0 or absent: objects are filled whole. */
  sliceSize?: number;
}

/**
 * Waiters of one key sent to the origin at a time when the response they waited for may not be shared (a
 * private or no-store answer, Set-Cookie, another Vary variant): each needs its own answer, but a burst of them
 * must not become a burst at the origin. The rest queue behind them (at most --coalesce-wait each).
 */
export const DETACHED_FETCHES_PER_KEY = 8;

/** The size a compression made on the fly is tuned for (its quality: see compressor.ts brotliQuality). */
const ON_THE_FLY_LENGTH_HINT = 4 * 1024 * 1024;


export class CachePipeline {
  /** Fills in flight by cache key: misses and revalidations that later requests can join. */
  private readonly inflight = new Map<string, OriginFill>();
  /** Background refreshes in flight (stale-while-revalidate), by entry key. */
  private readonly refreshing = new Map<string, OriginFill>();
  /** HEAD revalidations in flight (each on its own: see revalidateHead). */
  private readonly heads = new Set<OriginFill>();
  /** Keys recently answered with something that could not be shared (--hit-for-miss). */
  private readonly uncacheable: HitForMiss;
  /** Detached waiters' own origin fetches, a few at a time per key. */
  private readonly detachedFetches: KeyedLimiter;
  /** Large objects filled in slices (--slice-size), when on. */
  private readonly slices: SliceFill | undefined;
  constructor(private readonly options: PipelineOptions) {
    this.detachedFetches = new KeyedLimiter(options.detachedFetchesPerKey ?? DETACHED_FETCHES_PER_KEY, options.coalesceWait);
    this.uncacheable = new HitForMiss(options.hitForMiss, options.now);
    const { sliceSize = 0, store, freshness, origin, stats, outcomes, log, now, forwarding, jitter, exposeTagHeaders, compressor } = options;
    this.slices =
      sliceSize > 0
        ? new SliceFill({
            ...{ store, freshness, origin, stats, outcomes, log, now, forwarding, jitter, exposeTagHeaders, sliceSize },
            ...(compressor && { compressor }),
            whole: (req, res, target, answered) => this.fill(req, res, target, target.key, undefined, 'uri-miss', undefined, undefined, answered),
          })
        : undefined;
  }

  /** Handles a GET or HEAD that the hit path did not answer; `target` is the validated one (http/request-target.ts). */
  async handle(req: IncomingMessage, res: ServerResponse, target: RequestTarget): Promise<void> {
    const { store, freshness, now } = this.options;
    // A revalidation must not bring back what a purge removed after the stale entry was read (see CacheStore.put).
    const since = store.purgeGeneration;
    const { entry, key, vary } = await this.lookup(target, req);
    if (req.headers['cache-control'] !== undefined && parseCacheControl(req.headers['cache-control']).has('only-if-cached')) {
      // RFC 9111 §5.2.1.7: answer from the cache or with 504, never from the origin.
      const verdict = entry && freshness.evaluate(entry.meta, req.headers, now());
      if (entry && verdict === 'fresh') {
        this.serveEntry(req, res, entry, 'HIT', { hit: true });
      } else if (entry && verdict === 'stale-allowed') {
        // only-if-cached with max-stale: a stale answer, told as such (as without only-if-cached).
        this.serveEntry(req, res, entry, 'STALE', { hit: true, detail: 'max-stale' });
      } else if (!(entry === undefined && (await this.cachedParts(req, res, target, key, vary)))) {
        // Nothing went forward (RFC 9211 fwd is for requests sent towards the origin): the detail says why.
        writeError(res, 504, 'not in cache (only-if-cached)', { xcache: 'MISS', cacheStatus: { detail: 'only-if-cached' } });
      }
      return;
    }
    if (entry === undefined) {
      // --slice-size: a URL without Vary is filled in slices (slice-fill.ts), which falls back on fill() itself;
      // while a whole-object fill of it is in flight (an origin that ignores Range), requests join that instead.
      if (this.slices !== undefined && vary === undefined && key === target.key && !this.inflight.has(key) && this.slices.takes(req, target)) {
        return this.slices.serve(req, res, target);
      }
      // Stored partial content (a 206 kept from an earlier fill) answers a Range that lies within it.
      const part = req.method === 'GET' && key === target.key ? await this.freshPart(target, req) : undefined;
      if (part !== undefined && req.headers.range !== undefined && this.servePartial(req, res, part)) return;
      // A Range on a miss fills the whole object like any miss (collapsed with others), and the client writer cuts
      // the ranges out of the bytes as they arrive. Only a URL whose answers recently could not be stored
      // (hit-for-miss) sends the Range on to the origin: the whole object would be fetched for nothing.
      if (req.headers.range !== undefined && req.method === 'GET' && this.uncacheable.has(key)) return this.relay(req, res, target, 'partial');
      // A stored part that does not answer the request is completed: the fill asks only for what it lacks.
      const completes = part !== undefined && !requestForbidsReuse(req) ? part : undefined;
      return this.fill(req, res, target, key, undefined, key === target.key ? 'uri-miss' : 'vary-miss', vary, completes);
    }
    switch (freshness.evaluate(entry.meta, req.headers, now())) {
      case 'fresh':
        this.serveEntry(req, res, entry, 'HIT', { hit: true });
        return;
      case 'stale-allowed':
        this.serveEntry(req, res, entry, 'STALE', { hit: true, detail: 'max-stale' });
        return;
      case 'stale-while-revalidate':
        this.serveEntry(req, res, entry, 'STALE', { hit: true, fwd: 'stale', detail: 'stale-while-revalidate' });
        this.refreshInBackground(req, target, { entry, since });
        return;
      case 'revalidate':
        // While the origin is asked, the stored response's preload links go out as a 103 (RFC 8297).
        writeStoredEarlyHints(req, res, entry.meta.headers.link);
        if (req.method === 'HEAD') return this.revalidateHead(req, res, target, { entry, since }, requestForbidsReuse(req) ? 'request' : 'stale');
        return this.fill(req, res, target, entry.meta.key, { entry, since }, requestForbidsReuse(req) ? 'request' : 'stale');
    }
  }

  /**
   * only-if-cached for a URL with no stored whole response: answered from what is stored of it in parts, its slices
   * (--slice-size) or its stored partial content for a Range within it. Returns false when they cannot answer it.
   */
  private async cachedParts(req: IncomingMessage, res: ServerResponse, target: RequestTarget, key: string, vary: unknown): Promise<boolean> {
    if (vary !== undefined || key !== target.key) return false;
    if (this.slices !== undefined && this.slices.takes(req, target) && (await this.slices.serveCached(req, res, target))) return true;
    if (req.method !== 'GET' || req.headers.range === undefined) return false;
    const part = await this.freshPart(target, req);
    return part !== undefined && this.servePartial(req, res, part);
  }

  /**
   * The stored response for a request: the store's lookup, and when what it found is no longer fresh, a fresher
   * copy another worker process left on the shared disk meanwhile (it revalidated or refetched it), if any.
   */
  private async lookup(target: RequestTarget, req: IncomingMessage): ReturnType<CacheStore['lookup']> {
    const { store, freshness, now } = this.options;
    const found = await store.lookup(target.key, req.headers);
    const { entry } = found;
    if (entry === undefined || freshness.evaluate(entry.meta, req.headers, now()) === 'fresh') return found;
    return { ...found, entry: store.newerBelow(entry) ?? entry };
  }

  /** The URL's stored partial content (RFC 9111 §3.3), when there is some and it is fresh for this request. */
  private async freshPart(target: RequestTarget, req: IncomingMessage): Promise<PartRead | undefined> {
    const { store, freshness, now } = this.options;
    const entry = await store.lookupExact(partialKey(target.key)).catch(() => undefined);
    if (entry === undefined || freshness.evaluate(entry.meta, req.headers, now()) !== 'fresh') return undefined;
    const part = parseContentRange(entry.meta.headers['content-range']);
    return part !== undefined && part.end - part.start + 1 === entry.body.length ? { entry, part } : undefined;
  }

  /**
   * Answers a Range request from the URL's fresh stored partial content when it holds every requested byte: a 206
   * with the stored part's fields. Otherwise (a range outside it, conditional fields to evaluate) returns false
   * and the request goes on as a miss.
   */
  private servePartial(req: IncomingMessage, res: ServerResponse, { entry, part }: PartRead): boolean {
    const { store, now } = this.options;
    const h = req.headers;
    if (h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-match'] !== undefined || h['if-unmodified-since'] !== undefined) return false;
    const ranges = parseRanges(h, entry.meta.headers, part.length);
    if (ranges === null || ranges === 'unsatisfiable' || !rangesWithin(ranges, part)) return false;
    if (res.destroyed) return true;
    this.options.outcomes.record('HIT', res, store.tierOf(entry));
    writeRanges(res, entry, ranges, { xcache: 'HIT', cacheStatus: { hit: true }, now: now() }, part);
    return true;
  }

  /** Sends a stored entry, honouring the client's validators and a single byte range, and records the outcome. */
  serveEntry = (req: IncomingMessage, res: ServerResponse, entry: CacheEntry, xcache: XCache, cacheStatus: CacheStatusFields): void => {
    // A revalidated entry's body is the stored one, its headers the origin's answer's.
    this.options.outcomes.record(xcache, res, this.options.store.tierOf(entry), xcache === 'REVALIDATED');
    const method = req.method ?? 'GET';
    let form = servedForm(entry, req.headers['accept-encoding']);
    // A coding edgecache cannot undo (a misbehaving origin's zstd, say): as stored, to a client that accepts it.
    if (form === undefined && foreignCoding(entry) && acceptsEvery(req.headers['accept-encoding'], entry.meta.headers['content-encoding'])) form = 'identity';
    if (form === undefined) {
      this.serveOnTheFly(req, res, entry, xcache, cacheStatus);
      return;
    }
    const options = { xcache, cacheStatus, now: this.options.now(), form };
    const fields = storedFields(entry, form).headers;
    if (entry.meta.status === 200 && clientValidatorsMatch(req.headers, fields)) {
      writeNotModified(res, entry, options);
      return;
    }
    // Range is defined for GET only (RFC 9110 §14.2): a HEAD gets the whole response's fields. Ranges are cut from
    // the form served, held to its validator; several ranges of a compressed form get the whole form (§14.2 lets a
    // server ignore Range): a Content-Encoding would otherwise apply to the multipart body.
    if (entry.meta.status === 200 && method === 'GET' && req.headers.range !== undefined) {
      const ranges = parseRanges(req.headers, fields, formBody(entry, form).length);
      if (ranges === 'unsatisfiable') return writeRangeNotSatisfiable(res, entry, options);
      if (ranges !== null && (form === 'identity' || ranges.length === 1)) return writeRanges(res, entry, ranges, options);
    }
    writeStored(res, method, entry, options);
  };

  /**
   * A stored entry none of whose stored forms the client accepts: the origin's coding undone for a client that
   * accepts identity, or (the client refusing identity before the compressed forms are stored) compressed now in
   * the coding it prefers. Either way one pass through node:zlib, never another origin fetch; a range is
   * answered with the whole representation (RFC 9110 §14.2 allows it). No form at all: 406 (RFC 9110 §15.5.7).
   */
  private serveOnTheFly(req: IncomingMessage, res: ServerResponse, entry: CacheEntry, xcache: XCache, cacheStatus: CacheStatusFields): void {
    const pref = encodingPreference(req.headers['accept-encoding']);
    const encoded = encodedAs(entry);
    let transform: Transform | undefined;
    let fields: ReturnType<typeof onTheFlyFields> | undefined;
    if (encoded !== undefined && pref.identity) {
      transform = decodeStream(encoded);
      fields = onTheFlyFields(entry, 'identity', false);
    } else if (encoded === undefined && this.options.compressor?.candidate(entry.meta.status, entry.meta.headers, undefined)) {
      const coding = pref.order.find((f): f is Coding => f !== 'identity');
      if (coding !== undefined) {
        transform = compressStream(coding, ON_THE_FLY_LENGTH_HINT);
        fields = onTheFlyFields(entry, coding, true);
      }
    }
    if (transform === undefined || fields === undefined) {
      writeError(res, 406, 'no acceptable content coding', { xcache, cacheStatus, fields: { vary: 'Accept-Encoding' } });
      return;
    }
    const options = { xcache, cacheStatus, now: this.options.now() };
    if (entry.meta.status === 200 && clientValidatorsMatch(req.headers, fields.headers)) {
      writeNotModified(res, entry, options, fields);
      return;
    }
    writeTransformed(res, req.method ?? 'GET', entry, options, fields, transform);
  }

  /**
   * Answers from the origin: joins a fill already in flight for this key when allowed, else starts one
   * (a miss, or a revalidation of `stale`) that later requests for the key can join.
   */
  private fill(
    req: IncomingMessage,
    res: ServerResponse,
    target: RequestTarget,
    key: string,
    stale: StaleRead | undefined,
    forward: ForwardReason,
    vary?: readonly string[],
    completes?: PartRead,
    answered?: Promise<Dispatcher.ResponseData>,
  ): void {
    const { stats, coalesce } = this.options;
    // A fill that goes on from an answer already asked for (a sliced fill's first request) joins no other.
    let inflight = coalesce && answered === undefined ? this.inflight.get(key) : undefined;
    if (inflight && !this.predatesNoPurge(inflight, target)) {
      // A purge answered while this fill was in flight: its response is not what the purge left (and will not be
      // stored), so nobody joins it any more; the next fill takes its place.
      this.inflight.delete(key);
      inflight = undefined;
    }
    if (inflight && this.coalescable(req)) {
      const writer = this.writer(req, res, target, key, inflight, forward, true);
      if (inflight.join(writer, false, req.headers)) {
        stats.coalesced++;
        return;
      }
    }
    const shareable = coalesce && this.coalescable(req) && !this.recentlyUncacheable(key) && !this.inflight.has(key);
    const fill = this.createFill(req, target, stale, vary, false, completes, answered);
    if (shareable) {
      this.inflight.set(key, fill);
      void fill.done.then(() => {
        if (this.inflight.get(key) === fill) this.inflight.delete(key);
        const reason = fill.unshareable;
        if (reason !== undefined && this.options.hitForMiss > 0 && reason !== 'request-no-store' && reason !== 'authorization') {
          this.uncacheable.mark(key);
        }
      });
    }
    fill.join(this.writer(req, res, target, key, fill, forward, false), true, req.headers);
    // The origin was asked already (and counted): no other process's answer is waited for.
    if (answered !== undefined) fill.start();
    else if (shareable && this.options.coordinator.shared) void this.startCoordinated(fill, key, target, req);
    else this.begin(fill);
  }

  /**
   * A HEAD for a stored response that must be revalidated goes to the origin as a (conditional) HEAD, RFC 9111
   * §4.3.5: a 304 or a 200 that describes the stored response freshens it, and no body is fetched. It is not
   * collapsed with GET fills (its answer has no body for them) nor with other HEADs: each asks on its own, which
   * costs the origin no body.
   */
  private revalidateHead(req: IncomingMessage, res: ServerResponse, target: RequestTarget, stale: StaleRead, forward: ForwardReason): void {
    const fill = this.createFill(req, target, stale, undefined, true);
    this.heads.add(fill);
    void fill.done.then(() => this.heads.delete(fill));
    fill.join(this.writer(req, res, target, stale.entry.meta.key, fill, forward, false), true, req.headers);
    this.begin(fill);
  }

  /** Whether no purge recorded since the fill started addresses it (a fill not started yet predates none). */
  private predatesNoPurge(fill: OriginFill, target: RequestTarget): boolean {
    const since = fill.purgeGeneration;
    if (since === undefined) return true;
    const tags = fill.responseTags;
    return this.options.store.purgedSince(since, { key: target.key, primaryKey: target.key, ...(tags && { tags }) }) === 'none';
  }

  /**
   * With several worker processes: fetch only when no other process is fetching this key; otherwise wait for
   * it and serve what it stored (or fetch after all, when it stored nothing usable).
   */
  private async startCoordinated(fill: OriginFill, key: string, target: RequestTarget, req: IncomingMessage): Promise<void> {
    const { coordinator, coalesceWait, store } = this.options;
    const lease = await coordinator.acquireFill(key, coalesceWait).catch(() => undefined);
    if (lease?.owner && !requestForbidsReuse(req)) {
      // Another process may have stored it between this one's lookup and the lock (it let the lock go once its
      // write committed): look once more before asking the origin (not when the request forbids a stored answer).
      const meanwhile = await this.usableStored(target, req);
      if (meanwhile !== undefined) {
        lease.release(true);
        this.options.stats.coalesced++;
        fill.adopt(meanwhile);
        return;
      }
    }
    if (lease === undefined || lease.owner) {
      this.begin(fill);
      if (lease?.owner) {
        void fill.done.then(async () => {
          const stored = fill.summary === 'stored' || fill.summary === 'entry';
          // The other processes read the entry from the shared disk tier: release once its write has committed
          // there, or a request arriving in between (a waiter told "stored", or the next one) misses it and fetches.
          if (stored) await store.flush('host').catch(() => undefined);
          lease.release(stored);
        });
      }
      return;
    }
    const stored = lease.stored ? await this.usableStored(target, req) : undefined;
    if (stored !== undefined) {
      this.options.stats.coalesced++;
      fill.adopt(stored);
      return;
    }
    this.begin(fill);
  }

  /** A stored response this request may be answered with now (fresh, or stale within its max-stale), if any. */
  private async usableStored(target: RequestTarget, req: IncomingMessage): Promise<CacheEntry | undefined> {
    // Asked after another worker's word: read what it committed, not this turn's earlier snapshot.
    this.options.store.readLatest();
    const { entry } = await this.lookup(target, req).catch(() => ({ entry: undefined }));
    const verdict = entry && this.options.freshness.evaluate(entry.meta, req.headers);
    return entry && (verdict === 'fresh' || verdict === 'stale-allowed') ? entry : undefined;
  }

  private begin(fill: OriginFill): void {
    this.options.stats.originFetches++;
    fill.start();
  }

  /**
   * A waiter that may not share the response it waited for (or waited too long) fetches for itself, outside any
   * collapsing: through the per-key limit, so that a burst of waiters is not a burst at the origin.
   */
  private fetchAlone(req: IncomingMessage, res: ServerResponse, target: RequestTarget, key: string, forward: ForwardReason): void {
    this.options.stats.coalesceDetached++;
    this.detachedFetches.run(key, () => this.fetchDetached(req, res, target, key, forward));
  }

  private async fetchDetached(req: IncomingMessage, res: ServerResponse, target: RequestTarget, key: string, forward: ForwardReason): Promise<void> {
    // The client may have gone while it waited for its turn.
    if (res.destroyed || res.writableEnded) return;
    const { store, freshness, now } = this.options;
    // What the fetches before it stored (another Vary variant's waiters, say) may answer it now.
    const { entry, vary } = await store.lookup(target.key, req.headers).catch(() => ({ entry: undefined, vary: undefined }));
    if (res.destroyed || res.writableEnded) return;
    if (entry && freshness.evaluate(entry.meta, req.headers, now()) === 'fresh') {
      this.serveEntry(req, res, entry, 'HIT', { hit: true, collapsed: true });
      return;
    }
    const fill = this.createFill(req, target, undefined, vary);
    fill.join(this.writer(req, res, target, key, fill, forward, false), true, req.headers);
    this.begin(fill);
    await fill.done;
  }

  private writer(req: IncomingMessage, res: ServerResponse, target: RequestTarget, key: string, fill: OriginFill, forward: ForwardReason, collapsed: boolean): ClientWriter {
    return new ClientWriter(req, res, fill, {
      outcomes: this.options.outcomes,
      stats: this.options.stats,
      forward,
      collapsed,
      waitLimit: this.options.coalesceWait,
      serveEntry: this.serveEntry,
      fetchAlone: (r, s) => this.fetchAlone(r, s, target, key, forward),
      onError: (err) => this.options.log.warn({ err, url: target.key }, 'origin fetch failed'),
    });
  }

  /** Requests whose answer could depend on who asks are not collapsed with others. */
  private coalescable(req: IncomingMessage): boolean {
    return req.headers.authorization === undefined;
  }

  /** Whether the key's last answer could not be shared (hit-for-miss): then it skips collapsing, counted. */
  private recentlyUncacheable(key: string): boolean {
    if (!this.uncacheable.has(key)) return false;
    this.options.stats.hitForMiss++;
    return true;
  }

  /**
   * A fill for this request. `vary` (or the stale entry's Vary) names the fields the URL's responses vary on:
   * they go to the origin normalised as the cache compares them (cache-key.ts normalizeFieldValue).
   */
  private createFill(
    req: IncomingMessage,
    target: RequestTarget,
    stale: StaleRead | undefined,
    vary?: readonly string[],
    head = false,
    completes?: PartRead,
    answered?: Promise<Dispatcher.ResponseData>,
  ): OriginFill {
    const { origin, store, freshness, stats, maxObjectSize, jitter, now, exposeTagHeaders, compressor } = this.options;
    const headers = this.options.forwarding.requestHeaders(req.headers, target, req.socket.remoteAddress, true);
    const nominated = stale?.entry.meta.vary ?? vary;
    if (nominated) normalizeNominated(headers, nominated);
    const fill = new OriginFill(
      { origin, store, freshness, maxObjectSize, jitter, now, exposeTagHeaders, ...(compressor && { compressor }), onRefetch: () => stats.originFetches++ },
      {
        primaryKey: target.key,
        path: target.path,
        headers,
        clientHeaders: req.headers,
        ...(stale && { stale: stale.entry, since: stale.since }),
        ...(head && { head }),
        ...(completes && { completes }),
        ...(answered && { answered }),
      },
    );
    void fill.done.then(() => {
      const summary = fill.summary;
      if (summary === 'stored') stats.stored++;
      else if (summary === 'not-stored') stats.notStored++;
      else if (summary === 'failed') stats.originError(fill.failure);
    });
    return fill;
  }

  /** stale-while-revalidate: one background refresh per entry at a time; its outcome only updates the store. */
  private refreshInBackground(req: IncomingMessage, target: RequestTarget, stale: StaleRead): void {
    const key = stale.entry.meta.key;
    if (this.refreshing.has(key)) return;
    this.options.stats.backgroundRefreshes++;
    const fill = this.createFill(req, target, stale);
    this.begin(fill);
    this.refreshing.set(key, fill);
    void fill.done.then(() => this.refreshing.delete(key));
  }

  /** Streams a request the cache does not answer (e.g. a Range on a miss) straight from the origin. */
  private async relay(req: IncomingMessage, res: ServerResponse, target: RequestTarget, forward: ForwardReason): Promise<void> {
    const { origin, stats } = this.options;
    this.options.outcomes.record('BYPASS', res);
    stats.originFetches++;
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      const response = await origin.request({
        method: req.method === 'HEAD' ? 'HEAD' : 'GET',
        path: target.path,
        headers: this.options.forwarding.requestHeaders(req.headers, target, req.socket.remoteAddress, false),
        signal: abort.signal,
        onInfo: (interimStatus, fields) => writeInterim(req, res, interimStatus, fields),
      });
      const status = response.statusCode;
      const headers = this.options.forwarding.responseHeaders(response.headers as Record<string, string | string[] | undefined>);
      const [xcacheName, xcache, cacheStatusName, cacheStatus] = outcomeFields('BYPASS', { fwd: forward, fwdStatus: status }, headers['cache-status']);
      headers[xcacheName] = xcache;
      headers[cacheStatusName] = cacheStatus;
      // No content for a HEAD, a 204 or a 304, whatever the fields say, as for a fill.
      if (!allowsContentLength(status)) delete headers['content-length'];
      relayResponse(res, status, headers, response.body, {
        noContent: req.method === 'HEAD' || hasNoContent(status),
        failed: (err) => {
          stats.originError(err);
          writeOriginFailure(res, err, { cacheStatus: { fwd: forward, detail: 'origin-error' } });
        },
      });
    } catch (err) {
      if (abort.signal.aborted) return;
      stats.originError(err);
      writeOriginFailure(res, err, { cacheStatus: { fwd: forward, detail: 'origin-error' } });
    }
  }

  /** How many keys each of the pipeline's maps holds (for tests and /stats: none may grow without bound). */
  tracked(): { fills: number; refreshes: number; hitForMiss: number } {
    return { fills: this.inflight.size, refreshes: this.refreshing.size, hitForMiss: this.uncacheable.size };
  }

  /** Waits for fills and background refreshes in flight to settle; used on shutdown and by tests. */
  async idle(): Promise<void> {
    await Promise.all([...this.inflight.values(), ...this.refreshing.values(), ...this.heads].map((f) => f.done));
  }
}

/** A stale entry to revalidate, and the purge generation when it was read. */
interface StaleRead {
  entry: CacheEntry;
  since: number;
}

function requestForbidsReuse(req: IncomingMessage): boolean {
  const cc = req.headers['cache-control'];
  if (cc !== undefined) {
    const directives = parseCacheControl(cc);
    return directives.has('no-cache') || directives.has('max-age') || directives.has('min-fresh');
  }
  return pragmaNoCache(req.headers.pragma);
}
