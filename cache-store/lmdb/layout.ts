/**
 * The LMDB disk tier's layout: its named databases, the keys of its `info` database, how cache keys (and tags)
 * become LMDB keys, and the small per-entry housekeeping record kept in `atime`. The records themselves are in
 * the shared envelope of record-codec.ts.
 */
import { createHash } from 'node:crypto';
import { isCount, isObject, isStringArray } from '../record-codec.js';

/** Named databases of the environment. */
export const DB = {
  meta: 'meta',
  bodies: 'bodies',
  info: 'info',
  atime: 'atime',
  lru: 'lru',
  expiry: 'expiry',
  tags: 'tags',
  longKeys: 'longKeys',
} as const;

/** Keys of the `info` database. */
export const INFO = {
  format: 'format',
  bytes: 'bytes',
  entries: 'entries',
  nextBodyId: 'nextBodyId',
} as const;

/**
 * Keys (and tags) longer than this many UTF-8 bytes are stored under a hash. LMDB's key limit is 1978 bytes;
 * storage keys also appear inside composite keys ([atime, key]) and as dupSort values, so stay well below it.
 */
const MAX_DIRECT_KEY_BYTES = 1000;

/**
 * First character of every hashed storage key. Keys that start with it are always hashed, so a stored key is
 * hashed exactly when it starts with it.
 */
const HASHED_PREFIX = '#';

// Control characters do not round-trip through lmdb-js's ordered-binary key encoding (bytes 0-4 are
// delimiters, and strings of 64+ characters are written unescaped), and a lone surrogate does not survive
// UTF-8 (two keys would collide): keys containing any of them are hashed.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_KEY_CHARS = /[\u0000-\u001f]|\p{Cs}/u;

/** The LMDB key a cache key (or tag) is stored under: itself when short and safe, else a prefixed sha256. */
export function storageKey(key: string): string {
  const direct =
    !key.startsWith(HASHED_PREFIX) &&
    !UNSAFE_KEY_CHARS.test(key) &&
    key.length > 0 &&
    (key.length * 3 <= MAX_DIRECT_KEY_BYTES || Buffer.byteLength(key) <= MAX_DIRECT_KEY_BYTES);
  if (direct) return key;
  return HASHED_PREFIX + createHash('sha256').update(key).digest('hex');
}

export function isHashedKey(storage: string): boolean {
  return storage.startsWith(HASHED_PREFIX);
}

/**
 * Housekeeping for one stored key, in the `atime` database: everything needed to remove the entry and keep
 * the indexes and the byte count right without decoding (or trusting) its meta value.
 */
export interface Housekeeping {
  /** Last access time (epoch ms), batched: also the first element of its `lru` index key. */
  a: number;
  /** Bytes charged against the budget. */
  s: number;
  /** Body id (0 for vary records) and the number of chunks in `bodies` (0 for an inline body). */
  b: number;
  c: number;
  /** deletableAt (epoch ms), or null for Infinity (not in the `expiry` index). */
  d: number | null;
  /** Storage keys of the entry's tags. */
  t: string[];
}

export function isHousekeeping(v: unknown): v is Housekeeping {
  return (
    isObject(v) &&
    typeof v.a === 'number' &&
    isCount(v.s) &&
    isCount(v.b) &&
    isCount(v.c) &&
    (v.d === null || typeof v.d === 'number') &&
    isStringArray(v.t)
  );
}
