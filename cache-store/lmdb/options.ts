/** Options and statistics of the LMDB disk tier, and their defaults. */
import type { TierLogger } from '../log-throttle.js';
import type { TierStats } from '../tier.js';

export interface LmdbTierOptions {
  /** Directory of the LMDB environment; created if missing. */
  path: string;
  /**
   * Disk budget in bytes: the most the data file (data.mdb) holds. The records' bytes (recordSize) stay under
   * it, and so do the pages LMDB uses for them, less a reserve for pages freed but not yet reusable.
   */
  maxBytes: number;
  /** Clock for expiry and access times (epoch ms). */
  now: () => number;
  log: TierLogger;
  /** Initial LMDB map size; lmdb-js grows the map as needed, so this is not a limit (maxBytes is). */
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
   * Most bytes of writes in one LMDB transaction (default maxBytes / 8, between 512 KiB and 32 MiB, and at most
   * an eighth of the budget in pages; a larger record goes alone). Pages freed by a transaction are reused only
   * by later ones, so two of these are kept free out of the budget (see space.ts).
   */
  maxBatchBytes?: number;
}

export interface LmdbTierStats extends TierStats {
  /** Writes that failed to commit (I/O error, disk full) or whose transaction threw or found no room in the file. */
  writeFailures: number;
  /**
   * Writes declined: larger than the budget, already expired, queue full, no room after bounded eviction, or
   * while writes are paused because the disk or the map is full.
   */
  writesDeclined: number;
  /** Times writing stopped because the filesystem was full (a reservation or a commit failed for lack of space). */
  diskFull: number;
  /** Times writing stopped because the data file was at maxBytes with no free page for the write (map full). */
  mapFull: number;
  /** 1 while writes are paused (backing off after diskFull or mapFull), else 0. */
  writesPaused: number;
  /** Records found unreadable (bad bytes, missing chunk, wrong format): deleted and counted. */
  corruptRecords: number;
  /** Entries removed because they were past deletableAt (sweeps and reads). */
  expired: number;
  /** Reads that failed inside LMDB (answered as misses). */
  readFailures: number;
  pendingWrites: number;
  pendingBytes: number;
  /** Bytes of the pages LMDB uses for the tier's trees (branch, leaf and overflow pages): what the budget holds. */
  usedBytes: number;
  /** Size of the data file on disk (LMDB's pages, free ones included, and the space reserved ahead of them). */
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

/** First pause of writes after the disk or the map is found full; doubled on each failure in a row. */
export const MIN_PAUSE_MS = 1_000;
/** Longest pause of writes while the disk stays full. */
export const MAX_PAUSE_MS = 30_000;

/** Default maxBatchBytes: an eighth of the budget, between 512 KiB and 32 MiB. */
export function defaultMaxBatchBytes(maxBytes: number): number {
  return Math.min(32 * MiB, Math.max(MiB / 2, Math.floor(maxBytes / 8)));
}
