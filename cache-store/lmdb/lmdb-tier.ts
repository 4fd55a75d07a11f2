/**
 * The disk tier: one LMDB environment holding record metadata, bodies in chunks, and the indexes that keep the
 * byte budget (see docs/disk-tier.md). Reads are synchronous (memory-mapped); writes are queued as LMDB child
 * transactions, one per record, committed off the main thread, so `set` returns at once. Until a queued write
 * commits, this process answers `get` from the queue (read your own writes); other processes see it after.
 * Nothing here throws to the caller: failed writes, unreadable records and a broken environment are counted,
 * logged and turned into misses.
 */
import { LRUCache } from 'lru-cache';
import type { Body } from '../body.js';
import { recordSize, type CacheEntry, type CacheRecord, type EntryMeta, type VaryRecord } from '../entry.js';
import { LmdbBody } from './body.js';
import { abandonedFills, DiskBodyWriter, processAlive, removeFill } from './body-writer.js';
import { BodyPool, MAX_LEASED_BYTES } from './pool.js';
import { applyAccessTimes, expiredRows, readCount, readHousekeeping, removeEntry, storedKeys, storedKeysForTag, sweepRows } from './budget.js';
import { checkIntegrity, type IntegrityReport } from './check.js';
import { decodeRecord, FORMAT_VERSION, isEntryValue, prepareRecord, type BodyLayout, type DecodedRecord, type PreparedRecord } from '../record-codec.js';
import { INFO, isHashedKey, storageKey } from './layout.js';
import { clearAll, openEnvironment, type LmdbDbs } from './env.js';
import { BurstLog, RateLog, type TierLogger } from '../log-throttle.js';
import { WriteQueue } from './queue.js';
import { DiskSpace, FILE_MARGIN, isSpaceError, NoSpaceError, type SpaceShortage } from './space.js';
import { rewriteMeta, writeRecord, type WriteResult } from './write.js';
import {
  ATIME_BATCH,
  ATIME_MAX_PENDING,
  CLOSE_TIMEOUT_MS,
  DEFAULT_ATIME_FLUSH_MS,
  DEFAULT_CHUNK_SIZE,
  DEFAULT_MAX_PENDING_BYTES,
  DEFAULT_SWEEP_INTERVAL_MS,
  defaultMaxBatchBytes,
  MAX_PAUSE_MS,
  MiB,
  MIN_PAUSE_MS,
  SWEEP_BATCH,
  TOMBSTONE_RETRY_MS,
  type LmdbTierOptions,
  type LmdbTierStats,
} from './options.js';
import type { SyncCacheTier } from '../tier.js';

export type { TierLogger } from '../log-throttle.js';
export type { IntegrityReport } from './check.js';
export type { LmdbTierOptions, LmdbTierStats } from './options.js';

/** Decoded metadata kept for the most recently read records (no bodies): a few MB at most, least recently read dropped first. */
const DECODED_CACHE_ENTRIES = 4096;
/** Resolution of the access times kept for LRU eviction. */
const ATIME_RESOLUTION_MS = 30_000;


/**
 * A decoded record with the header stamp it was decoded from and when its access was last recorded, plus
 * copies of what every hit needs, so that a hit reads one object (these are cold in the CPU cache by the time
 * the body has been copied).
 */
interface Decoded {
  checksum: number;
  bodyId: number;
  length: number;
  touchedAt: number;
  /** Whether the record's key is its storage key (always, unless the storage key is hashed or the record is bad). */
  keyIsStorage: boolean;
  /** The record (vary), or the parts of the entry a hit returns. */
  vary: VaryRecord | undefined;
  meta: EntryMeta | undefined;
  body: BodyLayout | undefined;
  /** deletableAt of an entry (Infinity for a vary record). */
  deletableAt: number;
  /** Where an inline body starts in the value (-1: none), and its length. */
  inlineAt: number;
  bodyLength: number;
  /** The key the record says it is stored under. */
  key: string;
}

/**
 * Pages one record write copies in its transaction whatever its size (copy-on-write): the leaf of the meta tree that
 * holds it and a leaf of each index it goes into (expiry, LRU, tags), so that a transaction of small records is
 * bounded by the pages it touches, not only by its bytes.
 */
const RECORD_TXN_PAGES = 4;

