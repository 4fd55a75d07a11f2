/**
 * The shared tier: a Redis that several edgecache machines read and fill, below memory and LMDB (see
 * docs/redis-tier.md). It is asynchronous (`synchronous: false`), so only the pipeline's `lookup` reads it,
 * never the hit path. `set` and `delete` queue the work and return at once; the queue is bounded in bytes.
 * Nothing here throws or rejects to the caller: a Redis that is down, slow or restarting turns into misses
 * and declined writes (counted, logged once per burst) while the connections retry in the background.
 *
 * With a Redis Cluster (--redis-cluster) every command touches one slot: an entry's keys share one through their
 * hash tag (codec.ts); tag sets are updated each in a transaction of its own, before the entry's; deletes of many
 * entries are grouped by slot; key walks SCAN every primary.
 */
import calculateSlot from 'cluster-key-slot';
import type { Redis } from 'ioredis';
import { variantKey } from '../../policies/http/cache-key.js';
import { ArrayBody, CONTIGUOUS_LIMIT, exactCopy, type Body } from '../body.js';
import { recordSize, type CacheEntry, type CacheRecord, type EntryMeta, type VaryRecord } from '../entry.js';
import { BurstLog, RateLog, type TierLogger } from '../log-throttle.js';
import {
  bodyIdBytes,
  bodyKey,
  decodeBody,
  decodeMeta,
  encodeMeta,
  encodeRecord,
  globPrefix,
  keyOfMetaKey,
  META_BODY_ID_AT,
  META_ENVELOPE_AT,
  metaKey,
  metaKeyPattern,
  tagKey,
} from './codec.js';
import { closeRedis, connectRedis, errorText, isCluster, primaries, type RedisClient } from './connect.js';
import {
  BACKOFF_MS,
  DEFAULT_CONCURRENCY,
  DEFAULT_MAX_TTL_MS,
  DELETE_BATCH,
  INFO_INTERVAL_MS,
  MAX_RECENT_WRITES,
  MAX_TOMBSTONES,
  RECENT_WRITE_MS,
  SCAN_COUNT,
  WRITE_TIMEOUT_FACTOR,
  type RedisTierOptions,
  type RedisTierStats,
} from './options.js';
import { RedisWriteQueue } from './queue.js';
import { sameFields } from '../vary.js';
import type { CacheTier } from '../tier.js';

export type { RedisTierOptions, RedisTierStats } from './options.js';

/**
 * Rewrites a meta value in place of the one stored when that one names the expected body id, and moves the body
 * value's expiry to the new one (KEYS: meta, body; ARGV: new meta value, the expected body id's 8 bytes, TTL in
 * ms, 1 when the body is in the body key). Returns 1 when done, 0 (nothing written) when the stored meta names
 * another body or none, or its body value is gone. One script, so that no other node's write comes in between.
 */
const REWRITE_META = `
local current = redis.call('GET', KEYS[1])
if not current or string.sub(current, ${META_BODY_ID_AT + 1}, ${META_BODY_ID_AT + 8}) ~= ARGV[2] then return 0 end
if ARGV[4] == '1' and redis.call('PEXPIRE', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
`;

/** Bytes a queued operation is charged beyond its record (keys, command framing). */
const OP_OVERHEAD = 128;

/** Figures of the Redis server, refreshed every INFO_INTERVAL_MS (stats() is synchronous). */
interface ServerFigures {
  keys: number;
  usedMemory: number;
  maxMemory: number;
  evictedKeys: number;
}

