/**
 * The in-memory tier: a byte-bounded LRU of records (lru-cache with maxSize + sizeCalculation). Holds the hot
 * set; `get` is synchronous and allocation-free so the hit path can call it directly.
 */
import { LRUCache } from 'lru-cache';
import { recordSize, type CacheRecord } from './entry.js';
import { TagIndex } from './tag-index.js';
import type { SyncCacheTier, TierStats } from './tier.js';

export interface MemoryTierOptions {
  maxBytes: number;
  /** Called when a record leaves because of the byte bound (e.g. to spill it to disk). */
  onEvict?: (key: string, record: CacheRecord) => void;
}

export class MemoryTier implements SyncCacheTier {
  readonly name = 'memory';
  readonly synchronous = true;
  private readonly lru: LRUCache<string, CacheRecord>;
  private readonly tags = new TagIndex();
  private evictions = 0;

  constructor(private readonly options: MemoryTierOptions) {
    this.lru = new LRUCache<string, CacheRecord>({
      maxSize: options.maxBytes,
      maxEntrySize: options.maxBytes,
      sizeCalculation: recordSize,
      dispose: (record, key, reason) => {
        this.tags.remove(key, record);
        if (reason === 'evict') {
          this.evictions++;
          options.onEvict?.(key, record);
        }
      },
    });
  }

  get(key: string): CacheRecord | undefined {
    return this.lru.get(key);
  }

  set(key: string, record: CacheRecord): boolean {
    if (recordSize(record) > this.options.maxBytes) return false;
    this.lru.set(key, record);
    if (!this.lru.has(key)) return false;
    this.tags.add(key, record);
    return true;
  }

  delete(key: string): void {
    this.lru.delete(key);
  }

  keys(prefix: string): string[] {
    const out: string[] = [];
    for (const key of this.lru.keys()) if (key.startsWith(prefix)) out.push(key);
    return out;
  }

  keysForTag(tag: string): string[] {
    return this.tags.keys(tag);
  }

  clear(): void {
    this.lru.clear();
    this.tags.clear();
  }

  stats(): TierStats {
    return { name: this.name, entries: this.lru.size, bytes: this.lru.calculatedSize, maxBytes: this.options.maxBytes, evictions: this.evictions };
  }

  close(): void {
    this.clear();
  }
}