export class LmdbTier implements SyncCacheTier {
  readonly name = 'disk';
  readonly synchronous = true;
  readonly maxBytes: number;
  private readonly dbs: LmdbDbs;
  private readonly queue: WriteQueue;
  /** Pages used and allowed, and the file's reservation (see space.ts). */
  private readonly space: DiskSpace;
  /** While the disk or the map is full, writes are declined until this time (Date.now), then tried again. */
  private pausedUntil = 0;
  /**
   * Whether the filesystem was full at the last write that found no room, and has not had room since (a write
   * committed, or the filesystem shows free space again): a readiness problem, unlike a full map (the budget at work).
   */
  private filesystemFull = false;
  private pauseMs = MIN_PAUSE_MS;
  private pauseTimer: NodeJS.Timeout | undefined;
  private readonly chunkSize: number;
  private readonly now: () => number;
  private readonly log: TierLogger;
  private readonly maxPendingBytes: number;
  /** Storage keys found corrupt whose removal is queued (counted once). */
  private readonly corrupt = new Set<string>();
  /** Access times not yet written to the LRU index. */
  private accessed = new Map<string, number>();
  /** Recent decodings by storage key, with the header stamp they were decoded from (see decode()). */
  private readonly decodedCache = new LRUCache<string, Decoded>({ max: DECODED_CACHE_ENTRIES });
  /**
   * The body id each entry's metadata was stored (or read) with, for updateMeta: by the object, which the tier
   * hands out per decoded version and the callers pass back.
   */
  private readonly versions = new WeakMap<EntryMeta, number>();
  /** Reusable buffers for leased bodies (see lease()). */
  private readonly pool = new BodyPool();
  /** Keys whose delete failed to commit (storage → key): misses here, retried until the delete commits. */
  private readonly tombstones = new Map<string, string>();
  private tombstoneTimer: NodeJS.Timeout | undefined;
  /** Queued clears not yet committed: until then nothing stored before them is visible. */
  private clearing = 0;
  private closed = false;
  private lastCommitFailed = false;
  private closing: Promise<void> | null = null;
  private sweeping: Promise<number> | null = null;
  /** The access-time flushes in progress, in order (see flushAccessTimes()); never rejects. */
  private atimeFlush: Promise<void> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly counts = { evictions: 0, writeFailures: 0, writesDeclined: 0, corruptRecords: 0, expired: 0, readFailures: 0, diskFull: 0, mapFull: 0 };
  private readonly writeFaults: BurstLog;
  private readonly spaceLog: BurstLog;
  private readonly declines: BurstLog;
  private readonly readFaults: BurstLog;
  private readonly corruptLog: RateLog;

  constructor(options: LmdbTierOptions) {
    this.maxBytes = options.maxBytes;
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.now = options.now;
    this.log = options.log;
    this.maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    if (!(this.chunkSize >= 1024 && this.chunkSize <= 64 * MiB)) throw new RangeError('chunkSize must be between 1 KiB and 64 MiB');
    this.writeFaults = new BurstLog(
      this.log,
      'error',
      'disk tier: writes are failing; those entries are not stored (failures are counted, not each logged)',
      'disk tier: writes succeed again',
    );
    this.declines = new BurstLog(this.log, 'warn', 'disk tier: write queue full; declining writes until it drains', 'disk tier: write queue drained');
    this.readFaults = new BurstLog(this.log, 'error', 'disk tier: reads are failing; answering misses', 'disk tier: reads succeed again');
    this.corruptLog = new RateLog(this.log, 'disk tier: unreadable record; deleted (counted in corruptRecords)');
    this.spaceLog = new BurstLog(
      this.log,
      'error',
      'disk tier: no room on disk for writes (the filesystem or the data file is full); pausing disk writes, serving from memory and the origin',
      'disk tier: disk writes resumed',
    );
    this.dbs = openEnvironment({ path: options.path, log: this.log, ...(options.mapSize !== undefined ? { mapSize: options.mapSize } : {}) });
    const maxBatchBytes = options.maxBatchBytes ?? defaultMaxBatchBytes(this.maxBytes);
    this.space = new DiskSpace(this.dbs, { path: options.path, maxBytes: this.maxBytes, maxBatchBytes });
    const fileBytes = this.space.fileSize();
    if (fileBytes > this.maxBytes * (1 + FILE_MARGIN)) {
      this.log.warn(
        { fileBytes, maxBytes: this.maxBytes },
        'disk tier: data.mdb is larger than the disk budget (it was created with a larger one); LMDB files never shrink, so it keeps its size but holds at most the budget from now on. Delete the directory while edgecache is stopped to reclaim the space.',
      );
    }
    this.queue = new WriteQueue(this.dbs.env, {
      maxBatchBytes: () => this.space.batchLimit(),
      onCommit: () => {
        this.lastCommitFailed = false;
        this.writeFaults.ok();
        const grew = this.space.afterCommit();
        // The file grew past the map: its free pages did not cover a transaction after all (fragmentation, a
        // reader holding old pages). More of the budget is kept free from now on, and writes pause as for a
        // full map, so that a reader pinning pages cannot make the file grow write after write.
        if (grew > 0) {
          this.space.extraReservePages += grew;
          if (this.space.pastMargin()) {
            this.pause('map');
          } else {
            this.counts.mapFull++;
            this.spaceLog.fail({ shortage: 'map', grewPages: grew });
          }
        }
      },
      onFailure: (err, op) => {
        this.lastCommitFailed = true;
        this.counts.writeFailures++;
        this.writeFaults.fail({ err, key: op?.key });
        if (err instanceof NoSpaceError) {
          this.pause(err.shortage);
        } else if ((err as { commitError?: unknown } | null)?.commitError !== undefined || isSpaceError(err)) {
          // A commit failed (lmdb-js gives no cause here; on Linux it is a write error, i.e. a full disk).
          this.space.commitFailed();
          this.pause('disk');
        }
      },
      beforeWork: (size) => {
        // Every operation takes a few pages (copy-on-write of the trees it touches): they must land on
        // allocated blocks, or the operation is not done at all (see space.ts).
        const shortage = this.space.ensure(0, this.queue.inflightBytes - size);
        if (shortage !== null) throw new NoSpaceError(shortage);
      },
    });
    // Bodies whose fill never finished (this pid's from an earlier life, or a dead process's) are removed.
    void this.removeAbandonedFills((pid) => pid !== process.pid && processAlive(pid));
    const sweepMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    if ((options.sweeper ?? true) && sweepMs > 0) this.timers.push(setInterval(() => void this.sweep(), sweepMs).unref());
    const atimeMs = options.atimeFlushMs ?? DEFAULT_ATIME_FLUSH_MS;
    if (atimeMs > 0) this.timers.push(setInterval(() => void this.flushAccessTimes(), atimeMs).unref());
  }

