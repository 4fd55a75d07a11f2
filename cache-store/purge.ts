/**
 * Purging the tiers (the store's side of a purge: which keys a selector addresses in each tier, and removing or
 * softening them in batches). CacheStore.purge records the purge in its PurgeLog first, so that writes which
 * started before it are checked against it, and then calls purgeTiers.
 */
import { variantKey } from '../policies/http/cache-key.js';
import { deletableAt, type CacheEntry, type CacheRecord, type EntryMeta } from './entry.js';
import { pathOf } from './purge-log.js';
import type { CacheTier, MaybePromise, SyncCacheTier, TierReach } from './tier.js';

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

/** The tiers of a store: the memory tier (always purged) and all of them, in lookup order. */
export interface PurgeScope {
  memory: SyncCacheTier;
  all: CacheTier[];
}

/** The tiers a purge (or a flush) `within` this reach applies to (all when undefined); memory is always one. */
export function tiersWithin(scope: PurgeScope, within: PurgeOptions['within']): CacheTier[] {
  if (within === undefined) return scope.all;
  const limit = REACH_ORDER[within];
  return scope.all.filter((t) => t === scope.memory || REACH_ORDER[t.reach ?? 'host'] <= limit);
}

/** Purges what the selector addresses from the tiers `within` reach; returns how many entries were affected. */
export async function purgeTiers(scope: PurgeScope, selector: PurgeSelector, options: PurgeOptions): Promise<number> {
  const tiers = tiersWithin(scope, options.within);
  const keys = [...(await collectKeys(selector, tiers))];
  const batchSize = options.batchSize ?? 200;
  let affected = 0;
  for (let start = 0; start < keys.length; start += batchSize) {
    const batch = keys.slice(start, start + batchSize);
    affected += options.soft ? await soften(scope, batch, options.now, tiers) : await remove(scope, batch, tiers);
    // Between batches the event loop serves requests: a large purge never stalls the hit path for long.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return affected;
}

/**
 * What a URL occupies in the given tiers: whether any holds a record under it, and the variant keys named by
 * any tier's Vary record (a lower, shared tier may know variants that this process never stored).
 */
export async function urlKeys(primaryKey: string, tiers: readonly CacheTier[]): Promise<{ found: boolean; variants: string[] }> {
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

/** Hard purge of one batch: memory at once, lower tiers in one unit of work each. Returns the entries removed. */
async function remove(scope: PurgeScope, keys: string[], tiers: CacheTier[]): Promise<number> {
  let affected = 0;
  const below = new Map<CacheTier, string[]>();
  const add = (tier: CacheTier, key: string): void => {
    let list = below.get(tier);
    if (list === undefined) below.set(tier, (list = []));
    list.push(key);
  };
  for (const key of keys) {
    let wasEntry = false;
    for (const tier of tiers) {
      if (tier === scope.memory) {
        wasEntry = scope.memory.get(key)?.kind === 'entry' || wasEntry;
        scope.memory.delete(key);
        continue;
      }
      wasEntry ||= tier.hasEntry?.(key) ?? false;
      add(tier, key);
    }
    // A purge of the narrower tiers still deletes what this process has queued for the wider ones (see within).
    for (const tier of pendingOutside(scope, tiers, key)) add(tier, key);
    if (wasEntry) affected++;
  }
  for (const [tier, list] of below) {
    if (tier.deleteMany) await tier.deleteMany(list);
    else for (const key of list) await tier.delete(key);
  }
  return affected;
}

/** Soft purge of one batch, key by key. Returns the entries marked stale. */
async function soften(scope: PurgeScope, keys: string[], now: number, tiers: CacheTier[]): Promise<number> {
  let affected = 0;
  for (const key of keys) {
    const pending = pendingOutside(scope, tiers, key);
    if (await softenKey(key, now, pending.length > 0 ? [...tiers, ...pending] : tiers)) affected++;
  }
  return affected;
}

/** The tiers outside `tiers` that have a write of `key` queued by this process (see PurgeOptions.within). */
function pendingOutside(scope: PurgeScope, tiers: CacheTier[], key: string): CacheTier[] {
  return tiers === scope.all ? [] : scope.all.filter((t) => !tiers.includes(t) && t.hasPendingWrite?.(key));
}

/** Every key the selector addresses in the tiers (entries, variants and Vary records). */
async function collectKeys(selector: PurgeSelector, tiers: CacheTier[]): Promise<Set<string>> {
  const keys = new Set<string>();
  const addAll = (list: string[]): void => {
    for (const key of list) keys.add(key);
  };
  for (const url of selector.urls ?? []) {
    keys.add(url);
    addAll((await urlKeys(url, tiers)).variants);
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
        addAll(every.filter((key) => paths.has(pathOf(key))));
      }
    }
  }
  return keys;
}

/** Marks one key stale in every tier (Vary records are left alone); true when it held an entry somewhere. */
async function softenKey(key: string, now: number, tiers: CacheTier[]): Promise<boolean> {
  let wasEntry = false;
  for (const tier of tiers) {
    const record = tier.synchronous ? (tier.get(key) as CacheRecord | undefined) : await tier.get(key);
    if (record?.kind !== 'entry') continue;
    wasEntry = true;
    // Only the lifetimes change: a tier that keeps the body apart keeps it as it is.
    await writeMeta(tier, key, softened(record, now), record.meta);
  }
  return wasEntry;
}

/** Stores an entry whose body is the one stored with `stored`: the metadata only where the tier can (see CacheTier.updateMeta). */
export function writeMeta(tier: CacheTier, key: string, entry: CacheEntry, stored: EntryMeta): MaybePromise<boolean> {
  return tier.updateMeta ? tier.updateMeta(key, entry, stored) : tier.set(key, entry);
}

/** The entry as if it had just expired: the next request revalidates; stale-while-revalidate still applies. */
export function softened(entry: CacheEntry, now: number): CacheEntry {
  const lifetime = Math.max(0, Math.min(entry.meta.lifetime, now - entry.meta.ageBase));
  const lifetimes = { ...entry.meta, lifetime };
  return { kind: 'entry', meta: { ...lifetimes, deletableAt: Math.max(deletableAt(lifetimes), now + 1) }, body: entry.body };
}
