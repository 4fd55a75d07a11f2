/**
 * The disk tier: one LMDB environment holding record metadata, bodies in chunks, and the indexes that keep the
 * byte budget (see docs/disk-tier.md). Reads are synchronous (memory-mapped); writes are queued as LMDB child
 * transactions, one per record, committed off the main thread, so `set` returns at once. Until a queued write
 * commits, this process answers `get` from the queue (read your own writes); other processes see it after.
 * Nothing here throws to the caller: failed writes, unreadable records and a broken environment are counted,
 * logged and turned into misses.
 */
import type CachePolicy from 'http-cache-semantics';
import { bodyChunks, type Body } from './body.js';
import { recordSize, type CacheRecord } from './entry.js';
import { LmdbBody } from './lmdb-body.js';
import { addCount, applyAccessTimes, EMPTY, evict, expiredRows, readCount, readHousekeeping, removeEntry, sweepRows } from './lmdb-budget.js';
import { checkIntegrity, type IntegrityReport } from './lmdb-check.js';
import {
  chunkCountFor,
  decodeRecord,
  finishRecord,
  INFO,
  isHashedKey,
  prepareRecord,
  storageKey,
  type BodyLayout,
  type Housekeeping,
  type PreparedRecord,
} from './lmdb-codec.js';
import { clearAll, openEnvironment, type LmdbDbs, type TierLogger } from './lmdb-env.js';
import type { SyncCacheTier, TierStats } from './tier.js';

export type { TierLogger } from './lmdb-env.js';
export type { IntegrityReport } from './lmdb-check.js';

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

const DEFAULT_CHUNK_SIZE = 256 * 1024;
const DEFAULT_SWEEP_INTERVAL_MS = 30_000;
const DEFAULT_ATIME_FLUSH_MS = 5_000;
const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** After an eviction the budget is filled to this fraction, so that not every write evicts. */
const LOW_WATER = 0.95;
/** Most entries one write transaction evicts. */
const EVICT_MAX_PER_WRITE = 1_000;
/** Entries removed per sweep transaction. */
const SWEEP_BATCH = 500;
/** Pending access times that trigger an early flush. */
const ATIME_MAX_PENDING = 10_000;

interface PendingOp {
  seq: number;
  key: string;
  /** The record being written, or null for a delete. */
  record: CacheRecord | null;
}

interface WriteResult {
  stored: boolean;
  evicted: number;
}

export class LmdbTier implements SyncCacheTier {
  readonly name = 'disk';
  readonly synchronous = true;
  readonly maxBytes: number;
  private readonly dbs: LmdbDbs;
  private readonly chunkSize: number;
  private readonly now: () => number;
  private readonly log: TierLogger;
  private readonly restorePolicy: LmdbTierOptions['restorePolicy'];
  private readonly maxPendingBytes: number;
  /** Queued writes and deletes by storage key, for read-your-writes until they commit. */
  private readonly pending = new Map<string, PendingOp>();
  private readonly inflight = new Set<Promise<unknown>>();
  /** Storage keys found corrupt whose removal is queued (counted once). */
  private readonly corrupt = new Set<string>();
  /** Access times not yet written to the LRU index. */
  private accessed = new Map<string, number>();
  private pendingBytes = 0;
  private seq = 0;
  private clearing = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private sweeping: Promise<number> | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly counts = { evictions: 0, writeFailures: 0, writesDeclined: 0, corruptRecords: 0, expired: 0, readFailures: 0 };
  private readonly writeFaults: BurstLog;
  private readonly declines: BurstLog;
  private readonly readFaults: BurstLog;
  private readonly corruptLog: RateLog;