  get(key: string): CacheRecord | undefined {
    return this.read(key, false);
  }

  /**
   * `get` for a caller that hands the body back: a body of up to one chunk (at most MAX_LEASED_BYTES) is copied
   * into a reusable buffer instead of a new one. The caller must call `release(body)` once nothing reads the body
   * any more (for a response, on 'finish'), and must not store it anywhere (copy it instead); a body it drops is
   * simply garbage collected. See lmdb-pool.ts for why (the GC cost of a fresh copy per hit).
   */
  lease(key: string): CacheRecord | undefined {
    return this.read(key, true);
  }

  /** Whether `body` came from `lease` and has not been released. */
  isLeased(body: Uint8Array): boolean {
    return this.pool.isLeased(body);
  }

  /** Hands a leased body back for reuse (ignored for any other buffer). */
  release(body: Uint8Array): void {
    this.pool.release(body);
  }

  private read(key: string, lease: boolean): CacheRecord | undefined {
    if (this.closed) return undefined;
    const storage = storageKey(key);
    const op = this.queue.pendingOp(storage);
    if (op !== undefined) return op.key === key ? (op.record ?? undefined) : undefined;
    if (this.clearing > 0 || this.tombstones.has(storage)) return undefined;
    let raw: Buffer | undefined;
    try {
      // A view valid until the next LMDB call: the header is read, and an inline body copied, before any other.
      raw = this.dbs.meta.getBinaryFast(storage);
    } catch (err) {
      this.counts.readFailures++;
      this.readFaults.fail({ err, key });
      return undefined;
    }
    if (raw === undefined) return undefined;
    const now = this.now();
    let record: CacheRecord;
    let cached: Decoded;
    try {
      cached = this.decode(storage, raw);
      // (storageKey returns the key itself unless it hashes it: then this compares pointers.)
      if (storage === key ? !cached.keyIsStorage : cached.key !== key) {
        // A hashed key shared with another key (a sha256 collision: not expected) is a plain miss.
        if (isHashedKey(storage)) return undefined;
        throw new Error(`stored under ${JSON.stringify(key)} but records ${JSON.stringify(cached.key)}`);
      }
      if (cached.vary !== undefined) {
        record = cached.vary;
      } else {
        if (cached.deletableAt < now) {
          this.expire(storage, key);
          return undefined;
        }
        const body =
          cached.inlineAt >= 0 ? this.copyOut(raw, cached.inlineAt, cached.bodyLength, lease) : this.openBody(storage, cached.body as BodyLayout, lease);
        record = { kind: 'entry', meta: cached.meta as EntryMeta, body };
      }
    } catch (err) {
      this.markCorrupt(storage, key, err);
      return undefined;
    }
    this.readFaults.ok();
    this.touch(storage, cached, now);
    return record;
  }