export class RedisTier implements CacheTier {
  readonly name = 'redis';
  readonly synchronous = false;
  /** Shared by every edgecache node that uses this Redis (CacheStore purges: see PurgeOptions.within). */
  readonly reach = 'network';
  private readonly reader: RedisClient;
  private readonly writer: RedisClient;
  /** A Redis Cluster: no command may touch keys of two slots. */
  private readonly cluster: boolean;
  private readonly queue: RedisWriteQueue;
  private readonly prefix: string;
  private readonly now: () => number;
  private readonly log: TierLogger;
  private readonly options: RedisTierOptions;
  private readonly maxTtlMs: number;
  /** The body id each entry's metadata was stored (or read) with, for updateMeta (see LmdbTier's). */
  private readonly versions = new WeakMap<EntryMeta, number>();
  /** Keys whose delete could not be sent (Redis away): misses here, deleted when Redis is back. */
  private readonly tombstones = new Set<string>();
  /** Keys this process wrote recently, and when (real time): see hasPendingWrite. */
  private readonly recent = new Map<string, number>();
  /** Until when (real time) lookups and writes skip Redis after a failure. */
  private backoffUntil = 0;
  /**
   * On a cluster, a failure of a command for one slot backs off its primary only (`host:port` → until when): the other
   * primaries' slots are still used while one is down or failing over.
   */
  private readonly nodeBackoff = new Map<string, number>();
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private retryTimer: NodeJS.Timeout | undefined;
  private server: ServerFigures = { keys: 0, usedMemory: 0, maxMemory: 0, evictedKeys: 0 };
  private readonly counts = { reads: 0, hits: 0, writes: 0, writesDeclined: 0, errors: 0, skipped: 0, corruptRecords: 0, deletesDropped: 0 };
  private readonly faults: BurstLog;
  private readonly declines: BurstLog;
  private readonly corruptLog: RateLog;

  constructor(options: RedisTierOptions) {
    this.options = options;
    this.prefix = options.prefix;
    this.now = options.now;
    this.log = options.log;
    this.maxTtlMs = options.maxTtlMs ?? DEFAULT_MAX_TTL_MS;
    this.faults = new BurstLog(
      this.log,
      'error',
      'redis tier: commands are failing; answering misses and declining writes (counted in errors, not each logged)',
      'redis tier: commands succeed again',
    );
    this.declines = new BurstLog(this.log, 'warn', 'redis tier: write queue full; declining writes until it drains', 'redis tier: write queue drained');
    this.corruptLog = new RateLog(this.log, 'redis tier: unreadable value; deleted (counted in corruptRecords)');
    this.cluster = options.cluster === true;
    const connect = { url: options.url, cluster: this.cluster, log: this.log };
    // Two connections: a large write in flight never delays a lookup queued behind it on the same socket.
    this.reader = connectRedis({ ...connect, name: 'edgecache-read', commandTimeoutMs: options.timeoutMs });
    this.writer = connectRedis({ ...connect, name: 'edgecache-write', commandTimeoutMs: Math.max(1_000, options.timeoutMs * WRITE_TIMEOUT_FACTOR) });
    this.writer.on('ready', () => this.retryDeletes());
    this.reader.on('ready', () => void this.refreshServerFigures());
    this.queue = new RedisWriteQueue(options.concurrency ?? DEFAULT_CONCURRENCY);
    this.timer = setInterval(() => void this.refreshServerFigures(), INFO_INTERVAL_MS).unref();
  }

  /**
   * Whether commands are sent now: the connection is up and no recent command failed (on a cluster, with `key`:
   * none for the primary of the key's slot).
   */
  private usable(client: RedisClient, key?: string): boolean {
    if (this.closed || client.status !== 'ready') return false;
    const now = Date.now();
    if (now < this.backoffUntil) return false;
    if (key === undefined || !this.cluster) return true;
    const node = this.primaryOf(client, metaKey(this.prefix, key));
    return node === undefined || now >= (this.nodeBackoff.get(node) ?? 0);
  }

  /** On a cluster, the primary (`host:port`) of the slot of Redis key `name` in `client`'s slot table, if known. */
  private primaryOf(client: RedisClient, name: string): string | undefined {
    return isCluster(client) ? client.slots[calculateSlot(name)]?.[0] : undefined;
  }