  constructor(options: LmdbTierOptions) {
    this.maxBytes = options.maxBytes;
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.now = options.now;
    this.log = options.log;
    this.restorePolicy = options.restorePolicy;
    this.maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    if (!(this.chunkSize >= 1024 && this.chunkSize <= 64 * 1024 * 1024)) throw new RangeError('chunkSize must be between 1 KiB and 64 MiB');
    this.writeFaults = new BurstLog(this.log, 'error', 'disk tier: writes are failing; those entries are not stored (failures are counted, not each logged)');
    this.declines = new BurstLog(this.log, 'warn', 'disk tier: write queue full; declining writes until it drains');
    this.readFaults = new BurstLog(this.log, 'error', 'disk tier: reads are failing; answering misses');
    this.corruptLog = new RateLog(this.log, 'disk tier: unreadable record; deleted (counted in corruptRecords)');
    this.dbs = openEnvironment({ path: options.path, log: this.log, ...(options.mapSize !== undefined ? { mapSize: options.mapSize } : {}) });
    const sweepMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    if ((options.sweeper ?? true) && sweepMs > 0) {
      this.timers.push(setInterval(() => void this.sweep(), sweepMs).unref());
    }
    const atimeMs = options.atimeFlushMs ?? DEFAULT_ATIME_FLUSH_MS;
    if (atimeMs > 0) this.timers.push(setInterval(() => void this.flushAccessTimes(), atimeMs).unref());
  }

  get(key: string): CacheRecord | undefined {
    if (this.closed) return undefined;
    const storage = storageKey(key);
    const op = this.pending.get(storage);
    if (op !== undefined) return op.key === key ? (op.record ?? undefined) : undefined;
    if (this.clearing > 0) return undefined;
    let raw: Buffer | undefined;
    try {
      raw = this.dbs.meta.getBinary(storage);
    } catch (err) {
      this.counts.readFailures++;
      this.readFaults.fail({ err, key });
      return undefined;
    }
    if (raw === undefined) return undefined;
    let record: CacheRecord;
    try {
      const decoded = decodeRecord(raw);
      if (decoded.key !== key) {
        // A hashed key shared with another key (sha256 collision: not expected) is a plain miss.
        if (isHashedKey(storage)) return undefined;
        throw new Error(`stored under ${JSON.stringify(key)} but records ${JSON.stringify(decoded.key)}`);
      }
      if (decoded.kind === 'vary') {
        record = decoded.record;
      } else {
        if (decoded.meta.deletableAt < this.now()) {
          this.expire(storage, key);
          return undefined;
        }
        const policy = this.restorePolicy(decoded.policy);
        record = { kind: 'entry', meta: decoded.meta, body: this.openBody(storage, decoded.body), policy };
      }
    } catch (err) {
      this.markCorrupt(storage, key, err);
      return undefined;
    }
    this.readFaults.ok();
    this.touch(storage);
    return record;
  }

  /** Queues the write and returns true; false when declined (see LmdbTierStats.writesDeclined). */
  set(key: string, record: CacheRecord): boolean {
    if (this.closed) return false;
    const size = recordSize(record);
    if (size > this.maxBytes || (record.kind === 'entry' && record.meta.deletableAt < this.now())) {
      this.counts.writesDeclined++;
      return false;
    }
    if (this.pendingBytes > 0 && this.pendingBytes + size > this.maxPendingBytes) {
      this.counts.writesDeclined++;
      this.declines.fail({ key, pendingBytes: this.pendingBytes });
      return false;
    }
    this.declines.ok();
    let storage: string;
    let prepared: PreparedRecord;
    try {
      storage = storageKey(key);
      prepared = prepareRecord(key, record, size, this.chunkSize);
    } catch (err) {
      this.counts.writesDeclined++;
      this.log.warn({ err, key }, 'disk tier: record cannot be encoded; not stored');
      return false;
    }
    const source = record.kind === 'entry' && record.body instanceof LmdbBody && record.body.isIn(this.dbs.bodies) ? record.body.bodyId : -1;
    void this.enqueue({ storage, key, record }, size, () => this.write(storage, key, record, prepared, size, source)).then((result) => {
      if (result === undefined) return;
      this.counts.evictions += result.evicted;
      if (!result.stored) this.counts.writesDeclined++;
    });
    return true;
  }

