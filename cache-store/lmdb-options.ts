/** Options and statistics of the LMDB disk tier, and their defaults. */
import type CachePolicy from 'http-cache-semantics';
import type { TierLogger } from './lmdb-env.js';
import type { TierStats } from './tier.js';

export interface LmdbTierOptions {
  /** Directory of the LMDB environment; created if missing. */
  path: string;
  /** Disk budget in bytes (recordSize of every stored record). */
  maxBytes: number;
  /** Rebuilds a CachePolicy from `policy.toObject()` (Freshness.restorePolicy). */
  restorePolicy: (object: CachePolicy.CachePolicyObject) => CachePolicy;
  /** Clock for expiry and access times (epoch ms). */
  now: () => number;
  log: TierLogger;
  /** Initial LMDB map size; lmdb-js grows the map as needed, so this is not a limit. */
  mapSize?: number;
  /** Body chunk size in bytes (default 256 KiB). */
  chunkSize?: number;
  /** Period of the expiry sweep in ms (default 30 s; 0: no timer, call sweep()). */
  sweepIntervalMs?: number;
  /** Whether this process runs the periodic sweep (default true; in a cluster, one process should). */
  sweeper?: boolean;
  /** Period of the access-time flush in ms (default 5 s; 0: only on close() / flushAccessTimes()). */
  atimeFlushMs?: number;
  /** Queued-but-uncommitted bytes above which `set` declines (default 64 MiB). */
  maxPendingBytes?: number;
  /**
   * Most bytes of writes in one LMDB transaction (default maxBytes / 8, between 1 and 32 MiB; a larger
   * record goes alone). Pages freed by a transaction are reused only by later ones, so this bounds how far the
   * data file grows beyond maxBytes.
   */
  maxBatchBytes?: number;
}

export interface LmdbTierStats extends TierStats {
  /** Writes that failed to commit (I/O error, disk full) or whose transaction threw. */
  writeFailures: number;
  /** Writes declined: larger than the budget, already expired, queue full, or no room after bounded eviction. */
  writesDeclined: number;
  /** Records found unreadable (bad bytes, missing chunk, wrong format): deleted and counted. */
  corruptRecords: number;
  /** Entries removed because they were past deletableAt (sweeps and reads). */
  expired: number;
  /** Reads that failed inside LMDB (answered as misses). */
  readFailures: number;
  pendingWrites: number;
  pendingBytes: number;
  /** Size of the used part of the data file (high-water mark, pages * page size). */
  fileBytes: number;
}

export const MiB = 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 256 * 1024;
export const DEFAULT_SWEEP_INTERVAL_MS = 30_000;
export const DEFAULT_ATIME_FLUSH_MS = 5_000;
export const DEFAULT_MAX_PENDING_BYTES = 64 * MiB;
/** Entries removed per sweep transaction (its callback runs on the main thread: ~20 µs per entry). */
export const SWEEP_BATCH = 200;
/** Delay before retrying deletes whose commit failed. */
export const TOMBSTONE_RETRY_MS = 1_000;
/** Longest close() waits for lmdb-js to close the environment. */
export const CLOSE_TIMEOUT_MS = 10_000;
/** Pending access times that trigger an early flush. */
export const ATIME_MAX_PENDING = 10_000;
/** Access times written per transaction (its callback runs on the main thread: ~10 µs each). */
export const ATIME_BATCH = 256;

/** Default maxBatchBytes: an eighth of the budget, between 1 and 32 MiB. */
export function defaultMaxBatchBytes(maxBytes: number): number {
  return Math.min(32 * MiB, Math.max(MiB, Math.floor(maxBytes / 8)));
}
