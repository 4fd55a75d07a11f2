/**
 * The cache as the proxy sees it: an ordered list of tiers (memory first) with Vary handled on top. A URL whose
 * responses vary has a VaryRecord under its primary key naming the selecting request fields; each variant lives
 * under primary key + secondary key. Lookups go down the tiers and copy a lower-tier hit into the tiers above.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { bodyChunks, bodyFromChunks, exactCopy, isChunked, ownedBuffer, type Body } from './body.js';
import { recordSize, type CacheEntry, type CacheRecord, type EncodedForms, type EntryMeta } from './entry.js';
import { formsLayout, packed, unpacked, withForms } from './forms.js';
import { PurgeLog, type PurgeSubject, type PurgeVerdict } from './purge-log.js';
import { purgeTiers, softened, tiersWithin, urlKeys, writeMeta, type PurgeOptions, type PurgeSelector } from './purge.js';
import { selectedVariant, variantKeys, varyRecordWith } from './vary.js';
import type { CacheTier, SyncCacheTier, TierStats } from './tier.js';
import { postTag } from '../policies/http/post-key.js';
import { freshUntil } from '../policies/http/freshness.js';
import type { DiskBodyWriter } from './lmdb/body-writer.js';

/**
 * What became of a write: stored as given; stored already stale (a soft purge addressed it while it was
 * fetched); or dropped (a hard purge addressed it while it was fetched). See PurgeLog.
 */
export type PutResult = 'stored' | 'stale' | 'dropped';

/**
 * A synchronous lower tier that can lend a body instead of allocating a copy per read (LmdbTier): `lease` is
 * `get` with the body in a reusable buffer, private to the caller until it calls `release(body)`. Unreleased
 * leases are garbage collected.
 */
export interface LeasingTier extends SyncCacheTier {
  lease(key: string): CacheRecord | undefined;
  isLeased(body: Uint8Array): boolean;
  release(body: Uint8Array): void;
}

function isLeasingTier(tier: SyncCacheTier): tier is LeasingTier {
  return typeof (tier as Partial<LeasingTier>).lease === 'function';
}

/**
 * A synchronous lower tier that can store a body as it streams (LmdbTier, see lmdb/body-writer.ts): objects
 * larger than the memory tier's per-object limit are written there chunk by chunk and served from there.
 */
export interface StreamingTier extends SyncCacheTier {
  openStream(): DiskBodyWriter | undefined;
  streamedBody(writer: DiskBodyWriter, key: string): Body;
  finishStream(key: string, entry: CacheEntry, writer: DiskBodyWriter): Promise<boolean>;
}

function isStreamingTier(tier: CacheTier): tier is StreamingTier {
  return tier.synchronous && typeof (tier as Partial<StreamingTier>).openStream === 'function';
}

/** A body being written to the streaming tier as it arrives (see CacheStore.openStream). */
export interface BodyStream {
  readonly writer: DiskBodyWriter;
  readonly tier: StreamingTier;
}

/** The memory tier as the store uses it: a sync tier that can say whether it would admit a record. */
export interface HotTier extends SyncCacheTier {
  wouldAdmit?(key: string, size: number): boolean;
}

export interface CacheStoreOptions {
  /** The hot tier, consulted synchronously on every request. */
  memory: HotTier;
  /** Lower tiers, in lookup order. */
  lower?: CacheTier[];
  /** Most variants kept per primary key. */
  maxVariants: number;
  /**
   * through: every stored response is written to every tier (lower tiers queue the write off the response
   * path). spill: new responses go to memory only, and reach the lower tiers when memory lets them go.
   */
  writeMode?: 'through' | 'spill';
  /**
   * Largest body the memory tier holds (default: any). A larger one lives in the streaming tier only: written
   * there as it streams (openStream), never promoted to memory.
   */
  memoryObjectLimit?: number;
}

