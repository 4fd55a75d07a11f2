/**
 * Assembles the cache from the configuration: the memory tier (with its eviction policy), the LMDB disk tier
 * in --data-dir unless --disk-max is 0, the shared Redis tier below them with --redis, and how they are
 * written (through or spill; Redis is always written through).
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { CacheStore } from './cache-store.js';
import type { CacheRecord } from './entry.js';
import { packed } from './forms.js';
import { LmdbTier } from './lmdb/lmdb-tier.js';
import { MemoryTier } from './memory/memory-tier.js';
import { RedisTier } from './redis/redis-tier.js';
import type { CacheTier } from './tier.js';
import type { EdgecacheConfig } from '../config/settings.js';

/**
 * The disk tier could not be opened in --data-dir (a file where the directory should be, no permission...):
 * something the operator must fix, which the command reports in one line (see proxy/startup.ts).
 */
export class DataDirError extends Error {
  override name = 'DataDirError';

  constructor(readonly dataDir: string, cause: unknown) {
    super(`cannot use --data-dir ${dataDir}`, { cause });
  }
}

export interface StoreDependencies {
  config: EdgecacheConfig;
  log: Logger;
  now: () => number;
  /** Whether this process runs the disk tier's periodic expiry sweep (one process per data directory). */
  sweeper: boolean;
}

/** The smallest memory-tier object limit: bodies up to it are always eligible for memory. */
const MEMORY_OBJECT_FLOOR = 1024 * 1024;

export function buildStore({ config, log, now, sweeper }: StoreDependencies): CacheStore {
  let disk: LmdbTier | undefined;
  const spill = (key: string, record: CacheRecord): void => {
    // The disk tier stores one body: compressed forms go packed after it (forms.ts).
    disk?.set(key, packed(record));
  };
  const memory = new MemoryTier({
    maxBytes: config.memoryMax,
    policy: config.eviction,
    now,
    ...(config.diskWrite === 'spill' && { onEvict: spill }),
  });
  if (config.diskMax > 0) {
    try {
      disk = new LmdbTier({
        path: path.resolve(config.dataDir, 'lmdb'),
        maxBytes: config.diskMax,
        now,
        log: log.child({ component: 'disk' }),
        sweeper,
      });
    } catch (err) {
      throw new DataDirError(config.dataDir, err);
    }
  }
  const lower: CacheTier[] = disk ? [disk] : [];
  if (config.redis) {
    lower.push(
      new RedisTier({
        url: config.redis,
        cluster: config.redisCluster,
        prefix: config.redisPrefix,
        now,
        log: log.child({ component: 'redis' }),
        maxBodyBytes: config.redisMaxObjectSize,
        timeoutMs: config.redisTimeout,
        maxPendingBytes: config.redisMaxPending,
        maxVariants: config.maxVariants,
      }),
    );
  }
  return new CacheStore({ memory, lower, maxVariants: config.maxVariants, writeMode: config.diskWrite, memoryObjectLimit: memoryObjectLimit(config) });
}

/**
 * Largest body the memory tier holds. With a disk tier: an eighth of --memory-max (at least 1 MiB), so that one
 * object cannot take the whole tier; larger ones (up to --max-object-size) are written to disk as they stream.
 * Without one, --max-object-size (which may then not exceed --memory-max).
 */
function memoryObjectLimit(config: Pick<EdgecacheConfig, 'diskMax' | 'memoryMax' | 'maxObjectSize'>): number {
  if (config.diskMax === 0) return config.maxObjectSize;
  return Math.min(config.maxObjectSize, Math.max(MEMORY_OBJECT_FLOOR, Math.floor(config.memoryMax / 8)));
}
