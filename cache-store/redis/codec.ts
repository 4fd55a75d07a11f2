/**
 * The Redis tier's format: which Redis keys a cache entry occupies and how a record is encoded in them. It
 * reuses the disk tier's meta envelope (record-codec.ts: magic, version, kind, CRC-32, JSON with the EntryMeta,
 * a small body inline) behind a 4-byte Redis header of its own, so a change of either
 * format is a version mismatch, never a misreading.
 *
 * Keys, all under the configured prefix:
 * - `<prefix>{<cache key>}m`: the meta value (Redis header + envelope), with the body inline up to INLINE_LIMIT;
 * - `<prefix>{<cache key>}b`: a larger body, raw bytes behind a 12-byte header naming the body id the meta
 *   value expects (written in the same MULTI, read in the same MGET);
 * - `<prefix>{<cache key>}l`: the fill lease (proxy/cluster/redis-leases.ts);
 * - `<prefix>t:<tag>`: a set of the cache keys carrying a surrogate key;
 * - `<prefix>purge-stream`, `<prefix>epoch` (on a cluster `<prefix>{purge}stream`, `<prefix>{purge}epoch`): the purge
 *   stream and the data set's epoch (proxy/purge/broadcast.ts).
 *
 * The cache key sits between braces, a Redis Cluster hash tag: the three keys of one entry hash to one slot (the
 * part before the first `}` is the same in all three, whatever the prefix or the key contain), so the MULTI that
 * writes an entry, the MGET that reads it and the Lua scripts on its lease each touch one slot. A single server
 * uses the same layout. Keys of several entries, tag sets, the stream and the epoch are in any slot.
 */
import { randomInt } from 'node:crypto';
import { BODY_ID_AT, CorruptRecordError, decodeRecord, finishRecord, prepareRecord, type DecodedRecord } from '../record-codec.js';
import type { CacheEntry, VaryRecord } from '../entry.js';

/**
 * Version of the Redis layout. Bump it when the keys, the headers, or the disk envelope it embeds change
 * (record-codec's FORMAT_VERSION): a node that finds another version treats the value as corrupt and deletes it.
 */
export const REDIS_FORMAT_VERSION = 3;

/** Largest value Redis accepts (proto-max-bulk-len's default): no body can need more than one body key. */
const REDIS_MAX_VALUE = 512 * 1024 * 1024;

const META_MAGIC_0 = 0x52; // 'R'
const META_MAGIC_1 = 0x4d; // 'M'
const BODY_MAGIC_0 = 0x52; // 'R'
const BODY_MAGIC_1 = 0x42; // 'B'
const META_HEADER = 4; // magic(2) version(1) reserved(1)
const BODY_HEADER = 12; // magic(2) version(1) reserved(1) bodyId(8)

export function metaKey(prefix: string, key: string): string {
  return `${prefix}{${key}}m`;
}

export function bodyKey(prefix: string, key: string): string {
  return `${prefix}{${key}}b`;
}

/** The SCAN MATCH pattern of the meta keys of cache keys starting with `keyPrefix`. */
export function metaKeyPattern(prefix: string, keyPrefix: string): string {
  return globPrefix(`${prefix}{${keyPrefix}`);
}

/** The cache key of a meta key's name (from a SCAN), or undefined for any other key under the prefix. */
export function keyOfMetaKey(prefix: string, name: string): string | undefined {
  if (!name.startsWith(`${prefix}{`) || !name.endsWith('}m')) return undefined;
  return name.slice(prefix.length + 1, -2);
}

export function tagKey(prefix: string, tag: string): string {
  return `${prefix}t:${tag}`;
}

/** A node's lease on fetching `key` (see proxy/cluster/redis-leases.ts). */
export function leaseKey(prefix: string, key: string): string {
  return `${prefix}{${key}}l`;
}

/** The pub/sub channel on which a lease holder tells the waiters its fill is in Redis, or will not be. */
export function fillChannel(prefix: string): string {
  return `${prefix}fills`;
}

/**
 * The Redis Stream that carries purges and invalidations to every node (see proxy/purge/broadcast.ts). On a Redis
 * Cluster it shares a slot with the epoch key (hash tag `{purge}`): a primary that loses its data loses both, and
 * the new epoch tells every node so, as on one server. (One server keeps the names it always had, so that nodes of
 * both formats exchange purges during a rolling deploy.)
 */
export function purgeStreamKey(prefix: string, cluster = false): string {
  return cluster ? `${prefix}{purge}stream` : `${prefix}purge-stream`;
}

/**
 * A random value that names the current life of the Redis data set: a Redis that lost its data (a restart without
 * persistence, a failover to a replica that had not caught up) has none, and the first node to see that makes a
 * new one; a node whose remembered epoch differs drops its local tiers (see proxy/purge/broadcast.ts).
 */