  hasPendingWrite(key: string): boolean {
    const op = this.queue.pendingOp(storageKey(key));
    return op !== undefined && op.record !== null;
  }

  /** Queues the write and returns true; false when declined (see LmdbTierStats.writesDeclined). */
  set(key: string, record: CacheRecord): boolean {
    return this.write(key, record, undefined);
  }

  /**
   * Stores `entry`, whose body is the one stored with `stored` (metadata this tier returned for the key, or was
   * given with set): when the key still holds that version, only its metadata is rewritten and the body stays as
   * it is (rewriteMeta: a soft purge or a 304 refresh then costs a meta value, not a copy of every chunk);
   * otherwise (replaced meanwhile, by any process; a write of the key still queued) the whole entry is written,
   * as set() does. Returns what set() would.
   */
  /**
   * lmdb-js keeps a read transaction until the next turn of the event loop: a commit by another process in
   * between is not seen until then. This starts a new one for the next read.
   */
  readLatest(): void {
    if (this.closed) return;
    try {
      this.dbs.env.resetReadTxn();
    } catch {
      // Closing: nothing to read.
    }
  }

  updateMeta(key: string, entry: CacheEntry, stored: EntryMeta): boolean {
    return this.write(key, entry, this.versions.get(stored));
  }

  /**
   * Starts writing a body to this tier as it streams (an object too large for the memory tier): see
   * body-writer.ts. Undefined while the tier is closed or its writes are paused (a full disk).
   */
  openStream(): DiskBodyWriter | undefined {
    if (this.closed || this.pausedUntil > 0) return undefined;
    return new DiskBodyWriter(this.dbs, this.queue, this.chunkSize);
  }

  /** The body `writer` has written, `length` bytes, to build the entry finishStream stores. */
  streamedBody(writer: DiskBodyWriter, storageFor: string): LmdbBody {
    return new LmdbBody(this.dbs.bodies, writer.bodyId, writer.received, writer.chunkSize, (id) => this.chunkMissing(storageKey(storageFor), id));
  }

  /**
   * Stores `entry`, whose body `writer` has written (streamedBody), once every chunk has committed: the final
   * record makes it visible. Resolves to whether it was stored; when not, its chunks are removed.
   */
  async finishStream(key: string, entry: CacheEntry, writer: DiskBodyWriter): Promise<boolean> {
    const chunkCount = await writer.complete();
    if (chunkCount === undefined) return false;
    // The body id is known now (the first write allocated it): the entry reads its body from the chunks.
    entry.body = this.streamedBody(writer, key);
    const done = new Promise<boolean>((resolve) => {
      if (!this.write(key, entry, undefined, { bodyId: writer.bodyId, chunkCount }, resolve)) resolve(false);
    });
    const stored = await done;
    if (!stored) writer.abort();
    return stored;
  }

  /** Queues a write of `record`; with `sameBodyAs`, a rewrite of the metadata only if that version is stored. */
  private write(
    key: string,
    record: CacheRecord,
    sameBodyAs: number | undefined,
    streamed?: { bodyId: number; chunkCount: number },
    settled?: (stored: boolean) => void,
  ): boolean {
    if (this.closed) return false;
    const size = recordSize(record);
    if (size > this.maxBytes || (record.kind === 'entry' && record.meta.deletableAt < this.now())) return this.decline(key);
    if (this.pausedUntil > 0) return this.decline(key); // the disk or the map is full: backing off
    // What the write holds in the queue: a streamed body's chunks are already written (only its record is left).
    const queued = streamed !== undefined && record.kind === 'entry' ? Math.max(1, size - record.body.length) : size;
    if (this.queue.pendingBytes > 0 && this.queue.pendingBytes + queued > this.maxPendingBytes) {
      this.declines.fail({ key, pendingBytes: this.queue.pendingBytes });
      return this.decline(key);
    }
    this.declines.ok();
    let storage: string;
    let prepared: PreparedRecord;
    try {
      storage = storageKey(key);
      prepared = prepareRecord(key, record, size, this.chunkSize);
    } catch (err) {
      this.log.warn({ err, key }, 'disk tier: record cannot be encoded; not stored');
      return this.decline(key);
    }
    const body = record.kind === 'entry' ? record.body : undefined;
    const sourceBodyId = body instanceof LmdbBody && body.isIn(this.dbs.bodies) ? body.bodyId : -1;
    const args = { storage, key, record, prepared, size, sourceBodyId, maxBytes: this.maxBytes, chunkSize: this.chunkSize, space: this.space, ...(streamed && { streamed }) };
    const write = (): WriteResult => {
      const inflightBytes = this.queue.inflightBytes - queued;
      if (sameBodyAs !== undefined && record.kind === 'entry') {
        const meta = { storage, key, entry: record, size, bodyId: sameBodyAs, maxBytes: this.maxBytes, space: this.space, inflightBytes };
        const rewritten = rewriteMeta(this.dbs, meta);
        if (rewritten !== undefined) return rewritten;
      }
      return writeRecord(this.dbs, { ...args, now: this.now(), inflightBytes });
    };
    // What it costs a transaction: its bytes, but at least the pages a record write copies (a leaf of the meta tree
    // and of each index it is in): a batch of many small records would otherwise touch far more pages than its
    // bytes say, and the file would outgrow the reserve kept for a transaction (space.ts).
    const batchCost = Math.max(queued, RECORD_TXN_PAGES * this.space.pageSize);
    void this.queue.run({ storage, key, record }, queued, write, batchCost).then((result) => {
      settled?.(result?.stored === true);
      if (result === undefined) return;
      if (result.stored && record.kind === 'entry') this.versions.set(record.meta, result.bodyId);
      this.counts.evictions += result.evicted;
      if (this.tombstones.get(storage) === key) this.tombstones.delete(storage); // the write replaced it
      if (result.stored) {
        this.pauseMs = MIN_PAUSE_MS;
        this.filesystemFull = false;
        this.spaceLog.ok();
      } else {
        this.counts.writesDeclined++;
        // A full disk stops writing for a while. A full map for this record only (its pages are more than the
        // file has free right now: evictions in its own transaction free pages for the next ones) does not.
        if (result.shortage === 'disk') this.pause('disk');
        else if (result.shortage === 'map') this.counts.mapFull++;
      }
    });
    return true;
  }