  delete(key: string): void {
    if (this.closed) return;
    const storage = storageKey(key);
    void this.enqueue({ storage, key, record: null }, 0, () => {
      // A hashed storage key is only removed if it really holds this key.
      if (!isHashedKey(storage) || this.dbs.longKeys.get(storage) === key) removeEntry(this.dbs, storage);
    });
  }

  keys(prefix: string): string[] {
    if (this.closed) return [];
    const out = new Set<string>();
    if (this.clearing === 0) {
      try {
        for (const key of this.dbs.meta.getKeys({ ...(prefix ? { start: prefix } : {}), snapshot: false })) {
          if (typeof key !== 'string' || isHashedKey(key)) continue;
          if (!key.startsWith(prefix)) break;
          out.add(key);
        }
        for (const { value } of this.dbs.longKeys.getRange({ snapshot: false })) if (value.startsWith(prefix)) out.add(value);
      } catch (err) {
        this.counts.readFailures++;
        this.readFaults.fail({ err, prefix });
      }
    }
    for (const op of this.pending.values()) {
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
        for (const storage of this.dbs.tags.getValues(storageKey(tag))) {
          const key = isHashedKey(storage) ? this.dbs.longKeys.get(storage) : storage;
          if (key !== undefined && this.dbs.meta.doesExist(storage)) out.add(key);
        }
      } catch (err) {
        this.counts.readFailures++;
        this.readFaults.fail({ err, tag });
      }
    }
    for (const op of this.pending.values()) {
      if (op.record?.kind === 'entry' && op.record.meta.tags.includes(tag)) out.add(op.key);
      else out.delete(op.key);
    }
    return [...out];
  }

  clear(): void {
    if (this.closed) return;
    this.pending.clear();
    this.accessed.clear();
    this.clearing++;
    void this.enqueue(null, 0, () => clearAll(this.dbs)).finally(() => this.clearing--);
  }

  stats(): LmdbTierStats {
    let entries = 0;
    let bytes = 0;
    let fileBytes = 0;
    if (!this.closed) {
      try {
        entries = readCount(this.dbs, INFO.entries);
        bytes = readCount(this.dbs, INFO.bytes);
        const env = this.dbs.env.getStats() as { lastPageNumber?: number; pageSize?: number };
        fileBytes = ((env.lastPageNumber ?? -1) + 1) * (env.pageSize ?? 0);
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
      pendingWrites: this.inflight.size,
      pendingBytes: this.pendingBytes,
      fileBytes,
    };
  }

  /** Resolves once every write queued so far has committed (or failed). */
  async flushed(): Promise<void> {
    await Promise.all([...this.inflight]);
  }

  /** Writes the batched access times to the LRU index now. */
  flushAccessTimes(): Promise<void> {
    if (this.accessed.size === 0) return Promise.resolve();
    const batch = this.accessed;
    this.accessed = new Map();
    return this.enqueue(null, 0, () => applyAccessTimes(this.dbs, batch)).then(() => undefined);
  }

  /** One expiry sweep: removes entries past deletableAt in batches of 500. Resolves to how many. */
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
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.sweeping;
    await this.flushAccessTimes();
    await this.flushed();
    try {
      await this.dbs.env.close();
    } catch (err) {
      this.log.error({ err }, 'disk tier: closing the LMDB environment failed');
    }
  }

  private async runSweep(): Promise<number> {
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
      const result = await this.enqueue(null, 0, () => sweepRows(this.dbs, rows, now));
      if (result === undefined) break;
      const [removed, touched] = result;
      total += removed;
      this.counts.expired += removed;
      if (rows.length < SWEEP_BATCH || touched === 0) break;
    }
    return total;
  }

  /** The write transaction of one record: make room, copy the body, replace the old record, index it. */
  private write(storage: string, key: string, record: CacheRecord, prepared: PreparedRecord, size: number, source: number): WriteResult {
    const { dbs } = this;
    const now = this.now();
    const old = readHousekeeping(dbs, storage);
    const oldSize = old ? old.s : 0;
    let evicted = 0;
    if (readCount(dbs, INFO.bytes) - oldSize + size > this.maxBytes) {
      const target = Math.max(0, Math.floor(this.maxBytes * LOW_WATER) - size) + oldSize;
      evicted = evict(dbs, { target, now, exclude: storage, protectBodyId: source, maxEntries: EVICT_MAX_PER_WRITE });
      // Not enough room even so: keep the evictions, skip this record.
      if (readCount(dbs, INFO.bytes) - oldSize + size > this.maxBytes) return { stored: false, evicted };
    }
    let bodyId = 0;
    let chunkCount = 0;
    if (record.kind === 'entry') {
      bodyId = Math.max(1, readCount(dbs, INFO.nextBodyId));
      dbs.info.putSync(INFO.nextBodyId, bodyId + 1);
      chunkCount = this.writeChunks(bodyId, record.body);
    }
    // The old record goes after the copy: an overwrite may be re-storing the body it is replacing.
    if (old !== undefined) removeEntry(dbs, storage, old ?? undefined);
    dbs.meta.putSync(storage, finishRecord(prepared, bodyId));
    const deletable = record.kind === 'entry' && Number.isFinite(record.meta.deletableAt) ? record.meta.deletableAt : null;
    const tags = record.kind === 'entry' ? [...new Set(record.meta.tags.map(storageKey))] : [];
    const hk: Housekeeping = { a: now, s: size, b: bodyId, c: chunkCount, d: deletable, t: tags };
    dbs.atime.putSync(storage, hk);
    dbs.lru.putSync([now, storage], EMPTY);
    if (deletable !== null) dbs.expiry.putSync([deletable, storage], EMPTY);
    for (const tag of tags) dbs.tags.putSync(tag, storage);
    if (isHashedKey(storage)) dbs.longKeys.putSync(storage, key);
    addCount(dbs, INFO.bytes, size);
    addCount(dbs, INFO.entries, 1);
    return { stored: true, evicted };
  }

  /** Writes a body as chunkSize pieces; never holds more than one chunk of its own. Returns the chunk count. */
  private writeChunks(bodyId: number, body: Body): number {
    const size = this.chunkSize;
    let staging: Buffer | undefined;
    let fill = 0;
    let index = 0;
    let total = 0;
    // putSync inside a write transaction copies the value into the transaction at once, so staging is reused.
    for (const part of bodyChunks(body)) {
      total += part.length;
      let offset = 0;
      while (offset < part.length) {
        if (fill === 0 && part.length - offset >= size) {
          this.dbs.bodies.putSync([bodyId, index++], part.subarray(offset, offset + size));
          offset += size;
          continue;
        }
        staging ??= Buffer.allocUnsafe(size);
        const copied = part.copy(staging, fill, offset, Math.min(part.length, offset + size - fill));
        fill += copied;
        offset += copied;
        if (fill === size) {
          this.dbs.bodies.putSync([bodyId, index++], staging);
          fill = 0;
        }
      }
    }
    if (fill > 0 && staging) this.dbs.bodies.putSync([bodyId, index++], staging.subarray(0, fill));
    if (total !== body.length || index !== chunkCountFor(body.length, size)) throw new Error(`body yielded ${total} bytes, expected ${body.length}`);
    return index;
  }

  private openBody(storage: string, layout: BodyLayout): Body {
    const { bodyId, length, chunkCount, chunkSize } = layout;
    if (length === 0) return Buffer.alloc(0);
    const onMissing = (id: number): void => this.chunkMissing(storage, id);
    const body = new LmdbBody(this.dbs.bodies, bodyId, length, chunkSize, onMissing);
    if (chunkCount === 1) return body.readChunk(0);
    if (!this.dbs.bodies.doesExist([bodyId, 0]) || !this.dbs.bodies.doesExist([bodyId, chunkCount - 1])) {
      throw new Error(`body ${bodyId} is missing chunks`);
    }
    return body;
  }

  /** A chunk vanished under a reader: corrupt if the record still points at that body, else a race. */
  private chunkMissing(storage: string, bodyId: number): void {
    // May run inside a write transaction (copying a body): decide outside it.
    setImmediate(() => {
      if (this.closed || this.pending.has(storage)) return;
      const raw = this.dbs.meta.getBinary(storage);
      if (raw === undefined) return;
      try {
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
    void this.enqueue({ storage, key, record: null }, 0, () => removeEntry(this.dbs, storage)).finally(() => this.corrupt.delete(storage));
  }

  private expire(storage: string, key: string): void {
    if (this.pending.has(storage)) return;
    this.counts.expired++;
    void this.enqueue({ storage, key, record: null }, 0, () => {
      const hk = readHousekeeping(this.dbs, storage);
      if (hk && hk.d !== null && hk.d < this.now()) removeEntry(this.dbs, storage, hk);
    });
  }

  private touch(storage: string): void {
    this.accessed.set(storage, this.now());
    if (this.accessed.size >= ATIME_MAX_PENDING) void this.flushAccessTimes();
  }

  /**
   * Queues `work` as its own child transaction: it commits with whatever else is queued, but if it throws only
   * its own changes are rolled back. Resolves to its result, or undefined when it threw or the commit failed;
   * never rejects (lmdb-js's commit errors, including `commitError`, are all handled here).
   */
  private enqueue<T>(op: { storage: string; key: string; record: CacheRecord | null } | null, size: number, work: () => T): Promise<T | undefined> {
    const seq = ++this.seq;
    if (op) this.pending.set(op.storage, { seq, key: op.key, record: op.record });
    this.pendingBytes += size;
    let started: Promise<T>;
    try {
      started = this.dbs.env.childTransaction(work);
    } catch (err) {
      started = Promise.reject(err);
    }
    const done = started.then(
      (result) => {
        this.writeFaults.ok();
        return result;
      },
      (err: unknown) => {
        const commitError = (err as { commitError?: unknown } | null)?.commitError;
        if (commitError instanceof Promise) commitError.catch(() => undefined);
        this.counts.writeFailures++;
        this.writeFaults.fail({ err, key: op?.key });
        return undefined;
      },
    );
    const tracked = done.finally(() => {
      this.pendingBytes -= size;
      if (op && this.pending.get(op.storage)?.seq === seq) this.pending.delete(op.storage);
      this.inflight.delete(tracked);
    });
    this.inflight.add(tracked);
    return tracked;
  }
}

/** Logs the first failure of a burst (and a reminder each minute while it lasts), then one line on recovery. */
class BurstLog {
  private failures = 0;
  private lastLogged = 0;

  constructor(
    private readonly log: TierLogger,
    private readonly level: 'error' | 'warn',
    private readonly message: string,
  ) {}

  fail(fields: Record<string, unknown>): void {
    this.failures++;
    const now = Date.now();
    if (this.failures === 1 || now - this.lastLogged >= 60_000) {
      this.lastLogged = now;
      this.log[this.level]({ ...fields, failuresInBurst: this.failures }, this.message);
    }
  }

  ok(): void {
    if (this.failures === 0) return;
    this.log.info({ failures: this.failures }, `${this.message}: recovered`);
    this.failures = 0;
  }
}

/** Logs each event, at most `limit` per minute; the lines after that are counted in the next one logged. */
class RateLog {
  private windowStart = 0;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly log: TierLogger,
    private readonly message: string,
    private readonly limit = 10,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.windowStart >= 60_000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (++this.inWindow > this.limit) {
      this.suppressed++;
      return;
    }
    this.log.warn(this.suppressed > 0 ? { ...fields, suppressed: this.suppressed } : fields, this.message);
    this.suppressed = 0;
  }
}
