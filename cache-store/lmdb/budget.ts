/**
 * The disk tier's byte budget: accounting in `info`, removal of one entry with all its chunks and index rows,
 * eviction (expired entries first, then least recently used) and the expiry sweep. Everything that writes runs
 * inside a write transaction the caller opened, so several processes sharing the environment stay consistent.
 */
import { decodeRecord } from '../record-codec.js';
import { INFO, isHashedKey, isHousekeeping, storageKey, type Housekeeping } from './layout.js';
import type { LmdbDbs } from './env.js';

export function readCount(dbs: LmdbDbs, key: string): number {
  const v = dbs.info.get(key);
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

export function addCount(dbs: LmdbDbs, key: string, delta: number): void {
  dbs.info.putSync(key, Math.max(0, readCount(dbs, key) + delta));
}

/** The housekeeping record of a key; null when it exists but cannot be read. */
export function readHousekeeping(dbs: LmdbDbs, storage: string): Housekeeping | null | undefined {
  let hk: unknown;
  try {
    hk = dbs.atime.get(storage);
  } catch {
    return null;
  }
  if (hk === undefined) return undefined;
  return isHousekeeping(hk) ? hk : null;
}

/**
 * Removes one stored key: meta, body chunks, housekeeping, index rows and its share of the accounting.
 * Returns the bytes it was charged (0 when nothing was stored). Inside a write transaction.
 */
export function removeEntry(dbs: LmdbDbs, storage: string, known?: Housekeeping): number {
  const hk = known ?? readHousekeeping(dbs, storage);
  let freed = 0;
  if (hk) {
    removeChunks(dbs, hk.b, hk.c);
    dbs.lru.removeSync([hk.a, storage]);
    if (hk.d !== null) dbs.expiry.removeSync([hk.d, storage]);
    for (const tag of hk.t) dbs.tags.removeSync(tag, storage);
    addCount(dbs, INFO.bytes, -hk.s);
    addCount(dbs, INFO.entries, -1);
    freed = hk.s;
  } else {
    // No usable housekeeping (should not happen): salvage what the meta record says, if anything.
    const raw = dbs.meta.getBinary(storage);
    if (raw !== undefined) {
      try {
        const decoded = decodeRecord(raw);
        if (decoded.kind === 'entry') removeChunks(dbs, decoded.body.bodyId, decoded.body.chunkCount);
        addCount(dbs, INFO.bytes, -decoded.size);
        freed = decoded.size;
      } catch {
        // Neither record is readable: its chunks (if any) stay orphaned, its bytes stay counted.
      }
      addCount(dbs, INFO.entries, -1);
    }
  }
  dbs.meta.removeSync(storage);
  dbs.atime.removeSync(storage);
  if (isHashedKey(storage)) dbs.longKeys.removeSync(storage);
  return freed;
}

function removeChunks(dbs: LmdbDbs, bodyId: number, chunkCount: number): void {
  for (let i = 0; i < chunkCount; i++) dbs.bodies.removeSync([bodyId, i]);
}

export interface EvictOptions {
  /** Evict until the accounted bytes are at most this. */
  target: number;
  /**
   * And until the pages LMDB uses are at most `target` (see space.ts): `used()` measures them inside the
   * transaction; `perByte` estimates an entry's pages from its charged size, to plan a round of evictions
   * between two measurements.
   */
  pages?: { target: number; used: () => number; perByte: number };
  now: number;
  /** Never evict this storage key (the one being written; it is replaced anyway). */
  exclude: string;
  /** Never evict the entry whose body is being copied (an overwrite that reuses the stored body). */
  protectBodyId: number;
  /** Most entries removed by one call: bounds the transaction. */
  maxEntries: number;
}

/** Rounds of plan-remove-measure per index: the page estimate of a round is corrected by measuring after it. */
const EVICT_ROUNDS = 8;

/**
 * Makes room inside a write transaction: entries past deletableAt first (soonest first), then least recently
 * used, until both the bytes and (with `pages`) the pages are under their targets. Removes index rows that
 * point at nothing on the way. Returns how many entries were evicted.
 */
export function evict(dbs: LmdbDbs, options: EvictOptions): number {
  const { pages } = options;
  let bytes = readCount(dbs, INFO.bytes);
  let used = pages ? pages.used() : 0;
  const over = (b: number, p: number): boolean => b > options.target || (pages !== undefined && p > pages.target);
  let evicted = 0;
  for (const index of [dbs.expiry, dbs.lru]) {
    const isExpiry = index === dbs.expiry;
    for (let round = 0; round < EVICT_ROUNDS && over(bytes, used) && evicted < options.maxEntries; round++) {
      const victims: Array<{ storage: string; hk: Housekeeping | null; row: [number, string] }> = [];
      const orphans: Array<[number, string]> = [];
      let plannedBytes = bytes;
      let plannedPages = used;
      const range = index.getKeys({ ...(isExpiry ? { end: [options.now] } : {}), limit: (options.maxEntries - evicted) * 2 });
      for (const row of range) {
        if (!over(plannedBytes, plannedPages) || victims.length + evicted >= options.maxEntries) break;
        const [time, storage] = row;
        if (storage === options.exclude) continue;
        const hk = readHousekeeping(dbs, storage);
        if (hk === null) {
          // Unreadable housekeeping: remove the entry (removeEntry salvages what it can).
          victims.push({ storage, hk, row });
          continue;
        }
        if (hk === undefined || (isExpiry ? hk.d !== time : hk.a !== time)) {
          orphans.push(row);
          continue;
        }
        if (hk.b === options.protectBodyId && hk.c > 0) continue;
        victims.push({ storage, hk, row });
        plannedBytes -= hk.s;
        if (pages) plannedPages -= hk.s * pages.perByte;
      }
      for (const row of orphans) index.removeSync(row);
      for (const { storage, hk, row } of victims) {
        bytes -= removeEntry(dbs, storage, hk ?? undefined);
        if (hk === null) index.removeSync(row);
        evicted++;
      }
      if (pages) used = pages.used();
      if (victims.length === 0) break;
    }
    if (!over(bytes, used) || evicted >= options.maxEntries) break;
  }
  return evicted;
}

/** Expired rows of the expiry index, read without holding a snapshot (outside any transaction). */
export function expiredRows(dbs: LmdbDbs, now: number, limit: number): Array<[number, string]> {
  return [...dbs.expiry.getKeys({ end: [now], limit, snapshot: false })];
}

/** Removes the expired entries among `rows` (re-checked inside the transaction). Returns [removed, touched]. */
export function sweepRows(dbs: LmdbDbs, rows: Array<[number, string]>, now: number): [number, number] {
  let removed = 0;
  let touched = 0;
  for (const row of rows) {
    const [time, storage] = row;
    const hk = readHousekeeping(dbs, storage);
    if (hk === undefined || (hk !== null && hk.d !== time)) {
      // A row left behind by a replaced or removed entry.
      if (dbs.expiry.removeSync(row)) touched++;
      continue;
    }
    if (hk === null) {
      removeEntry(dbs, storage);
      dbs.expiry.removeSync(row);
    } else if (hk.d === null || hk.d >= now) {
      continue;
    } else {
      removeEntry(dbs, storage, hk);
    }
    removed++;
    touched++;
  }
  return [removed, touched];
}

/** Records batched access times in the LRU index (inside a write transaction). */
export function applyAccessTimes(dbs: LmdbDbs, accessed: Iterable<[string, number]>): void {
  for (const [storage, time] of accessed) {
    const hk = readHousekeeping(dbs, storage);
    if (!hk || time <= hk.a) continue;
    dbs.lru.removeSync([hk.a, storage]);
    dbs.lru.putSync([time, storage], EMPTY);
    dbs.atime.putSync(storage, { ...hk, a: time });
  }
}

export const EMPTY = Buffer.alloc(0);

/** Stored keys starting with `prefix`: a walk of `meta` from the prefix, plus the hashed keys' full keys. */
export function* storedKeys(dbs: LmdbDbs, prefix: string): Generator<string> {
  for (const key of dbs.meta.getKeys({ ...(prefix ? { start: prefix } : {}), snapshot: false })) {
    if (typeof key !== 'string' || isHashedKey(key)) continue;
    if (!key.startsWith(prefix)) break;
    yield key;
  }
  for (const { value } of dbs.longKeys.getRange({ snapshot: false })) if (value.startsWith(prefix)) yield value;
}

/** Stored keys of the entries carrying `tag`. */
export function* storedKeysForTag(dbs: LmdbDbs, tag: string): Generator<string> {
  for (const storage of dbs.tags.getValues(storageKey(tag))) {
    const key = isHashedKey(storage) ? dbs.longKeys.get(storage) : storage;
    if (key !== undefined && dbs.meta.doesExist(storage)) yield key;
  }
}