  /**
   * No room for writes (the filesystem is full, or the data file is at the budget with no free page): decline
   * writes for a while instead of retrying each one, doubling the pause while it lasts (1 s up to 30 s). Reads,
   * deletes and the memory tier go on. Dead processes' reader slots are cleared, since they pin free pages.
   */
  private pause(shortage: SpaceShortage): void {
    const now = Date.now();
    if (this.pausedUntil > now || this.closed) return;
    this.counts[shortage === 'disk' ? 'diskFull' : 'mapFull']++;
    const ms = this.pauseMs;
    this.pauseMs = Math.min(MAX_PAUSE_MS, this.pauseMs * 2);
    this.pausedUntil = now + ms;
    if (shortage === 'disk') this.filesystemFull = true;
    this.spaceLog.fail({ shortage, pauseMs: ms, fileBytes: this.space.fileSize(), maxBytes: this.maxBytes });
    try {
      this.dbs.env.readerCheck();
    } catch {
      // Not fatal.
    }
    clearTimeout(this.pauseTimer);
    this.pauseTimer = setTimeout(() => {
      this.pauseTimer = undefined;
      this.pausedUntil = 0;
      // Lifts the disk-full cap when the filesystem has room again.
      if (this.space.probe()) this.filesystemFull = false;
    }, ms).unref();
  }

  /** A declined write still replaces: an older record of the key must not outlive the response that replaced it. */
  private decline(key: string): false {
    this.counts.writesDeclined++;
    const storage = storageKey(key);
    const op = this.queue.pendingOp(storage);
    try {
      if (op ? op.record !== null : this.dbs.meta.doesExist(storage)) this.delete(key);
    } catch {
      this.delete(key);
    }
    return false;
  }

  delete(key: string): void {
    if (this.closed) return;
    const storage = storageKey(key);
    void this.queue.run({ storage, key, record: null }, 0, () => this.remove(storage, key)).then((done) => {
      // A purge must not come undone because its commit failed (a full disk): hide the key and retry.
      if (done === undefined) this.bury(storage, key);
    });
  }

  hasEntry(key: string): boolean {
    const storage = storageKey(key);
    const op = this.queue.pendingOp(storage);
    if (op !== undefined) return op.key === key && op.record?.kind === 'entry';
    if (this.clearing > 0 || this.tombstones.has(storage)) return false;
    try {
      const raw = this.dbs.meta.getBinaryFast(storage);
      return raw !== undefined && isEntryValue(raw);
    } catch {
      return false;
    }
  }

