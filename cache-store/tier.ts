/**
 * The interface every cache tier implements (memory, LMDB, Redis) and the tiered store composes. Memory and
 * LMDB answer synchronously; a networked tier may return promises, so callers that can wait use `await`.
 */
import type { CacheEntry, CacheRecord, EntryMeta } from './entry.js';

export type MaybePromise<T> = T | Promise<T>;

export interface TierStats {
  name: string;
  entries: number;
  bytes: number;
  maxBytes: number;
  evictions: number;
  /** Tier-specific figures (write failures, rejected admissions, policy name...). */
  [extra: string]: string | number;
}

/**
 * Who else sees a tier's contents: this process only (memory), every process on the host (LMDB, shared by
 * workers), or every edgecache node (Redis). A purge applied on behalf of another process or node skips the
 * tiers that one already purged (PurgeOptions.within).
 */
export type TierReach = 'process' | 'host' | 'network';

export interface CacheTier {
  readonly name: string;
  /** True when get/set/delete never return promises (memory, LMDB). */
  readonly synchronous: boolean;
  /** Who shares the tier's contents; 'host' when absent (the store's memory tier is always 'process'). */
  readonly reach?: TierReach;
  get(key: string): MaybePromise<CacheRecord | undefined>;
  /** Stores a record; returns false when the tier declined it (too large, not admitted, write failed). */
  set(key: string, record: CacheRecord): MaybePromise<boolean>;
  /**
   * Stores an entry whose body is already stored with `stored` (the metadata this tier returned for the key, or
   * was given with it): a soft purge or a 304 refresh changes lifetimes and headers, never the body. A tier that
   * keeps bodies apart from metadata (LMDB, Redis) then rewrites only the metadata when the key still holds that
   * body, and writes the whole entry otherwise. Tiers without it get set().
   */
  updateMeta?(key: string, entry: CacheEntry, stored: EntryMeta): MaybePromise<boolean>;
  delete(key: string): MaybePromise<void>;
  /** Keys starting with `prefix` (for prefix purges). */
  keys(prefix: string): MaybePromise<string[]>;
  /** Keys of the entries tagged with `tag` (Surrogate-Key / Cache-Tag). */
  keysForTag(tag: string): MaybePromise<string[]>;
  clear(): MaybePromise<void>;
  stats(): TierStats;
  /** Why the tier cannot do its job now (closed, its disk full...), for /readyz; undefined when it can. */
  unready?(): string | undefined;
  close(): MaybePromise<void>;
  /** Resolves once every write accepted so far has committed: visible to every reader, other processes included. */
  flushed?(): Promise<void>;
  /** Whether this process has a write of `key` queued and not yet committed (tiers that write asynchronously). */
  hasPendingWrite?(key: string): boolean;
  /**
   * Makes the next reads see every commit made so far, by other processes too (a tier that reads through a
   * snapshot kept for a moment, as LMDB's read transactions are).
   */
  readLatest?(): void;
  /** Whether `key` holds an entry (not a Vary record), without decoding it. */
  hasEntry?(key: string): boolean;
  /**
   * Deletes many keys as one unit of work (one transaction for a disk tier); they are gone for this process's
   * reads at once, and the promise resolves when the deletion has committed.
   */
  deleteMany?(keys: string[]): Promise<void>;
}

/** A tier whose operations are synchronous. */
export interface SyncCacheTier extends CacheTier {
  readonly synchronous: true;
  get(key: string): CacheRecord | undefined;
  set(key: string, record: CacheRecord): boolean;
  delete(key: string): void;
  keys(prefix: string): string[];
  keysForTag(tag: string): string[];
  clear(): void;
}