export class CacheStore {
  readonly memory: HotTier;
  private readonly tiers: CacheTier[];
  /** Tiers a new response is written to. */
  private readonly writeTiers: CacheTier[];
  /** The synchronous tiers right below memory (LMDB): the hit path reads them too. */
  private readonly syncLower: SyncCacheTier[];
  private readonly maxVariants: number;
  /** The synchronous lower tiers that lease bodies to peek. */
  private readonly leasing: LeasingTier[] = [];
  /** The leased body of the entry the last peek() returned, if it was leased. */
  private leasedBody: Buffer | undefined;
  private readonly sizes = new WeakMap<EntryMeta, number>();
  /** Recent purges, so that a write that started before one of them does not land after it. */
  private readonly purges = new PurgeLog();
  /**
   * False while this node may have missed purges published by other nodes (start-up, a reconnection to the purge
   * stream, until it has caught up): peek answers nothing and lookup reads only the networked tiers, so no copy
   * that another node purged meanwhile is served from memory or disk. See proxy/purge/broadcast.ts.
   */
  private localTrusted = true;

  constructor(options: CacheStoreOptions) {
    this.memory = options.memory;
    this.tiers = [options.memory, ...(options.lower ?? [])];
    this.syncLower = [];
    for (const tier of options.lower ?? []) {
      if (!tier.synchronous) break;
      this.syncLower.push(tier as SyncCacheTier);
      if (isLeasingTier(tier as SyncCacheTier)) this.leasing.push(tier as LeasingTier);
    }
    // Spill is about the disk tier: a shared (asynchronous) tier is still written every response.
    this.writeTiers = options.writeMode === 'spill' ? [options.memory, ...(options.lower ?? []).filter((t) => !t.synchronous)] : this.tiers;
    this.maxVariants = options.maxVariants;
    this.memoryObjectLimit = options.memoryObjectLimit ?? Infinity;
    this.streaming = (options.lower ?? []).find(isStreamingTier);
  }

  /** Largest body the memory tier holds; larger ones are streamed to the disk tier (openStream). */
  readonly memoryObjectLimit: number;
  private readonly streaming: StreamingTier | undefined;

  /** Starts storing a body as it streams, on disk; undefined without a disk tier (or while it cannot write). */
  openStream(): BodyStream | undefined {
    const writer = this.streaming?.openStream();
    return writer === undefined ? undefined : { writer, tier: this.streaming as StreamingTier };
  }

  /** The body a stream has written, for the entry putStreamed stores under `key`. */
  streamedBody(stream: BodyStream, key: string): Body {
    return stream.tier.streamedBody(stream.writer, key);
  }

  /**
   * put() for an entry whose body `stream` has written: the disk tier's final record makes it visible once every
   * chunk has committed; it goes to no other tier (too large for memory; see memoryObjectLimit). A purge since
   * `since`, or a write the disk tier declines, removes the chunks.
   */
  async putStreamed(entry: CacheEntry, stream: BodyStream, since = this.purges.current): Promise<PutResult> {
    let admitted = this.admit(entry, since);
    if (admitted !== undefined) {
      const { primaryKey, vary } = admitted.meta;
      const existing = this.findNear(primaryKey);
      if (vary === null) {
        if (existing?.kind === 'vary') await this.deleteKeys(variantKeys(existing));
        // (A smaller copy of the URL in the tiers above must not outlive this one.)
        for (const tier of this.tiers) if (tier !== stream.tier) await tier.delete(primaryKey);
      } else {
        const secondary = entry.meta.key.slice(primaryKey.length + 1);
        const { record, dropped } = varyRecordWith(existing, primaryKey, vary, secondary, this.maxVariants);
        if (dropped.length > 0) await this.deleteKeys(dropped);
        if (this.admit(admitted, since) !== undefined) await this.setAll(primaryKey, record);
        for (const tier of this.tiers) if (tier !== stream.tier) await tier.delete(admitted.meta.key);
      }
      admitted = this.admit(admitted, since);
    }
    if (admitted === undefined) {
      stream.writer.abort();
      return 'dropped';
    }
    const stored = await stream.tier.finishStream(admitted.meta.key, admitted, stream.writer);
    if (!stored) return 'dropped';
    return admitted === entry ? 'stored' : 'stale';
  }