  /** Where a failure of a command on `key`'s keys is charged: its slot's primary on a cluster (else the whole tier). */
  private nodeOf(client: RedisClient, key: string): string | undefined {
    return this.primaryOf(client, metaKey(this.prefix, key));
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    if (this.closed) return undefined;
    const queued = this.queue.pending(key);
    if (queued !== undefined) return queued ?? undefined;
    if (this.tombstones.has(key)) return undefined;
    if (!this.usable(this.reader, key)) {
      this.counts.skipped++;
      return undefined;
    }
    this.counts.reads++;
    let values: Array<Buffer | null>;
    try {
      values = await this.reader.mgetBuffer(metaKey(this.prefix, key), bodyKey(this.prefix, key));
    } catch (err) {
      this.fail(err, { op: 'get', key }, this.nodeOf(this.reader, key));
      return undefined;
    }
    this.faults.ok();
    // A write or delete of the key queued while the read was out wins.
    const after = this.queue.pending(key);
    if (after !== undefined) return after ?? undefined;
    const [meta, body] = values;
    if (meta === null || meta === undefined) return undefined;
    const record = this.decode(key, meta, body ?? null);
    if (record !== undefined) this.counts.hits++;
    return record;
  }

  private decode(key: string, meta: Buffer, bodyValue: Buffer | null): CacheRecord | undefined {
    try {
      const decoded = decodeMeta(meta);
      if (decoded.key !== key) throw new Error(`stored under ${JSON.stringify(key)} but records ${JSON.stringify(decoded.key)}`);
      if (decoded.kind === 'vary') return decoded.record;
      this.versions.set(decoded.meta, decoded.body.bodyId);
      if (decoded.meta.deletableAt < this.now()) {
        // Redis expires it on its own clock; edgecache's says it is gone already.
        this.delete(key);
        return undefined;
      }
      const layout = decoded.body;
      let body: Body;
      if (layout.inlineAt >= 0) {
        // A private copy: the reply buffer may be larger than the body, and must not be pinned by it.
        const at = META_ENVELOPE_AT + layout.inlineAt;
        body = exactCopy(meta.subarray(at, at + layout.length));
      } else if (bodyValue === null) {
        // The two keys expire together, but Redis may drop one a moment before the other.
        this.delete(key);
        return undefined;
      } else {
        const bytes = decodeBody(bodyValue, layout.bodyId, layout.length);
        body = bytes.length > CONTIGUOUS_LIMIT ? new ArrayBody([bytes]) : bytes;
      }
      return { kind: 'entry', meta: decoded.meta, body };
    } catch (err) {
      this.counts.corruptRecords++;
      this.corruptLog.warn({ key, err: errorText(err) });
      this.delete(key);
      return undefined;
    }
  }

  /**
   * Queues the write and returns true; false when declined (a body over maxBodyBytes, already expired, the
   * queue full, Redis unavailable). A declined write still deletes the key's older record in Redis: it must not
   * outlive the response that replaced it.
   */
  set(key: string, record: CacheRecord): boolean {
    return this.enqueue(key, record, undefined);
  }

  /**
   * Stores `entry`, whose body is the one stored with `stored` (metadata this tier returned for the key, or was
   * given with set): when the key still holds that body, only its meta key is rewritten (and the body key's
   * expiry moved with it); otherwise the whole entry is written, as set() does. Returns what set() would.
   */
  updateMeta(key: string, entry: CacheEntry, stored: EntryMeta): boolean {
    return this.enqueue(key, entry, this.versions.get(stored));
  }

