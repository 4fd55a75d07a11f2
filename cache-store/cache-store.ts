/**
 * The cache as the proxy sees it: an ordered list of tiers (memory first) with Vary handled on top. A URL whose
 * responses vary has a VaryRecord under its primary key naming the selecting request fields; each variant lives
 * under primary key + secondary key. Lookups go down the tiers and copy a lower-tier hit into the tiers above.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { variantKey, varyKey } from '../policies/http/cache-key.js';
import { bodyChunks, bodyFromChunks, exactCopy, isChunked, ownedBuffer, type Body } from './body.js';
import { deletableAt, recordSize, type CacheEntry, type CacheRecord, type EntryMeta, type VaryRecord } from './entry.js';
import { PurgeLog, type PurgeSubject, type PurgeVerdict } from './purge-log.js';
import type { CacheTier, MaybePromise, SyncCacheTier, TierReach, TierStats } from './tier.js';

/** What a purge addresses. Keys are primary keys (lower-cased host + path and query). */
export interface PurgeSelector {
  /** Exact URLs, every Vary variant included. */
  urls?: string[];
  /** Exact paths (with query) on any host, every variant included. */
  paths?: string[];
  /** Key prefixes: host + path prefix. */
  keyPrefixes?: string[];
  /** Path prefixes on any host. */
  pathPrefixes?: string[];
  /** Surrogate keys. */
  tags?: string[];
  all?: boolean;
}

export interface PurgeOptions {
  /** Mark stale instead of removing: the next request revalidates, and stale-while-revalidate / stale-if-error still apply. */
  soft: boolean;
  now: number;
  /** Keys handled between two yields to the event loop, so a large purge never stalls requests. */
  batchSize?: number;
  /**
   * Purge only the tiers no wider than this: 'process' (memory), 'host' (memory and the disk tier); all when
   * absent. Another process (or node) purges the wider, shared tiers. Writes of a purged key that this process
   * still has queued for a skipped tier are deleted there too, since they could otherwise land after the other
   * process's delete and bring the entry back.
   */
  within?: Exclude<TierReach, 'network'>;
}

