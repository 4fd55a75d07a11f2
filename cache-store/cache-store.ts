/**
 * The cache as the proxy sees it: an ordered list of tiers (memory first) with Vary handled on top. A URL whose
 * responses vary has a VaryRecord under its primary key naming the selecting request fields; each variant lives
 * under primary key + secondary key. Lookups go down the tiers and copy a lower-tier hit into the tiers above.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { variantKey, varyKey } from '../policies/cache-key.js';
import type { CacheEntry, CacheRecord, VaryRecord } from './entry.js';
import type { CacheTier, SyncCacheTier, TierStats } from './tier.js';

export interface CacheStoreOptions {
  /** The hot tier, consulted synchronously on every request. */
  memory: SyncCacheTier;
  /** Lower tiers, in lookup order. */
  lower?: CacheTier[];
  /** Most variants kept per primary key. */
  maxVariants: number;
}

export class CacheStore {
  readonly memory: SyncCacheTier;
  private readonly tiers: CacheTier[];
  private readonly maxVariants: number;

  constructor(options: CacheStoreOptions) {
    this.memory = options.memory;
    this.tiers = [options.memory, ...(options.lower ?? [])];
    this.maxVariants = options.maxVariants;
  }

  /**
   * The hit path's lookup: memory tier only, synchronous. Returns the variant matching the request's
   * headers, or undefined.
   */
  peek(primaryKey: string, headers: IncomingHttpHeaders): CacheEntry | undefined {
    const record = this.memory.get(primaryKey);
    if (record === undefined || record.kind === 'entry') return record;
    const variant = this.memory.get(variantKey(primaryKey, varyKey(record.fields, headers)));
    return variant?.kind === 'entry' ? variant : undefined;
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

  private async find(key: string): Promise<{ record: CacheRecord; tier: number } | undefined> {
    for (let i = 0; i < this.tiers.length; i++) {
      const tier = this.tiers[i] as CacheTier;
      const record = tier.synchronous ? (tier.get(key) as CacheRecord | undefined) : await tier.get(key);
      if (record === undefined) continue;
      for (let j = 0; j < i; j++) await (this.tiers[j] as CacheTier).set(key, record);
      return { record, tier: i };
    }
    return undefined;
  }

  /** Stores one response; keeps the URL's VaryRecord and the variant cap up to date. */
  async put(entry: CacheEntry): Promise<void> {
    const { primaryKey, vary } = entry.meta;
    const existing = (await this.find(primaryKey))?.record;
    if (vary === null) {
      if (existing?.kind === 'vary') await this.deleteKeys(existing.variants.map((v) => variantKey(primaryKey, v)));
      await this.setAll(primaryKey, entry);
      return;
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
    await this.setAll(primaryKey, record);
    await this.setAll(entry.meta.key, entry);
  }

  /** Replaces one stored variant in place (after a 304 updated its headers). */
  async replace(entry: CacheEntry): Promise<void> {
    await this.setAll(entry.meta.key, entry);
  }

  /** Removes every variant of a URL from every tier. Returns how many entries were removed. */
  async invalidate(primaryKey: string): Promise<number> {
    const existing = (await this.find(primaryKey))?.record;
    if (existing === undefined) return 0;
    const keys = existing.kind === 'vary' ? existing.variants.map((v) => variantKey(primaryKey, v)) : [];
    await this.deleteKeys([...keys, primaryKey]);
    return existing.kind === 'vary' ? keys.length : 1;
  }

  stats(): TierStats[] {
    return this.tiers.map((t) => t.stats());
  }

  async close(): Promise<void> {
    for (const tier of this.tiers) await tier.close();
  }

  private async setAll(key: string, record: CacheRecord): Promise<void> {
    for (const tier of this.tiers) await tier.set(key, record);
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    for (const tier of this.tiers) for (const key of keys) await tier.delete(key);
  }
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((f, i) => f === b[i]);
}