  /** Queues a write of `record`; with `sameBodyAs`, a rewrite of the meta key only if that body is stored. */
  private enqueue(key: string, record: CacheRecord, sameBodyAs: number | undefined): boolean {
    if (this.closed) return false;
    if (record.kind === 'entry' && (record.body.length > this.options.maxBodyBytes || record.meta.deletableAt <= this.now())) return this.decline(key);
    if (!this.usable(this.writer, key)) return this.decline(key);
    // Encoding waits for the queue: the response path only pays for this check.
    const bytes = recordSize(record) + OP_OVERHEAD;
    if (this.queue.pendingBytes > 0 && this.queue.pendingBytes + bytes > this.options.maxPendingBytes) {
      this.declines.fail({ key, pendingBytes: this.queue.pendingBytes });
      return this.decline(key);
    }
    this.declines.ok();
    this.tombstones.delete(key);
    const run =
      record.kind === 'vary'
        ? () => this.writeVary(key, record)
        : sameBodyAs === undefined
          ? () => this.writeEntry(key, record)
          : () => this.writeMeta(key, record, sameBodyAs);
    void this.queue.push({ keys: [key], record, bytes, run });
    return true;
  }

  private decline(key: string): false {
    this.counts.writesDeclined++;
    this.delete(key);
    return false;
  }

  private async writeEntry(key: string, entry: CacheEntry): Promise<void> {
    const ttl = this.ttl(entry.meta.deletableAt);
    if (ttl <= 0) return;
    let encoded: ReturnType<typeof encodeRecord>;
    try {
      encoded = encodeRecord(key, entry, recordSize(entry));
    } catch (err) {
      this.log.warn({ key, err: errorText(err) }, 'redis tier: record cannot be encoded; not stored');
      this.counts.writesDeclined++;
      return;
    }
    // A cluster's tag sets are in other slots: written first, so that the entry is never in Redis unnamed by them.
    if (this.cluster && !(await this.writeTags(key, entry.meta.tags, ttl))) return;
    const multi = this.writer.multi();
    multi.set(metaKey(this.prefix, key), encoded.meta, 'PX', ttl);
    if (encoded.body) multi.set(bodyKey(this.prefix, key), encoded.body, 'PX', ttl);
    else multi.unlink(bodyKey(this.prefix, key));
    if (!this.cluster) addTagCommands(multi, this.prefix, key, entry.meta.tags, ttl);
    if (await this.exec(multi, key)) {
      this.wrote(key);
      this.versions.set(entry.meta, encoded.bodyId);
    }
  }

  /**
   * Rewrites an entry's meta key when the key still holds the body with id `bodyId` (checked in Redis, in the same
   * script that writes), and moves the body key's expiry with it; the body key is not written. Otherwise (replaced
   * meanwhile by any node, expired) the whole entry is written.
   */
  private async writeMeta(key: string, entry: CacheEntry, bodyId: number): Promise<void> {
    const ttl = this.ttl(entry.meta.deletableAt);
    if (ttl <= 0) return;
    let encoded: ReturnType<typeof encodeMeta>;
    try {
      encoded = encodeMeta(key, entry, recordSize(entry), bodyId);
    } catch (err) {
      this.log.warn({ key, err: errorText(err) }, 'redis tier: record cannot be encoded; not stored');
      this.counts.writesDeclined++;
      return;
    }
    let rewritten: unknown;
    try {
      const keys = [metaKey(this.prefix, key), bodyKey(this.prefix, key)];
      rewritten = await this.writer.eval(REWRITE_META, 2, ...keys, encoded.meta, bodyIdBytes(bodyId), ttl, encoded.separateBody ? 1 : 0);
    } catch (err) {
      this.writeFailed(err, { op: 'set', key }, [key], this.nodeOf(this.writer, key));
      return;
    }
    if (rewritten !== 1) {
      await this.writeEntry(key, entry);
      return;
    }
    if (!(await this.writeTags(key, entry.meta.tags, ttl))) return;
    this.faults.ok();
    this.wrote(key);
    this.versions.set(entry.meta, bodyId);
  }