  /**
   * Deletes many keys in one transaction (a purge deletes in batches: one transaction per key would cost a
   * commit each). The keys are hidden from this process's reads at once, like a failed delete's tombstone.
   */
  async deleteMany(keys: string[]): Promise<void> {
    if (this.closed || keys.length === 0) return;
    const items = keys.map((key) => [storageKey(key), key] as const);
    for (const [storage, key] of items) this.tombstones.set(storage, key);
    // Registered as queued deletes: a write of one of these keys still queued before them is no longer read.
    const ops = items.map(([storage, key]) => ({ storage, key, record: null }));
    const done = await this.queue.run(ops, 0, () => items.every(([storage, key]) => this.remove(storage, key)));
    if (done === undefined) {
      // The commit failed (a full disk): keep them hidden and retry, as for a single delete.
      for (const [storage, key] of items) this.bury(storage, key);
      return;
    }
    for (const [storage, key] of items) if (this.tombstones.get(storage) === key) this.tombstones.delete(storage);
  }

  /** Removes a key inside a write transaction; a hashed storage key only if it really holds this key. */
  private remove(storage: string, key: string): true {
    if (!isHashedKey(storage) || this.dbs.longKeys.get(storage) === key) removeEntry(this.dbs, storage);
    return true;
  }

  private bury(storage: string, key: string): void {
    this.tombstones.set(storage, key);
    if (this.closed) return;
    this.tombstoneTimer ??= setTimeout(() => {
      this.tombstoneTimer = undefined;
      void this.retryDeletes();
    }, TOMBSTONE_RETRY_MS).unref();
  }

  /** Retries the deletes whose commit failed, in one transaction. */
  private async retryDeletes(): Promise<void> {
    if (this.tombstones.size === 0) return;
    const batch = [...this.tombstones];
    const done = await this.queue.run(null, 0, () => batch.every(([storage, key]) => this.remove(storage, key)));
    if (done === undefined) {
      if (!this.closed) for (const [storage, key] of batch) this.bury(storage, key);
      return;
    }
    for (const [storage, key] of batch) if (this.tombstones.get(storage) === key) this.tombstones.delete(storage);
  }

  keys(prefix: string): string[] {
    if (this.closed) return [];
    const out = new Set<string>();
    if (this.clearing === 0) {
      try {
        for (const key of storedKeys(this.dbs, prefix)) out.add(key);
      } catch (err) {
        this.counts.readFailures++;
        this.readFaults.fail({ err, prefix });
      }
    }
    for (const key of this.tombstones.values()) out.delete(key);
    for (const op of this.queue.pendingOps()) {
      if (!op.key.startsWith(prefix)) continue;
      if (op.record) out.add(op.key);
      else out.delete(op.key);
    }
    return [...out];
  }

  /** Keys of stored entries carrying surrogate key `tag` (for purge by tag). */
  keysForTag(tag: string): string[] {
    if (this.closed) return [];
    const out = new Set<string>();
    if (this.clearing === 0) {
      try {
        for (const key of storedKeysForTag(this.dbs, tag)) out.add(key);
      } catch (err) {
        this.counts.readFailures++;
        this.readFaults.fail({ err, tag });
      }
    }
    for (const key of this.tombstones.values()) out.delete(key);
    for (const op of this.queue.pendingOps()) {
      if (op.record?.kind === 'entry' && op.record.meta.tags.includes(tag)) out.add(op.key);
      else out.delete(op.key);
    }
    return [...out];
  }

  clear(): void {
    if (this.closed) return;
    this.queue.forgetPending();
    this.accessed.clear();
    this.decodedCache.clear();
    this.tombstones.clear();
    this.clearing++;
    void this.queue.run(null, 0, () => clearAll(this.dbs)).finally(() => this.clearing--);
  }

  stats(): LmdbTierStats {
    let entries = 0;
    let bytes = 0;
    let fileBytes = 0;
    let usedBytes = 0;
    if (!this.closed) {
      try {
        entries = readCount(this.dbs, INFO.entries);
        bytes = readCount(this.dbs, INFO.bytes);
        usedBytes = this.space.usedPages() * this.space.pageSize;
        fileBytes = this.space.fileSize();
      } catch {
        // Reported as zeros.
      }
    }
    return {
      name: this.name,
      entries,
      bytes,
      maxBytes: this.maxBytes,
      ...this.counts,
      writesPaused: this.pausedUntil > 0 ? 1 : 0,
      pendingWrites: this.queue.size,
      pendingBytes: this.queue.pendingBytes,
      usedBytes,
      fileBytes,
    };
  }

  /**
   * Resolves once every write queued so far has committed (or failed); never rejects. A commit is visible to
   * every process and survives a crash of this one; lmdb-js syncs it to the device right after (overlappingSync).
   * (lmdb-js's own `flushed` promise is not awaited: it never settles once a commit has failed.)
   */
  flushed(): Promise<void> {
    return this.queue.flushed();
  }

