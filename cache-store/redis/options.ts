/** Options and statistics of the Redis tier, and their defaults. */
import type { TierLogger } from '../log-throttle.js';
import type { TierStats } from '../tier.js';

export interface RedisTierOptions {
  /** redis:// or rediss:// URL (user, password and database number included, as Redis URLs allow). */
  url: string;
  /** `url` is a seed node of a Redis Cluster (--redis-cluster). */
  cluster?: boolean;
  /** Prefix of every key and channel, so that several caches can share one Redis. */
  prefix: string;
  /** Clock (epoch ms): expiry is written relative to it (PX), so Redis's own clock need not agree. */
  now: () => number;
  log: TierLogger;
  /** Bodies larger than this are not written to Redis. */
  maxBodyBytes: number;
  /** Longest a read may take before it counts as a failure and the request goes on without Redis (ms). */
  timeoutMs: number;
  /** Bytes of writes queued and not yet acknowledged above which `set` declines (counted in writesDeclined). */
  maxPendingBytes: number;
  /** Most Vary variants kept per URL when merging a Vary record with the one already in Redis. */
  maxVariants: number;
  /** Expiry of entries that edgecache keeps indefinitely (revalidatable: deletableAt = Infinity), in ms. */
  maxTtlMs?: number;
  /** Write commands in flight at once (default 16). */
  concurrency?: number;
}

export interface RedisTierStats extends TierStats {
  /** 1 while the command connection is up, else 0. */
  connected: number;
  /** Lookups sent to Redis, and how many found an entry or a Vary record. */
  reads: number;
  hits: number;
  /** Records written (acknowledged by Redis). */
  writes: number;
  /** Writes declined: body over the limit, already expired, queue full, or Redis unavailable. */
  writesDeclined: number;
  /** Commands that failed or timed out. */
  errors: number;
  /** Lookups answered as misses without asking Redis because it was down or backing off. */
  skipped: number;
  /** Values that did not decode (bad bytes, another format version, a body not matching its meta): deleted. */
  corruptRecords: number;
  pendingWrites: number;
  pendingBytes: number;
}

export const DEFAULT_MAX_TTL_MS = 7 * 24 * 3_600_000;
export const DEFAULT_CONCURRENCY = 16;
/** Write commands may take this many times the read timeout (they are off the response path, and larger). */
export const WRITE_TIMEOUT_FACTOR = 10;
/** After a failed command, lookups skip Redis for this long (the connection is retried in the background). */
export const BACKOFF_MS = 1_000;
/** Keys whose delete could not be sent, kept to retry when Redis is back (beyond it: counted and dropped). */
export const MAX_TOMBSTONES = 10_000;
/** A key written this recently may have landed after another node's purge of it (see hasPendingWrite). */
export const RECENT_WRITE_MS = 2_000;
export const MAX_RECENT_WRITES = 10_000;
/** Keys unlinked per command by deleteMany and clear. */
export const DELETE_BATCH = 500;
/** COUNT hint of each SCAN call. */
export const SCAN_COUNT = 1_000;
/** How often the server figures in stats() (INFO, DBSIZE) are refreshed. */
export const INFO_INTERVAL_MS = 10_000;