  /** Whether a record may be kept in the memory tier (a body over memoryObjectLimit may not). */
  private fitsMemory(record: CacheRecord): boolean {
    return record.kind !== 'entry' || record.body.length <= this.memoryObjectLimit;
  }

  /**
   * The hit path's lookup: synchronous, through memory and the synchronous tiers below it (a disk hit is
   * promoted as in lookup). Returns the variant matching the request's headers, or undefined.
   *
   * A body read from a lower tier may be leased (see LeasingTier): `isLeased(body)` says so, and the caller then
   * calls `release(body)` once nothing reads it any more (on the response's 'finish'), or just drops it.
   */
  peek(primaryKey: string, headers: IncomingHttpHeaders): CacheEntry | undefined {
    this.leasedBody = undefined;
    if (!this.localTrusted) return undefined;
    const record = this.memory.get(primaryKey) ?? this.peekLower(primaryKey);
    if (record === undefined || record.kind === 'entry') return record;
    const key = selectedVariant(primaryKey, record, headers);
    const variant = this.memory.get(key) ?? this.peekLower(key);
    return variant?.kind === 'entry' ? variant : undefined;
  }

  private peekLower(key: string): CacheRecord | undefined {
    for (let i = 0; i < this.syncLower.length; i++) {
      const tier = this.syncLower[i] as SyncCacheTier;
      const leasing = isLeasingTier(tier);
      let record = leasing ? tier.lease(key) : tier.get(key);
      if (record === undefined) continue;
      if (record.kind === 'entry' && record.meta.encodings != null) {
        // Compressed forms packed after the body (forms.ts): their views must outlive a lease, so no lease.
        if (leasing && Buffer.isBuffer(record.body) && tier.isLeased(record.body)) {
          const own = exactCopy(record.body);
          tier.release(record.body);
          record = { kind: 'entry', meta: record.meta, body: own };
        }
        record = unpacked(record);
        if (record === undefined) return undefined;
      } else if (leasing && record.kind === 'entry' && Buffer.isBuffer(record.body) && tier.isLeased(record.body)) {
        this.leasedBody = record.body;
      }
      // Every tier above a synchronous one is synchronous too: promote without a promise on the hit path.
      let copy: CacheRecord | undefined;
      for (let j = 0; j <= i; j++) {
        const upper = j === 0 ? this.memory : (this.syncLower[j - 1] as SyncCacheTier);
        if (j === 0 && (!this.fitsMemory(record) || (this.memory.wouldAdmit && !this.memory.wouldAdmit(key, this.sizeOf(record))))) continue;
        // A leased body goes back to its pool after this response: the tiers above get their own copy.
        if (record.kind === 'entry' && record.body === this.leasedBody) copy ??= { ...record, body: exactCopy(record.body) };
        const own = copy ?? record;
        upper.set(key, j === 0 ? ownBytes(own) : packed(own));
      }
      return record;
    }
    return undefined;
  }

  /**
   * Whether `body`, from the entry the last peek() returned, is leased from a lower tier: then hand it back with
   * release() once nothing reads it any more. (Asked right after peek, so a memory hit costs a comparison.)
   */
  isLeased(body: Body): boolean {
    return body === this.leasedBody;
  }

  /** Hands back a body leased by peek: the caller must not read it any more. Any other body is ignored. */
  release(body: Body): void {
    if (!Buffer.isBuffer(body)) return;
    for (const tier of this.leasing) tier.release(body);
  }