  /**
   * Writes the batched access times to the LRU index now. The transaction callbacks run on this thread, so the
   * times go in transactions of ATIME_BATCH, one after another: a flush of thousands never stalls the event
   * loop for more than one batch (~10 µs per access time). Resolves when every flush so far has committed.
   */
  flushAccessTimes(): Promise<void> {
    if (this.accessed.size > 0) {
      const rows = [...this.accessed];
      this.accessed = new Map();
      this.atimeFlush = this.atimeFlush.then(async () => {
        for (let i = 0; i < rows.length; i += ATIME_BATCH) {
          const batch = rows.slice(i, i + ATIME_BATCH);
          await this.queue.run(null, 0, () => applyAccessTimes(this.dbs, batch));
        }
      });
    }
    return this.atimeFlush;
  }

  /** One expiry sweep: removes entries past deletableAt, SWEEP_BATCH (200) per transaction. Resolves to how many. */
  sweep(): Promise<number> {
    if (this.closed) return Promise.resolve(0);
    this.sweeping ??= this.runSweep().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  /** Consistency check of the whole environment (diagnostics and tests; reads everything). */
  checkIntegrity(): IntegrityReport {
    return checkIntegrity(this.dbs);
  }

  /** Flushes access times and queued writes, stops the timers and closes the environment. */
  unready(): string | undefined {
    if (this.closed) return 'disk tier closed';
    if (this.filesystemFull) return 'disk tier cannot write: the filesystem is full';
    return undefined;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.tombstoneTimer);
    clearTimeout(this.pauseTimer);
    await this.sweeping;
    await this.retryDeletes();
    await this.flushAccessTimes();
    await this.queue.flushed();
    // lmdb-js's close() waits for the last commit's flush, which never comes if that commit failed: end on a
    // commit that succeeds (a tiny one, which usually fits in free pages even on a full disk), and bound the wait.
    if (this.lastCommitFailed) await this.queue.run(null, 0, () => this.dbs.info.putSync(INFO.format, FORMAT_VERSION));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), CLOSE_TIMEOUT_MS).unref();
    });
    try {
      const closed = this.dbs.env.close().then(() => 'closed' as const);
      if ((await Promise.race([closed, timeout])) === 'timeout') this.log.error({}, 'disk tier: the LMDB environment did not close in time');
    } catch (err) {
      this.log.error({ err }, 'disk tier: closing the LMDB environment failed');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Removes the chunks of fills that never finished, their writers being gone (see body-writer.ts). */
  removeAbandonedFills(isAlive: (pid: number) => boolean = processAlive): Promise<number> {
    let ids: number[];
    try {
      ids = abandonedFills(this.dbs, isAlive);
    } catch (err) {
      this.readFaults.fail({ err });
      return Promise.resolve(0);
    }
    if (ids.length === 0) return Promise.resolve(0);
    this.log.warn({ bodies: ids.length }, 'disk tier: removing the chunks of fills that never finished');
    return this.queue.run(null, 0, () => ids.reduce((n, id) => n + removeFill(this.dbs, id), 0)).then((n) => n ?? 0);
  }

  private async runSweep(): Promise<number> {
    await this.removeAbandonedFills();
    let total = 0;
    try {
      this.dbs.env.readerCheck(); // frees reader slots of dead processes, which would pin old pages
    } catch {
      // Not fatal.
    }
    while (!this.closed) {
      const now = this.now();
      let rows: Array<[number, string]>;
      try {
        rows = expiredRows(this.dbs, now, SWEEP_BATCH);
      } catch (err) {
        this.readFaults.fail({ err });
        break;
      }
      if (rows.length === 0) break;
      const result = await this.queue.run(null, 0, () => sweepRows(this.dbs, rows, now));
      if (result === undefined) break;
      const [removed, touched] = result;
      total += removed;
      this.counts.expired += removed;
      if (rows.length < SWEEP_BATCH || touched === 0) break;
    }
    return total;
  }

  /**
   * The body of a record just read, when it is not inline (see read()): a single chunk is read and copied, a
   * larger body is an LmdbBody that reads chunks on demand. With `lease`, the copy goes into a reusable buffer.
   */
  private openBody(storage: string, layout: BodyLayout, lease: boolean): Body {
    const { bodyId, length, chunkCount, chunkSize } = layout;
    if (length === 0) return Buffer.alloc(0);
    const body = new LmdbBody(this.dbs.bodies, bodyId, length, chunkSize, (id) => this.chunkMissing(storage, id));
    if (chunkCount === 1) {
      if (!lease || length > MAX_LEASED_BYTES) return body.readChunk(0);
      const chunk = this.dbs.bodies.getBinaryFast([bodyId, 0]);
      if (chunk === undefined || chunk.length !== length) return body.readChunk(0); // throws MissingChunkError
      return this.copyOut(chunk, 0, length, true);
    }
    if (!this.dbs.bodies.doesExist([bodyId, 0]) || !this.dbs.bodies.doesExist([bodyId, chunkCount - 1])) {
      throw new Error(`body ${bodyId} is missing chunks`);
    }
    return body;
  }

  /** `length` bytes of `source` from `offset`, as a private Buffer (leased from the pool with `lease`). */
  private copyOut(source: Buffer, offset: number, length: number, lease: boolean): Buffer {
    if (lease) return this.pool.copy(source, offset, length);
    const out = Buffer.allocUnsafeSlow(length);
    out.set(new Uint8Array(source.buffer, source.byteOffset + offset, length));
    return out;
  }

  /** A chunk vanished under a reader: corrupt if the record still points at that body, else a race. */
  private chunkMissing(storage: string, bodyId: number): void {
    // May run inside a write transaction (an overwrite copying a body): decide outside it.
    setImmediate(() => {
      if (this.closed || this.queue.pendingOp(storage)) return;
      try {
        const raw = this.dbs.meta.getBinary(storage);
        if (raw === undefined) return;
        const decoded = decodeRecord(raw);
        if (decoded.kind !== 'entry' || decoded.body.bodyId !== bodyId) return;
        this.markCorrupt(storage, decoded.key, new Error(`body ${bodyId} is missing chunks`));
      } catch (err) {
        this.markCorrupt(storage, storage, err);
      }
    });
  }

  private markCorrupt(storage: string, key: string, err: unknown): void {
    if (this.corrupt.has(storage)) return;
    this.corrupt.add(storage);
    this.counts.corruptRecords++;
    this.corruptLog.warn({ key, err });
    void this.queue.run({ storage, key, record: null }, 0, () => removeEntry(this.dbs, storage)).finally(() => this.corrupt.delete(storage));
  }

  private expire(storage: string, key: string): void {
    void this.queue
      .run({ storage, key, record: null }, 0, () => {
        const hk = readHousekeeping(this.dbs, storage);
        if (!hk || hk.d === null || hk.d >= this.now()) return false;
        removeEntry(this.dbs, storage, hk);
        return true;
      })
      .then((removed) => {
        if (removed) this.counts.expired++;
      });
  }

  /**
   * Decodes a meta value, or returns the decoding of the same bytes from a previous read: the header's checksum
   * and body id identify the version (every write takes a new body id), so a record rewritten by any process is
   * decoded afresh. Keeps hot disk hits from re-parsing JSON and rebuilding their wire headers.
   */
  private decode(storage: string, raw: Buffer): Decoded {
    const stamped = raw.length >= 16;
    const checksum = stamped ? raw.readUInt32LE(4) : -1;
    const bodyId = stamped ? raw.readDoubleLE(8) : -1;
    const cached = this.decodedCache.get(storage);
    if (cached !== undefined && cached.checksum === checksum && cached.bodyId === bodyId && cached.length === raw.length) return cached;
    const decoded: DecodedRecord = decodeRecord(raw);
    const entry = decoded.kind === 'entry';
    const layout = entry ? decoded.body : undefined;
    // Only what a hit needs is kept, in one object of a fixed shape: 4,096 of these stay in memory. (Not the decoded
    // record spread with more fields, `{ ...decoded, more }`: V8's optimized code gives each such object
    // a hidden class of its own.)
    const fresh: Decoded = {
      checksum,
      bodyId,
      length: raw.length,
      touchedAt: -Infinity,
      keyIsStorage: decoded.key === storage,
      vary: entry ? undefined : decoded.record,
      meta: entry ? decoded.meta : undefined,
      body: layout,
      deletableAt: entry ? decoded.meta.deletableAt : Infinity,
      inlineAt: layout?.inlineAt ?? -1,
      bodyLength: layout?.length ?? 0,
      key: decoded.key,
    };
    this.decodedCache.set(storage, fresh);
    if (fresh.meta !== undefined) this.versions.set(fresh.meta, bodyId);
    return fresh;
  }

  /**
   * Records an access for the LRU index. Access times only need a coarse resolution: a record touched again
   * within ATIME_RESOLUTION_MS is not written again, so a hot key costs one index update per interval.
   */
  private touch(storage: string, cached: Decoded, now: number): void {
    if (now - cached.touchedAt < ATIME_RESOLUTION_MS) return;
    cached.touchedAt = now;
    this.accessed.set(storage, now);
    if (this.accessed.size >= ATIME_MAX_PENDING) void this.flushAccessTimes();
  }
}