  /**
   * Writes a Vary record merged with the one already in Redis (same fields: the variants of both, this
   * record's last, at most maxVariants; those dropped are deleted), so that nodes that each stored other
   * variants of a URL do not hide each other's from a purge. (Read and write are not one transaction: two
   * nodes merging the same URL within a round trip can still lose one's variant from the list.)
   */
  private async writeVary(key: string, record: VaryRecord): Promise<void> {
    let existing: Buffer | null;
    try {
      existing = await this.writer.getBuffer(metaKey(this.prefix, key));
    } catch (err) {
      this.writeFailed(err, { op: 'set', key }, [key], this.nodeOf(this.writer, key));
      return;
    }
    let variants = record.variants;
    if (existing !== null) {
      try {
        const decoded = decodeMeta(existing);
        if (decoded.kind === 'vary' && sameFields(decoded.record.fields, record.fields)) {
          variants = [...decoded.record.variants.filter((v) => !record.variants.includes(v)), ...record.variants];
        }
      } catch {
        // Overwritten below.
      }
    }
    const dropped = variants.length > this.options.maxVariants ? variants.slice(0, variants.length - this.options.maxVariants) : [];
    const merged: VaryRecord = { ...record, variants: variants.slice(dropped.length) };
    const encoded = encodeRecord(key, merged, recordSize(merged));
    const multi = this.writer.multi();
    // A Vary record is rewritten with every variant stored, so it outlives them all.
    multi.set(metaKey(this.prefix, key), encoded.meta, 'PX', this.maxTtlMs);
    multi.unlink(bodyKey(this.prefix, key));
    const droppedKeys = dropped.map((v) => variantKey(record.primaryKey, v));
    // A cluster's variants are in other slots: deleted after the record that no longer names them.
    if (!this.cluster) for (const variant of droppedKeys) multi.unlink(...this.redisKeys(variant));
    if (!(await this.exec(multi, key))) return;
    this.wrote(key);
    if (this.cluster && droppedKeys.length > 0) await this.unlink(droppedKeys);
  }

  /**
   * Adds `key` to the sets of its tags, in a transaction of its own (one per tag on a cluster: each set is in a slot
   * of its own). True when done (or nothing to do); a failure leaves the key to be deleted later.
   */
  private async writeTags(key: string, tags: readonly string[], ttl: number): Promise<boolean> {
    if (tags.length === 0) return true;
    const groups = this.cluster ? tags.map((tag) => [tag]) : [tags];
    try {
      await Promise.all(
        groups.map(async (group) => {
          const multi = this.writer.multi();
          addTagCommands(multi, this.prefix, key, group, ttl);
          await execOrThrow(multi);
        }),
      );
      this.faults.ok();
      return true;
    } catch (err) {
      this.writeFailed(err, { op: 'set', key }, [key], this.nodeOf(this.writer, key));
      return false;
    }
  }

  /** Runs a MULTI; true when every command in it succeeded. A failure leaves the key to be deleted later. */
  private async exec(multi: Multi, key: string): Promise<boolean> {
    try {
      await execOrThrow(multi);
      this.faults.ok();
      return true;
    } catch (err) {
      // Whatever Redis held before may be older than the record that replaced it here.
      this.writeFailed(err, { op: 'set', key }, [key], this.nodeOf(this.writer, key));
      return false;
    }
  }

  private wrote(key: string): void {
    this.counts.writes++;
    this.recent.delete(key);
    this.recent.set(key, Date.now());
    if (this.recent.size > MAX_RECENT_WRITES) this.recent.delete(this.recent.keys().next().value as string);
  }

  /** Milliseconds until Redis should drop an entry with this deletableAt (capped at maxTtlMs). */
  private ttl(deletableAt: number): number {
    return Math.ceil(Math.min(this.maxTtlMs, deletableAt - this.now()));
  }