export function epochKey(prefix: string, cluster = false): string {
  return cluster ? `${prefix}{purge}epoch` : `${prefix}epoch`;
}

/** A SCAN MATCH pattern for keys starting with `text`: glob characters in it are escaped. */
export function globPrefix(text: string): string {
  return `${text.replace(/[*?[\]\\]/g, '\\$&')}*`;
}

/** The values to write for one record: the meta value, and a body value when the body is not inline. */
export interface EncodedRecord {
  meta: Buffer;
  body: Buffer | undefined;
  bodyId: number;
}

/**
 * Encodes a record. `size` is its recordSize (kept in the envelope as the disk tier does). Bodies up to the
 * envelope's inline limit go inside the meta value; larger ones get a body value of their own.
 */
export function encodeRecord(key: string, record: CacheEntry | VaryRecord, size: number, bodyId = newBodyId()): EncodedRecord {
  const { meta, separateBody } = encodeMeta(key, record, size, bodyId);
  if (record.kind !== 'entry' || !separateBody) return { meta, body: undefined, bodyId };
  return { meta, body: encodeBody(bodyParts(record), record.body.length, bodyId), bodyId };
}

/**
 * The meta value alone (with an inline body), naming body id `bodyId`; `separateBody` says whether the body goes
 * in a body value of its own. For rewriting an entry's metadata while its body value stays as it is.
 */
export function encodeMeta(key: string, record: CacheEntry | VaryRecord, size: number, bodyId: number): { meta: Buffer; separateBody: boolean } {
  // One "chunk" as large as Redis allows: a body is either inline or the whole of one body value.
  const prepared = prepareRecord(key, record, size, REDIS_MAX_VALUE);
  const inline = record.kind === 'entry' && prepared.inlineBytes > 0 ? bodyParts(record) : undefined;
  const envelope = finishRecord(prepared, bodyId, inline);
  const meta = Buffer.allocUnsafe(META_HEADER + envelope.length);
  meta[0] = META_MAGIC_0;
  meta[1] = META_MAGIC_1;
  meta[2] = REDIS_FORMAT_VERSION;
  meta[3] = 0;
  envelope.copy(meta, META_HEADER);
  return { meta, separateBody: prepared.chunkCount > 0 };
}

/** Where a meta value names its body id (the envelope's, after the Redis header), and the id's 8 bytes. */
export const META_BODY_ID_AT = META_HEADER + BODY_ID_AT;

export function bodyIdBytes(bodyId: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(bodyId);
  return bytes;
}

function encodeBody(parts: Iterable<Buffer>, length: number, bodyId: number): Buffer {
  const out = Buffer.allocUnsafe(BODY_HEADER + length);
  out[0] = BODY_MAGIC_0;
  out[1] = BODY_MAGIC_1;
  out[2] = REDIS_FORMAT_VERSION;
  out[3] = 0;
  out.writeDoubleLE(bodyId, 4);
  let at = BODY_HEADER;
  for (const part of parts) at += part.copy(out, at);
  if (at !== out.length) throw new Error(`body yielded ${at - BODY_HEADER} bytes, expected ${length}`);
  return out;
}

function bodyParts(entry: CacheEntry): Buffer[] {
  const { body } = entry;
  return Buffer.isBuffer(body) ? [body] : [...body.chunks(0, body.length)];
}

/** Decodes a meta value (Redis header, then the disk envelope); throws CorruptRecordError. */
export function decodeMeta(value: Buffer): DecodedRecord {
  if (value.length < META_HEADER || value[0] !== META_MAGIC_0 || value[1] !== META_MAGIC_1) throw new CorruptRecordError('bad Redis magic');
  if (value[2] !== REDIS_FORMAT_VERSION) throw new CorruptRecordError(`Redis format version ${value[2]}, expected ${REDIS_FORMAT_VERSION}`);
  return decodeRecord(value.subarray(META_HEADER));
}

/** Where the envelope starts inside a meta value (an inline body's offset is relative to it). */
export const META_ENVELOPE_AT = META_HEADER;

/** The bytes of a body value, checked against what the meta value expects; throws CorruptRecordError. */
export function decodeBody(value: Buffer, bodyId: number, length: number): Buffer {
  if (value.length < BODY_HEADER || value[0] !== BODY_MAGIC_0 || value[1] !== BODY_MAGIC_1) throw new CorruptRecordError('bad body magic');
  if (value[2] !== REDIS_FORMAT_VERSION) throw new CorruptRecordError(`body format version ${value[2]}`);
  if (value.readDoubleLE(4) !== bodyId) throw new CorruptRecordError('body id does not match the meta value');
  if (value.length - BODY_HEADER !== length) throw new CorruptRecordError('body length does not match the meta value');
  return value.subarray(BODY_HEADER);
}

/** A random body id (a safe integer, as the envelope requires): every write gets its own. */
function newBodyId(): number {
  return randomInt(1, 2 ** 48 - 1);
}
