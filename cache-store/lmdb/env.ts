/**
 * Opening the disk tier's LMDB environment: the named databases, the format-version check, and recovery from
 * an environment that cannot be opened (it is renamed aside as `<path>.broken-<timestamp>` and a new, empty
 * one is created in its place).
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { FORMAT_VERSION } from '../record-codec.js';
import { DB, INFO, type Housekeeping } from './layout.js';
import type { TierLogger } from '../log-throttle.js';

/** The environment and its named databases (see docs/disk-tier.md for the layout). */
export interface LmdbDbs {
  env: RootDatabase;
  /** storage key → encoded record (binary envelope, see record-codec.ts). */
  meta: Database<Buffer, string>;
  /** [bodyId, chunkIndex] → raw body bytes. */
  bodies: Database<Buffer, [number, number]>;
  /** format, bytes, entries, nextBodyId. */
  info: Database<unknown, string>;
  /** storage key → Housekeeping (last access, size, body id, tags). */
  atime: Database<Housekeeping, string>;
  /** [lastAccess, storage key] → empty: least recently used first. */
  lru: Database<Buffer, [number, string]>;
  /** [deletableAt, storage key] → empty: entries that become useless, soonest first. */
  expiry: Database<Buffer, [number, string]>;
  /** tag storage key → storage keys (dupSort). */
  tags: Database<string, string>;
  /** hashed storage key → full cache key, so prefix walks find keys too long to store directly. */
  longKeys: Database<string, string>;
}

export interface OpenOptions {
  path: string;
  mapSize?: number;
  log: TierLogger;
}

// Errors about the machine, not the environment: renaming the directory aside would not help. (ENOTDIR: a file
// where a parent directory should be, e.g. --data-dir naming a file; not ours to move.)
const ENVIRONMENTAL = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EBUSY', 'ENOTDIR']);

/** Opens (or creates) the environment; renames a broken one aside once and starts empty. */
export function openEnvironment(options: OpenOptions): LmdbDbs {
  const { path, log } = options;
  try {
    mkdirSync(path, { recursive: true });
    const problem = checkDataFile(path);
    if (problem !== null) throw Object.assign(new Error(problem), { code: 'EDGECACHE_BROKEN_ENV' });
    return openAndCheck(options);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && ENVIRONMENTAL.has(code)) throw err;
    const aside = `${path}.broken-${Date.now()}`;
    log.error({ err, path, movedTo: aside }, 'disk tier: cannot open the LMDB environment; moving it aside and starting empty');
    renameSync(path, aside);
    mkdirSync(path, { recursive: true });
    return openAndCheck(options);
  }
}

function openAndCheck(options: OpenOptions): LmdbDbs {
  const env = open({
    path: options.path,
    maxDbs: 16,
    // Initial size only: lmdb-js grows the map as the data file grows.
    ...(options.mapSize !== undefined ? { mapSize: options.mapSize } : {}),
    // Every write is an explicit child transaction; event-turn batching would add an internal commit promise
    // that nobody can catch, and a failed commit would then be an unhandled rejection.
    eventTurnBatching: false,
  });
  try {
    const dbs: LmdbDbs = {
      env,
      meta: env.openDB<Buffer, string>(DB.meta, { encoding: 'binary' }),
      bodies: env.openDB<Buffer, [number, number]>(DB.bodies, { encoding: 'binary' }),
      info: env.openDB<unknown, string>(DB.info, {}),
      atime: env.openDB<Housekeeping, string>(DB.atime, {}),
      lru: env.openDB<Buffer, [number, string]>(DB.lru, { encoding: 'binary' }),
      expiry: env.openDB<Buffer, [number, string]>(DB.expiry, { encoding: 'binary' }),
      tags: env.openDB<string, string>(DB.tags, { dupSort: true, encoding: 'ordered-binary' }),
      longKeys: env.openDB<string, string>(DB.longKeys, { encoding: 'string' }),
    };
    checkFormat(dbs, options.log);
    return dbs;
  } catch (err) {
    void env.close().catch(() => undefined);
    throw err;
  }
}

/** Clears the environment when its format version is not this code's. */
function checkFormat(dbs: LmdbDbs, log: TierLogger): void {
  dbs.env.transactionSync(() => {
    const found = dbs.info.get(INFO.format);
    if (found === FORMAT_VERSION) return;
    const hasData = dbs.meta.getKeysCount({ limit: 1 }) > 0 || dbs.bodies.getKeysCount({ limit: 1 }) > 0;
    if (found !== undefined || hasData) {
      log.warn({ found: found ?? null, expected: FORMAT_VERSION }, 'disk tier: stored format version differs from this version; clearing the disk tier');
    }
    clearAll(dbs);
    void dbs.info.put(INFO.format, FORMAT_VERSION);
  });
}

/** Removes every record and resets the accounting (inside a write transaction). `nextBodyId` is kept. */
export function clearAll(dbs: LmdbDbs): void {
  for (const db of [dbs.meta, dbs.bodies, dbs.atime, dbs.lru, dbs.expiry, dbs.tags, dbs.longKeys]) db.clearSync();
  void dbs.info.put(INFO.bytes, 0);
  void dbs.info.put(INFO.entries, 0);
  const next = dbs.info.get(INFO.nextBodyId);
  if (typeof next !== 'number' || !Number.isSafeInteger(next) || next < 1) void dbs.info.put(INFO.nextBodyId, 1);
}

const MDB_MAGIC = 0xbeefc0de;
const P_META = 0x08;

/**
 * A cheap sanity check of data.mdb before LMDB maps it: lmdb-js crashes the process (SIGSEGV) on some garbage
 * files instead of returning an error. Checks the first meta page's magic number; the page header is 16
 * bytes in upstream LMDB and 24 in lmdb-js's fork, so the magic may sit at either offset. Returns a reason
 * when the file is certainly not an LMDB data file, or null.
 */
function checkDataFile(path: string): string | null {
  const file = join(path, 'data.mdb');
  if (!existsSync(file)) return null;
  const size = statSync(file).size;
  if (size === 0) return null;
  if (size < 8192) return `data.mdb is truncated (${size} bytes)`;
  const head = Buffer.alloc(64);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const magicAt = [16, 24].find((off) => head.readUInt32LE(off) === MDB_MAGIC);
  if (magicAt === undefined) return 'data.mdb has no LMDB meta page (bad magic)';
  if ((head.readUInt16LE(magicAt - 6) & P_META) === 0) return 'data.mdb first page is not a meta page';
  return null;
}