  delete(key: string): void {
    if (this.closed) return;
    if (!this.usable(this.writer, key)) {
      this.bury([key]);
      return;
    }
    void this.queue.push({ keys: [key], record: null, bytes: key.length + OP_OVERHEAD, run: () => this.unlink([key]) });
  }

  /** Deletes many keys; they are gone for this process's reads at once, and from Redis when it resolves. */
  async deleteMany(keys: string[]): Promise<void> {
    if (this.closed || keys.length === 0) return;
    if (!this.usable(this.writer)) {
      this.bury(keys);
      return;
    }
    const bytes = keys.reduce((n, key) => n + key.length + OP_OVERHEAD, 0);
    await this.queue.push({ keys, record: null, bytes, run: () => this.unlink(keys) });
  }

  private redisKeys(key: string): [string, string] {
    return [metaKey(this.prefix, key), bodyKey(this.prefix, key)];
  }

  private async unlink(keys: readonly string[]): Promise<void> {
    if (this.cluster) {
      await this.unlinkBySlot(keys);
      return;
    }
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      try {
        await this.writer.unlink(...batch.flatMap((key) => this.redisKeys(key)));
        this.faults.ok();
      } catch (err) {
        this.writeFailed(err, { op: 'delete', keys: batch.length }, keys.slice(i));
        return;
      }
    }
    for (const key of keys) this.recent.delete(key);
  }

  /**
   * On a cluster: one UNLINK per slot (an entry's two keys share its slot), the slots' commands sent together. A slot
   * whose command fails leaves its keys to be deleted later and backs off its primary only.
   */
  private async unlinkBySlot(keys: readonly string[]): Promise<void> {
    const bySlot = new Map<number, string[]>();
    for (const key of keys) {
      const slot = calculateSlot(metaKey(this.prefix, key));
      const group = bySlot.get(slot);
      if (group === undefined) bySlot.set(slot, [key]);
      else group.push(key);
    }
    let failed = false;
    await Promise.all(
      [...bySlot.values()].map(async (group) => {
        for (let i = 0; i < group.length; i += DELETE_BATCH) {
          const batch = group.slice(i, i + DELETE_BATCH);
          try {
            await this.writer.unlink(...batch.flatMap((key) => this.redisKeys(key)));
          } catch (err) {
            failed = true;
            this.writeFailed(err, { op: 'delete', keys: group.length - i }, group.slice(i), this.nodeOf(this.writer, group[0] as string));
            return;
          }
        }
        for (const key of group) this.recent.delete(key);
      }),
    );
    if (!failed) this.faults.ok();
  }

  /**
   * Remembers deletes that could not be sent, to send when Redis is back (on reconnection, or after the backoff
   * when the connection stayed up); beyond MAX_TOMBSTONES they are dropped and counted.
   */
  private bury(keys: readonly string[]): void {
    for (const key of keys) {
      if (this.tombstones.size >= MAX_TOMBSTONES && !this.tombstones.has(key)) {
        this.counts.deletesDropped++;
        continue;
      }
      this.tombstones.add(key);
    }
    if (this.closed || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.writer.status === 'ready') this.retryDeletes();
    }, BACKOFF_MS).unref();
  }

  private retryDeletes(): void {
    if (this.closed || this.tombstones.size === 0) return;
    const keys = [...this.tombstones];
    this.tombstones.clear();
    this.log.info({ keys: keys.length }, 'redis tier: sending the deletes that could not be sent before');
    const bytes = keys.reduce((n, key) => n + key.length + OP_OVERHEAD, 0);
    void this.queue.push({ keys, record: null, bytes, run: () => this.unlink(keys) });
  }

  /**
   * Whether a write of `key` by this process is queued, or landed so recently (RECENT_WRITE_MS) that it may have
   * come after another node's purge of the key: a purge applied here for another node deletes it again.
   */
  hasPendingWrite(key: string): boolean {
    if (this.queue.pending(key)) return true;
    const at = this.recent.get(key);
    return at !== undefined && Date.now() - at < RECENT_WRITE_MS;
  }

  /**
   * UNLINKs Redis keys (clear()): in one command on a server; on a cluster, one command per slot (sent together:
   * ioredis pipelines those bound for one node), since a multi-key command must not span slots.
   */
  private async unlinkNames(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    if (!this.cluster) {
      await this.writer.unlink(...names);
      return;
    }
    const bySlot = new Map<number, string[]>();
    for (const name of names) {
      const slot = calculateSlot(name);
      const group = bySlot.get(slot);
      if (group === undefined) bySlot.set(slot, [name]);
      else group.push(name);
    }
    await Promise.all([...bySlot.values()].map((group) => this.writer.unlink(...group)));
  }

  /** Keys starting with `prefix`: SCAN MATCH over the meta keys, on every primary (O(keys in the database), for purges). */
  async keys(prefix: string): Promise<string[]> {
    if (this.closed) return [];
    const out = new Set<string>();
    await this.scan(metaKeyPattern(this.prefix, prefix), this.reader, (found) => {
      for (const name of found) {
        const key = keyOfMetaKey(this.prefix, name);
        if (key !== undefined) out.add(key);
      }
    });
    for (const key of this.tombstones) out.delete(key);
    for (const [key, record] of this.queue.pendingKeys()) {
      if (!key.startsWith(prefix)) continue;
      if (record) out.add(key);
      else out.delete(key);
    }
    return [...out];
  }

  /** Keys of entries carrying `tag`, from its set (which may name keys since overwritten without it). */
  async keysForTag(tag: string): Promise<string[]> {
    if (this.closed) return [];
    const out = new Set<string>();
    if (this.usable(this.reader)) {
      try {
        for (const key of await this.reader.smembers(tagKey(this.prefix, tag))) out.add(key);
      } catch (err) {
        this.fail(err, { op: 'keysForTag', tag }, this.primaryOf(this.reader, tagKey(this.prefix, tag)));
      }
    } else {
      this.counts.skipped++;
    }
    for (const key of this.tombstones) out.delete(key);
    for (const [key, record] of this.queue.pendingKeys()) {
      if (record?.kind === 'entry' && record.meta.tags.includes(tag)) out.add(key);
      else out.delete(key);
    }
    return [...out];
  }

  /** Deletes every key under this tier's prefix (SCAN + UNLINK; never FLUSHDB: other prefixes may share the database). */
  async clear(): Promise<void> {
    if (this.closed) return;
    this.queue.dropWaiting();
    this.tombstones.clear();
    this.recent.clear();
    await this.queue.flushed();
    await this.scan(globPrefix(this.prefix), this.writer, (found) => this.unlinkNames(found));
  }

  /**
   * Walks SCAN MATCH `pattern` to the end on the server, or on every primary of a cluster (one after the other),
   * handing each batch to `each`; a node's walk stops at its first failure (counted).
   */
  private async scan(pattern: string, client: RedisClient, each: (found: string[]) => unknown): Promise<void> {
    if (!this.usable(client)) {
      this.counts.skipped++;
      return;
    }
    // A primary that fails (a cluster's, lost) does not keep the walk from the others.
    let failed = false;
    for (const node of primaries(client)) {
      try {
        await scanNode(node, pattern, each);
      } catch (err) {
        failed = true;
        this.fail(err, { op: 'scan', pattern }, this.cluster ? `${node.options.host}:${node.options.port}` : undefined);
      }
    }
    if (!failed) this.faults.ok();
  }

  /**
   * The tier's figures. entries, bytes, maxBytes and evictions are the Redis server's (DBSIZE, used_memory,
   * maxmemory, evicted_keys: every prefix and tag set included), refreshed every INFO_INTERVAL_MS; the rest
   * are this process's counters.
   */
  stats(): RedisTierStats {
    const { deletesDropped, ...counts } = this.counts;
    return {
      name: this.name,
      entries: this.server.keys,
      bytes: this.server.usedMemory,
      maxBytes: this.server.maxMemory,
      evictions: this.server.evictedKeys,
      connected: this.reader.status === 'ready' && this.writer.status === 'ready' ? 1 : 0,
      ...counts,
      deletesDropped,
      pendingWrites: this.queue.size,
      pendingBytes: this.queue.pendingBytes,
    };
  }

  /** Reads the server figures shown by stats() (INFO and DBSIZE; on a cluster, summed over the primaries). Never rejects. */
  async refreshServerFigures(): Promise<void> {
    if (!this.usable(this.reader)) return;
    try {
      const figures = await Promise.all(
        primaries(this.reader).map(async (node) => {
          const [info, keys] = await Promise.all([node.info(), node.dbsize()]);
          const field = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
          return { keys, usedMemory: field('used_memory'), maxMemory: field('maxmemory'), evictedKeys: field('evicted_keys') };
        }),
      );
      this.server = figures.reduce(
        (sum, f) => ({ keys: sum.keys + f.keys, usedMemory: sum.usedMemory + f.usedMemory, maxMemory: sum.maxMemory + f.maxMemory, evictedKeys: sum.evictedKeys + f.evictedKeys }),
        { keys: 0, usedMemory: 0, maxMemory: 0, evictedKeys: 0 },
      );
    } catch {
      // Not worth a failure count: the next refresh tries again.
    }
  }

  /** Resolves once every write and delete queued so far has been answered by Redis (or failed). Never rejects. */
  flushed(): Promise<void> {
    return this.queue.flushed();
  }

  /** Sends what is queued (bounded by the command timeouts), then closes both connections. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      clearTimeout(this.retryTimer);
      await this.queue.flushed();
      this.closed = true;
      await Promise.all([closeRedis(this.reader), closeRedis(this.writer)]);
    })();
    return this.closing;
  }

  /**
   * A write or delete failed: the keys it concerned, and those of every operation still waiting (which would most
   * likely fail too, each after its timeout), are left to be deleted once Redis answers again.
   */
  private writeFailed(err: unknown, fields: Record<string, unknown>, keys: readonly string[], node?: string): void {
    this.fail(err, fields, node);
    const dropped = this.queue.dropWaiting();
    this.counts.writesDeclined += dropped.writes;
    this.bury([...keys, ...dropped.keys]);
  }

  /** Counts and logs a failed command, and backs off: the primary `node` on a cluster when known, else the whole tier. */
  private fail(err: unknown, fields: Record<string, unknown>, node?: string): void {
    this.counts.errors++;
    if (this.cluster && node !== undefined) this.nodeBackoff.set(node, Date.now() + BACKOFF_MS);
    else this.backoffUntil = Date.now() + BACKOFF_MS;
    this.faults.fail({ ...fields, err: errorText(err) });
  }
}

type Multi = ReturnType<RedisClient['multi']>;

/** Adds `key` to its tags' sets: a set expires with its longest-lived member (NX gives a new set a TTL, GT only ever extends it). */
function addTagCommands(multi: Multi, prefix: string, key: string, tags: readonly string[], ttl: number): void {
  for (const tag of tags) {
    const set = tagKey(prefix, tag);
    multi.sadd(set, key);
    multi.pexpire(set, ttl, 'NX');
    multi.pexpire(set, ttl, 'GT');
  }
}

/** Runs a MULTI; throws unless every command in it succeeded. */
async function execOrThrow(multi: Multi): Promise<void> {
  const results = await multi.exec();
  if (results === null) throw new Error('transaction aborted');
  for (const [err] of results) if (err) throw err;
}

/** SCAN MATCH `pattern` on one server, to the end. */
async function scanNode(node: Redis, pattern: string, each: (found: string[]) => unknown): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
    cursor = next;
    await each(found);
  } while (cursor !== '0');
}