  /**
   * recordSize, remembered per EntryMeta (a disk hit's decoded metadata is reused across hits, see LmdbTier). A
   * meta object always describes one body (see proxy/http/hit-head.ts), so the size is fixed.
   */
  private sizeOf(record: CacheRecord): number {
    if (record.kind !== 'entry') return recordSize(record);
    let size = this.sizes.get(record.meta);
    if (size === undefined) {
      size = recordSize(record);
      this.sizes.set(record.meta, size);
    }
    return size;
  }

  /**
   * Looks the request up through every tier; a hit below memory is copied into the tiers above it. `key` is
   * the full key the request maps to: the variant key when the URL is known to vary, else the primary key.
   */
  async lookup(primaryKey: string, headers: IncomingHttpHeaders): Promise<{ entry: CacheEntry | undefined; key: string; vary?: readonly string[] }> {
    const primary = await this.find(primaryKey);
    if (primary === undefined) return { entry: undefined, key: primaryKey };
    if (primary.record.kind === 'entry') return { entry: primary.record, key: primaryKey };
    const key = selectedVariant(primaryKey, primary.record, headers);
    const found = await this.find(key);
    // The fields the URL's responses vary on: the fill forwards them normalised as they are compared.
    return { entry: found?.record.kind === 'entry' ? found.record : undefined, key, vary: primary.record.fields };
  }

  /**
   * Whether this node's own tiers (memory, disk) may answer requests: false while it may have missed purges from
   * other nodes (see localTrusted). Writes still go to every tier.
   */
  trustLocalTiers(trusted: boolean): void {
    this.localTrusted = trusted;
  }

  get localTiersTrusted(): boolean {
    return this.localTrusted;
  }

  /**
   * The entry stored under exactly this key (a cached POST's, see putExact), through every tier, a lower hit
   * copied into the tiers above as in lookup.
   */
  async lookupExact(key: string): Promise<CacheEntry | undefined> {
    const found = await this.find(key);
    return found?.record.kind === 'entry' ? found.record : undefined;
  }

  /**
   * The entry under exactly this key in memory or the synchronous tiers below it, without promotion or a wait (a
   * sliced fill asks whether a slice is stored before it answers: see proxy/pipeline/slice-fill.ts).
   */
  peekExact(key: string): CacheEntry | undefined {
    if (!this.localTrusted) return undefined;
    const found = this.findNear(key);
    return found?.kind === 'entry' ? found : undefined;
  }

  /**
   * Stores an entry under its own full key, leaving its URL's primary key alone: a cached POST's answer, which
   * must neither replace nor be selected by the URL's GET entry or Vary record. `since` as for put().
   */
  async putExact(entry: CacheEntry, since = this.purges.current): Promise<PutResult> {
    const admitted = this.admit(entry, since);
    if (admitted === undefined) return 'dropped';
    await this.setAll(admitted.meta.key, admitted);
    if (this.admit(admitted, since) === undefined) {
      await this.deleteKeys([admitted.meta.key]);
      return 'dropped';
    }
    return admitted === entry ? 'stored' : 'stale';
  }

  /** Removes the entry stored under exactly this key (see putExact) from every tier. */
  async deleteExact(key: string): Promise<void> {
    await this.deleteKeys([key]);
  }

  /**
   * A copy of `entry` in a synchronous tier below memory (the disk tier, shared by the worker processes) that is
   * fresh for longer than it: another process revalidated or refetched it meanwhile. It replaces this process's
   * copy in memory and is returned; undefined when there is none. For a memory hit that is no longer fresh, before
   * going to the origin: otherwise each worker would revalidate what one of them already did.
   */
  newerBelow(entry: CacheEntry): CacheEntry | undefined {
    if (!this.localTrusted) return undefined;
    const key = entry.meta.key;
    for (const tier of this.syncLower) {
      const stored = tier.get(key);
      if (stored?.kind !== 'entry') continue;
      if (freshUntil(stored.meta) <= freshUntil(entry.meta)) return undefined;
      // Compressed forms are packed after the body below memory (forms.ts).
      const found = unpacked(stored);
      if (found?.kind !== 'entry') return undefined;
      const admitted = this.admit(found, this.purges.current);
      if (admitted === undefined || freshUntil(admitted.meta) <= freshUntil(entry.meta)) return undefined;
      if (this.fitsMemory(admitted)) this.memory.set(key, ownBytes(admitted));
      this.foundIn.set(admitted, tier.name);
      return admitted;
    }
    return undefined;
  }