const REACH_ORDER: Record<TierReach, number> = { process: 0, host: 1, network: 2 };

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
    const record = this.memory.get(primaryKey) ?? this.peekLower(primaryKey);
    if (record === undefined || record.kind === 'entry') return record;
    const key = variantKey(primaryKey, varyKey(record.fields, headers));
    const variant = this.memory.get(key) ?? this.peekLower(key);
    return variant?.kind === 'entry' ? variant : undefined;
  }

  private peekLower(key: string): CacheRecord | undefined {
    for (let i = 0; i < this.syncLower.length; i++) {
      const tier = this.syncLower[i] as SyncCacheTier;
      const leasing = isLeasingTier(tier);
      const record = leasing ? tier.lease(key) : tier.get(key);
      if (record === undefined) continue;
      if (leasing && record.kind === 'entry' && Buffer.isBuffer(record.body) && tier.isLeased(record.body)) this.leasedBody = record.body;
      // Every tier above a synchronous one is synchronous too: promote without a promise on the hit path.
      let copy: CacheRecord | undefined;
      for (let j = 0; j <= i; j++) {
        const upper = j === 0 ? this.memory : (this.syncLower[j - 1] as SyncCacheTier);
        if (j === 0 && this.memory.wouldAdmit && !this.memory.wouldAdmit(key, this.sizeOf(record))) continue;
        // A leased body goes back to its pool after this response: the tiers above get their own copy.
        if (record.kind === 'entry' && record.body === this.leasedBody) copy ??= { ...record, body: exactCopy(record.body) };
        upper.set(key, copy ?? (j === 0 ? ownBytes(record) : record));
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
  async lookup(primaryKey: string, headers: IncomingHttpHeaders): Promise<{ entry: CacheEntry | undefined; key: string }> {
    const primary = await this.find(primaryKey);
    if (primary === undefined) return { entry: undefined, key: primaryKey };
    if (primary.record.kind === 'entry') return { entry: primary.record, key: primaryKey };
    const key = variantKey(primaryKey, varyKey(primary.record.fields, headers));
    const found = await this.find(key);
    return { entry: found?.record.kind === 'entry' ? found.record : undefined, key };
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

  private async find(key: string): Promise<{ record: CacheRecord; tier: number } | undefined> {
    const since = this.purges.current;
    for (let i = 0; i < this.tiers.length; i++) {
      const tier = this.tiers[i] as CacheTier;
      const record = tier.synchronous ? (tier.get(key) as CacheRecord | undefined) : await tier.get(key);
      if (record === undefined) continue;
      if (i === 0) return { record, tier: i };
      // A record read from a networked tier before a purge answered must not be copied back up after it.
      const admitted = this.admit(record, since);
      if (admitted === undefined) return undefined;
      if (admitted === record) await this.promote(key, record, i);
      return { record: admitted, tier: i };
    }
    return undefined;
  }

  /** Copies a lower-tier hit into the tiers above it; into memory only when its eviction policy admits it. */
  private async promote(key: string, record: CacheRecord, found: number): Promise<void> {
    for (let j = 0; j < found; j++) {
      const tier = this.tiers[j] as CacheTier;
      if (tier === this.memory && this.memory.wouldAdmit && !this.memory.wouldAdmit(key, recordSize(record))) continue;
      // A disk body is read lazily from LMDB pages that eviction (in any process) can free: memory keeps a copy.
      await tier.set(key, tier === this.memory ? ownBytes(record) : record);
    }
  }

  /** The purge generation a write starting now records, to pass to put() or replace() (see PurgeLog). */
  get purgeGeneration(): number {
    return this.purges.current;
  }

  /**
   * Records a purge that is about to be applied, so that writes which started before it are not stored as fresh
   * after it. purge() does this itself; a process that is told of a purge before another one applies it to the
   * shared tiers calls it first (see cluster-primary.ts).
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
      if (existing?.kind === 'vary') await this.deleteKeys(existing.variants.map((v) => variantKey(primaryKey, v)));
      // Checked again after every wait: a purge may have been recorded meanwhile.
      if (this.admit(admitted, since) === undefined) return 'dropped';
      await this.setAll(primaryKey, admitted);
      return result;
    }
    const secondary = entry.meta.key.slice(primaryKey.length + 1);
    let record: VaryRecord;
    if (existing?.kind === 'vary' && sameFields(existing.fields, vary)) {
      record = { ...existing, variants: existing.variants.filter((v) => v !== secondary) };
    } else {
      if (existing?.kind === 'vary') await this.deleteKeys(existing.variants.map((v) => variantKey(primaryKey, v)));
      record = { kind: 'vary', primaryKey, fields: vary, variants: [] };
    }
    record.variants.push(secondary);
    while (record.variants.length > this.maxVariants) {
      const dropped = record.variants.shift() as string;
      await this.deleteKeys([variantKey(primaryKey, dropped)]);
    }
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
    for (const tier of this.writeTiers) await writeMeta(tier, admitted.meta.key, admitted, stored);
    return admitted === entry ? 'stored' : 'stale';
  }

  /** Removes every variant of a URL from every tier. Returns how many entries were removed. */
  async invalidate(primaryKey: string): Promise<number> {
    const { found, variants } = await this.urlKeys(primaryKey, this.tiers);
    if (!found) return 0;
    await this.deleteKeys([...variants, primaryKey]);
    return variants.length > 0 ? variants.length : 1;
  }

  /**
   * What a URL occupies in the given tiers: whether any holds a record under it, and the variant keys named by
   * any tier's Vary record (a lower, shared tier may know variants that this process never stored).
   */
  private async urlKeys(primaryKey: string, tiers: CacheTier[]): Promise<{ found: boolean; variants: string[] }> {
    let found = false;
    const variants = new Set<string>();
    for (const tier of tiers) {
      const record = tier.synchronous ? (tier.get(primaryKey) as CacheRecord | undefined) : await tier.get(primaryKey);
      if (record === undefined) continue;
      found = true;
      if (record.kind === 'vary') for (const v of record.variants) variants.add(variantKey(primaryKey, v));
    }
    return { found, variants: [...variants] };
  }

  /** Purges what the selector addresses from every tier; returns how many entries were affected. */
  async purge(selector: PurgeSelector, options: PurgeOptions): Promise<number> {
    // First of all: from now on, writes that started before this purge are checked against it (see put).
    this.purges.record(selector, options.soft);
    const tiers = this.tiersWithin(options.within);
    const keys = [...(await this.collectKeys(selector, tiers))];
    const batchSize = options.batchSize ?? 200;
    let affected = 0;
    for (let start = 0; start < keys.length; start += batchSize) {
      const batch = keys.slice(start, start + batchSize);
      affected += options.soft ? await this.soften(batch, options, tiers) : await this.remove(batch, tiers);
      // Between batches the event loop serves requests: a large purge never stalls the hit path for long.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return affected;
  }

  /** The tiers a purge `within` this reach applies to (all when undefined); memory is always one. */
  private tiersWithin(within: PurgeOptions['within']): CacheTier[] {
    if (within === undefined) return this.tiers;
    const limit = REACH_ORDER[within];
    return this.tiers.filter((t) => t === this.memory || REACH_ORDER[t.reach ?? 'host'] <= limit);
  }

  /** Hard purge of one batch: memory at once, lower tiers in one unit of work each. Returns the entries removed. */
  private async remove(keys: string[], tiers: CacheTier[]): Promise<number> {
    let affected = 0;
    const below = new Map<CacheTier, string[]>();
    for (const key of keys) {
      let wasEntry = false;
      for (const tier of tiers) {
        if (tier === this.memory) {
          wasEntry = this.memory.get(key)?.kind === 'entry' || wasEntry;
          this.memory.delete(key);
          continue;
        }
        wasEntry ||= tier.hasEntry?.(key) ?? false;
        let list = below.get(tier);
        if (list === undefined) below.set(tier, (list = []));
        list.push(key);
      }
      // A purge of the narrower tiers still deletes what this process has queued for the wider ones (see within).
      if (tiers !== this.tiers) {
        for (const tier of this.tiers) {
          if (tiers.includes(tier) || !tier.hasPendingWrite?.(key)) continue;
          let list = below.get(tier);
          if (list === undefined) below.set(tier, (list = []));
          list.push(key);
        }
      }
      if (wasEntry) affected++;
    }
    for (const [tier, list] of below) {
      if (tier.deleteMany) await tier.deleteMany(list);
      else for (const key of list) await tier.delete(key);
    }
    return affected;
  }

  private async soften(keys: string[], options: PurgeOptions, tiers: CacheTier[]): Promise<number> {
    let affected = 0;
    for (const key of keys) {
      const pendingBelow = tiers !== this.tiers ? this.tiers.filter((t) => !tiers.includes(t) && t.hasPendingWrite?.(key)) : [];
      if (await this.purgeKey(key, options, pendingBelow.length > 0 ? [...tiers, ...pendingBelow] : tiers)) affected++;
    }
    return affected;
  }

  private async collectKeys(selector: PurgeSelector, tiers: CacheTier[]): Promise<Set<string>> {
    const keys = new Set<string>();
    const addAll = (list: string[]): void => {
      for (const key of list) keys.add(key);
    };
    for (const url of selector.urls ?? []) {
      keys.add(url);
      addAll((await this.urlKeys(url, tiers)).variants);
    }
    for (const tier of tiers) {
      for (const tag of selector.tags ?? []) addAll(await tier.keysForTag(tag));
      for (const prefix of selector.keyPrefixes ?? []) addAll(await tier.keys(prefix));
      if (selector.all || (selector.pathPrefixes?.length ?? 0) > 0 || (selector.paths?.length ?? 0) > 0) {
        const every = await tier.keys('');
        if (selector.all) addAll(every);
        for (const prefix of selector.pathPrefixes ?? []) addAll(every.filter((key) => pathOf(key).startsWith(prefix)));
        if (selector.paths?.length) {
          const paths = new Set(selector.paths);
          addAll(every.filter((key) => paths.has(pathOf(key).split('\n')[0] as string)));
        }
      }
    }
    return keys;
  }

  /** Removes or softens one key in every tier; true when it held an entry somewhere. */
  private async purgeKey(key: string, options: PurgeOptions, tiers: CacheTier[]): Promise<boolean> {
    let wasEntry = false;
    for (const tier of tiers) {
      const record = tier.synchronous ? (tier.get(key) as CacheRecord | undefined) : await tier.get(key);
      if (record === undefined) continue;
      if (record.kind === 'entry') wasEntry = true;
      if (!options.soft || record.kind === 'vary') {
        if (!options.soft) await tier.delete(key);
        continue;
      }
      // Only the lifetimes change: a tier that keeps the body apart keeps it as it is.
      await writeMeta(tier, key, softened(record, options.now), record.meta);
    }
    return wasEntry;
  }

  /** Resolves once every tier (or those `within` a reach) has committed the writes accepted so far. */
  async flush(within?: PurgeOptions['within']): Promise<void> {
    for (const tier of this.tiersWithin(within)) await tier.flushed?.();
  }

  stats(): TierStats[] {
    return this.tiers.map((t) => t.stats());
  }

  async close(): Promise<void> {
    for (const tier of this.tiers) await tier.close();
  }

  private async setAll(key: string, record: CacheRecord): Promise<void> {
    for (const tier of this.writeTiers) await tier.set(key, record);
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
  const { body } = record;
  if (!isChunked(body)) {
    const owned = ownedBuffer(body);
    return owned === body ? record : { ...record, body: owned };
  }
  return { ...record, body: bodyFromChunks([...bodyChunks(body)], body.length) };
}

/** Stores an entry whose body is the one stored with `stored`: the metadata only where the tier can (see CacheTier.updateMeta). */
function writeMeta(tier: CacheTier, key: string, entry: CacheEntry, stored: EntryMeta): MaybePromise<boolean> {
  return tier.updateMeta ? tier.updateMeta(key, entry, stored) : tier.set(key, entry);
}

/** The entry as if it had just expired: the next request revalidates; stale-while-revalidate still applies. */
function softened(entry: CacheEntry, now: number): CacheEntry {
  const lifetime = Math.max(0, Math.min(entry.meta.lifetime, now - entry.meta.ageBase));
  const lifetimes = { ...entry.meta, lifetime, freshUntil: entry.meta.ageBase + lifetime };
  return { kind: 'entry', meta: { ...lifetimes, deletableAt: Math.max(deletableAt(lifetimes), now + 1) }, body: entry.body, policy: entry.policy };
}

/** The path part of a key (host + path, maybe + newline + Vary secondary key). */
function pathOf(key: string): string {
  const slash = key.indexOf('/');
  return slash === -1 ? '' : key.slice(slash);
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((f, i) => f === b[i]);
}