  /**
   * Makes the next lookups see what other processes committed to the shared tiers up to now (after another worker
   * said it stored an entry: lmdb-js would otherwise read through the snapshot it took earlier in this turn).
   */
  readLatest(): void {
    for (const tier of this.syncLower) tier.readLatest?.();
  }

  /** The record under `key` in memory or a synchronous tier below it, without promotion. */
  private findNear(key: string): CacheRecord | undefined {
    const record = this.memory.get(key);
    if (record !== undefined) return record;
    for (const tier of this.syncLower) {
      const found = tier.get(key);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /**
   * The tier a lookup found this entry in (for the metrics' `tier` label), 'memory' for an entry this process did
   * not look up (a new one, after a refresh).
   */
  tierOf(entry: CacheEntry): 'memory' | 'disk' | 'redis' {
    const tier = this.foundIn.get(entry);
    return tier === 'disk' || tier === 'redis' ? tier : 'memory';
  }

  private readonly foundIn = new WeakMap<CacheRecord, string>();

  private async find(key: string): Promise<{ record: CacheRecord; tier: number } | undefined> {
    const since = this.purges.current;
    for (let i = 0; i < this.tiers.length; i++) {
      const tier = this.tiers[i] as CacheTier;
      if (!this.localTrusted && tier.reach !== 'network') continue;
      const stored = tier.synchronous ? (tier.get(key) as CacheRecord | undefined) : await tier.get(key);
      if (stored === undefined) continue;
      if (i === 0) return { record: stored, tier: i };
      const record = unpacked(stored);
      if (record === undefined) return undefined;
      // A record read from a networked tier before a purge answered must not be copied back up after it.
      const admitted = this.admit(record, since);
      if (admitted === undefined) return undefined;
      if (admitted === record) await this.promote(key, record, i);
      this.foundIn.set(admitted, tier.name);
      return { record: admitted, tier: i };
    }
    return undefined;
  }

  /** Copies a lower-tier hit into the tiers above it; into memory only when its eviction policy admits it. */
  private async promote(key: string, record: CacheRecord, found: number): Promise<void> {
    for (let j = 0; j < found; j++) {
      const tier = this.tiers[j] as CacheTier;
      if (tier === this.memory && (!this.fitsMemory(record) || (this.memory.wouldAdmit && !this.memory.wouldAdmit(key, recordSize(record))))) continue;
      // A disk body is read lazily from LMDB pages that eviction (in any process) can free: memory keeps a copy.
      await tier.set(key, tier === this.memory ? ownBytes(record) : packed(record));
    }
  }

  /** The purge generation a write starting now records, to pass to put() or replace() (see PurgeLog). */
  get purgeGeneration(): number {
    return this.purges.current;
  }

  /**
   * Records a purge that is about to be applied, so that writes which started before it are not stored as fresh
   * after it. purge() does this itself; a process that is told of a purge before another one applies it to the
   * shared tiers calls it first (see proxy/cluster/primary.ts).
   */
  notePurge(selector: PurgeSelector, soft: boolean): void {
    this.purges.record(selector, soft);
  }

  /** What the purges recorded since generation `since` mean for a write of `subject` (see PurgeLog). */
  purgedSince(since: number, subject: PurgeSubject): PurgeVerdict {
    return this.purges.since(since, subject);
  }

  /**
   * The record as it may be written now by a write that started at purge generation `since`: unchanged, marked
   * stale (a soft purge addressed it meanwhile), or undefined (a hard purge did: drop it).
   */
  private admit<R extends CacheRecord>(record: R, since: number): R | undefined {
    const subject: PurgeSubject =
      record.kind === 'entry' ? record.meta : { key: record.primaryKey, primaryKey: record.primaryKey, tags: [] };
    const verdict = this.purges.since(since, subject);
    if (verdict === 'hard') return undefined;
    // A soft purge leaves Vary records alone (see purgeKey).
    if (verdict === 'none' || record.kind !== 'entry') return record;
    // Stale as of when it was received: the next request revalidates it (stale-while-revalidate still applies).
    return softened(record, record.meta.storedAt) as R;
  }

  /**
   * Stores one response; keeps the URL's VaryRecord and the variant cap up to date. `since` is the purge
   * generation read when the response was requested: a purge since then that addresses it drops it (hard) or
   * stores it stale (soft), so that a fill in flight when a purge answered never brings back what was purged.
   */
  async put(entry: CacheEntry, since = this.purges.current): Promise<PutResult> {
    const admitted = this.admit(entry, since);
    if (admitted === undefined) return 'dropped';
    const result: PutResult = admitted === entry ? 'stored' : 'stale';
    const { primaryKey, vary } = admitted.meta;
    // Only the synchronous tiers: a fill must not wait for a networked tier (which merges Vary records itself).
    const existing = this.findNear(primaryKey);
    if (vary === null) {
      if (existing?.kind === 'vary') await this.deleteKeys(variantKeys(existing));
      // Checked again after every wait: a purge may have been recorded meanwhile.
      if (this.admit(admitted, since) === undefined) return 'dropped';
      await this.setAll(primaryKey, admitted);
      return result;
    }
    const secondary = entry.meta.key.slice(primaryKey.length + 1);
    const { record, dropped } = varyRecordWith(existing, primaryKey, vary, secondary, this.maxVariants);
    if (dropped.length > 0) await this.deleteKeys(dropped);
    if (this.admit(admitted, since) === undefined) return 'dropped';
    await this.setAll(primaryKey, record);
    if (this.admit(admitted, since) === undefined) return 'dropped';
    await this.setAll(admitted.meta.key, admitted);
    return result;
  }

  /**
   * Replaces one stored variant in place after a 304 updated its headers and lifetimes: `entry` carries the body
   * of the entry whose metadata was `stored`, and the tiers that keep bodies apart rewrite only the metadata
   * (CacheTier.updateMeta). `since` as for put(): the revalidated entry was read before it, and a purge since then
   * must not be undone by the refresh.
   */
  async replace(entry: CacheEntry, stored: EntryMeta, since = this.purges.current): Promise<PutResult> {
    const admitted = this.admit(entry, since);
    if (admitted === undefined) return 'dropped';
    for (const tier of this.writeTiers) await writeMeta(tier, admitted.meta.key, tier === this.memory ? admitted : (packed(admitted) as CacheEntry), stored);
    return admitted === entry ? 'stored' : 'stale';
  }

  /** Removes every variant of a URL from every tier. Returns how many entries were removed. */
  async invalidate(primaryKey: string): Promise<number> {
    const { found, variants } = await urlKeys(primaryKey, this.tiers);
    if (!found) return 0;
    await this.deleteKeys([...variants, primaryKey]);
    return variants.length > 0 ? variants.length : 1;
  }

  /** Purges what the selector addresses from every tier (or those `within` a reach); returns how many entries were affected. */
  async purge(selector: PurgeSelector, options: PurgeOptions): Promise<number> {
    // A purge of a URL also removes the entries kept beside its GET entries (cached POST answers, partial content),
    // found by the URL's tag (postTag) rather than by scanning the tiers.
    if (selector.urls !== undefined && selector.urls.length > 0) {
      selector = { ...selector, tags: [...(selector.tags ?? []), ...selector.urls.map(postTag)] };
    }
    // First of all: from now on, writes that started before this purge are checked against it (see put).
    this.purges.record(selector, options.soft);
    return purgeTiers({ memory: this.memory, all: this.tiers }, selector, options);
  }

  /** Resolves once every tier (or those `within` a reach) has committed the writes accepted so far. */
  async flush(within?: PurgeOptions['within']): Promise<void> {
    for (const tier of tiersWithin({ memory: this.memory, all: this.tiers }, within)) await tier.flushed?.();
  }

  /** Why a tier cannot do its job now (see CacheTier.unready); empty when every tier can. */
  unready(): string[] {
    const problems: string[] = [];
    for (const tier of this.tiers) {
      const problem = tier.unready?.();
      if (problem !== undefined) problems.push(problem);
    }
    return problems;
  }

  /**
   * Waits until the networked tiers (Redis) have answered the writes queued so far, then says whether `key`'s write
   * landed there (recently written by this process: not declined, not failed).
   */
  async landedInShared(key: string): Promise<boolean> {
    const shared = this.tiers.filter((tier) => tier.reach === 'network');
    for (const tier of shared) await tier.flushed?.();
    return shared.length > 0 && shared.every((tier) => tier.hasPendingWrite?.(key) === true);
  }

  stats(): TierStats[] {
    return this.tiers.map((t) => t.stats());
  }

  async close(): Promise<void> {
    for (const tier of this.tiers) await tier.close();
  }

  private async setAll(key: string, record: CacheRecord): Promise<void> {
    const lower = packed(record);
    for (const tier of this.writeTiers) {
      if (tier === this.memory && !this.fitsMemory(record)) {
        // Too large for memory: on disk only (whatever --disk-write says), and no older copy left in memory.
        await tier.delete(key);
        if (this.streaming !== undefined && !this.writeTiers.includes(this.streaming)) this.streaming.set(key, lower);
        continue;
      }
      await tier.set(key, tier === this.memory ? record : lower);
    }
  }
  /**
   * Adds the compressed forms of a response to its stored entry (proxy/pipeline/compressor.ts), when the entry
   * stored under its key is still that response (not replaced, revalidated or evicted meanwhile). `since` as for
   * put(): a purge since the response was fetched drops the forms too. Returns whether they were stored.
   */
  async addForms(entry: CacheEntry, forms: EncodedForms, since: number): Promise<boolean> {
    const key = entry.meta.key;
    const current = this.findNear(key);
    if (current?.kind !== 'entry' || current.meta.storedAt !== entry.meta.storedAt || current.meta.encodings != null) return false;
    if (current.meta !== entry.meta && current.body.length !== entry.body.length) return false;
    const admitted = this.admit(withForms(current.meta === entry.meta ? entry : { ...entry, meta: current.meta }, forms, formsLayout(entry.body, forms)), since);
    if (admitted === undefined) return false;
    await this.setAll(key, admitted);
    return true;
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    for (const tier of this.tiers) for (const key of keys) await tier.delete(key);
  }
}

/**
 * The record as the memory tier keeps it: a chunked body copied into memory (a lower tier's body may be read
 * lazily from disk), a Buffer that is a view into a larger one (a Redis reply) copied out (see ownedBuffer).
 */
function ownBytes(record: CacheRecord): CacheRecord {
  if (record.kind !== 'entry') return record;
  const { body, forms } = record;
  const owned = ownBody(body);
  if (forms === undefined) return owned === body ? record : { ...record, body: owned };
  const ownForms: EncodedForms = {};
  if (forms.br !== undefined) ownForms.br = ownBody(forms.br);
  if (forms.gzip !== undefined) ownForms.gzip = ownBody(forms.gzip);
  return { kind: 'entry', meta: record.meta, body: owned, forms: ownForms };
}

function ownBody(body: Body): Body {
  return isChunked(body) ? bodyFromChunks([...bodyChunks(body)], body.length) : ownedBuffer(body);
}
