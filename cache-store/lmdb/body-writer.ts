/**
 * A body written to the disk tier while it streams from the origin (objects larger than the memory tier takes):
 * chunk by chunk, each chunk its own small write (LMDB has one writer: a fill that streams for minutes must not
 * hold it), under a body id of its own. A marker in `info` (`fill:<bodyId>` → the writing process's pid) says
 * the body is not complete: no record points at it until the final record is written (LmdbTier.finishStream),
 * which removes the marker in the same transaction. Chunks of a fill that never finished (aborted, or its
 * process died) are removed by removeAbandonedFills, at open and on each sweep.
 *
 * While it streams, read(offset) returns any byte received so far (from the chunks not yet committed, which it
 * holds, or from LMDB once they are), so that a client slower than the origin reads at its own pace from the
 * disk instead of holding the fill back or buffering the object in memory.
 *
 * Such readers retain the writer (retain/release): a write that fails (a full disk) or a body that is not stored
 * after all (too large, purged, declined) must not pull the bytes from under a response in flight. After a
 * failure or stop() the chunks already written stay where they are, the ones that failed and any appended later
 * are held in memory (the fill pauses its origin meanwhile, so they are few), and abort() removes them only once
 * the last reader has let go.
 */
import { readCount } from './budget.js';
import type { LmdbDbs } from './env.js';
import { INFO } from './layout.js';
import type { WriteQueue } from './queue.js';

/** Prefix of the `info` keys that mark bodies being written. */
const FILL_PREFIX = 'fill:';

/** Most bytes of chunks queued and not yet committed before the writer asks its producer to wait (drained()). */
export const WRITER_BACKLOG_LIMIT = 8 * 1024 * 1024;

export class DiskBodyWriter {
  /** Known once the first write (which allocates it) has run; 0 before. */
  bodyId = 0;
  /** Bytes appended so far. */
  received = 0;
  /** Chunks handed to the queue. */
  private chunkCount = 0;
  private staging: Buffer | undefined;
  private fill = 0;
  /** Chunks queued and not yet committed, by index: read from here until LMDB has them. */
  private readonly pending = new Map<number, Buffer>();
  private pendingBytes = 0;
  private waiters: Array<() => void> = [];
  /** failed: a write failed or stop() was called; nothing more is written, what was appended stays readable. */
  private state: 'writing' | 'failed' | 'finished' | 'aborted' = 'writing';
  /** Responses reading the body back (retain/release): abort() waits for them. */
  private readers = 0;
  private abortWanted = false;
  private failed: (() => void) | undefined;
  /** Resolves once every chunk queued so far has committed (or failed). */
  private last: Promise<unknown>;

  constructor(
    private readonly dbs: LmdbDbs,
    private readonly queue: WriteQueue,
    readonly chunkSize: number,
  ) {
    this.last = this.queue.run(null, 0, () => {
      const id = Math.max(1, readCount(this.dbs, INFO.nextBodyId));
      this.dbs.info.putSync(INFO.nextBodyId, id + 1);
      this.dbs.info.putSync(FILL_PREFIX + id, process.pid);
      this.bodyId = id;
      return true;
    }).then((ok) => {
      if (ok === undefined) this.fail();
    });
  }

  /** `callback` runs once, when a write fails (the body cannot be stored; see onWriteFailed in OriginFill). */
  onFailure(callback: () => void): void {
    this.failed = callback;
  }

  private fail(): void {
    if (this.state !== 'writing') return;
    this.state = 'failed';
    const failed = this.failed;
    this.failed = undefined;
    failed?.();
  }

  /** Writes nothing more (the body will not be stored); what was appended stays readable for the readers. */
  stop(): void {
    if (this.state === 'writing') this.state = 'failed';
    this.failed = undefined;
  }

  /** A response starts reading the body back (read): abort() waits until it releases. */
  retain(): void {
    this.readers++;
  }

  release(): void {
    this.readers--;
    if (this.readers === 0 && this.abortWanted) {
      this.abortWanted = false;
      this.abort();
    }
  }

  /** Whether every write so far succeeded (a failed one means the body cannot be stored). */
  get ok(): boolean {
    return this.state === 'writing' || this.state === 'finished';
  }

  /** Bytes queued and not yet committed. */
  get backlog(): number {
    return this.pendingBytes;
  }

  /**
   * Appends the next bytes of the body (copied: `bytes` may be reused by its owner). After a failure or stop()
   * they are only held in memory, for readers behind (the caller appends only while there are some).
   */
  append(bytes: Buffer): void {
    if (this.state !== 'writing' && this.state !== 'failed') return;
    this.received += bytes.length;
    let offset = 0;
    while (offset < bytes.length) {
      this.staging ??= Buffer.allocUnsafeSlow(this.chunkSize);
      const copied = bytes.copy(this.staging, this.fill, offset, Math.min(bytes.length, offset + this.chunkSize - this.fill));
      this.fill += copied;
      offset += copied;
      if (this.fill === this.chunkSize) this.flushStaging();
    }
  }

  /** Queues the chunk being filled (a whole one, or the last, shorter one). */
  private flushStaging(): void {
    const staging = this.staging;
    if (staging === undefined || this.fill === 0) return;
    const chunk = this.fill === this.chunkSize ? staging : staging.subarray(0, this.fill);
    this.staging = undefined;
    this.fill = 0;
    const index = this.chunkCount++;
    this.pending.set(index, chunk);
    this.pendingBytes += chunk.length;
    // Writes stopped: held for the readers only.
    if (this.state !== 'writing') return;
    this.last = this.queue
      .run(null, chunk.length, () => {
        if (this.bodyId === 0) throw new Error('disk tier: body id not allocated');
        this.dbs.bodies.putSync([this.bodyId, index], chunk);
        return true;
      })
      .then((ok) => {
        // A chunk that failed stays in memory: a reader behind may still need it (until abort).
        if (ok === undefined) return this.fail();
        if (this.pending.delete(index)) this.pendingBytes -= chunk.length;
        if (this.pendingBytes <= WRITER_BACKLOG_LIMIT / 2) this.wake();
      });
  }

  /** Calls `resume` once the backlog is down to half the limit (at once if it is). */
  drained(resume: () => void): void {
    if (this.pendingBytes <= WRITER_BACKLOG_LIMIT / 2) resume();
    else this.waiters.push(resume);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resume of waiters) resume();
  }

  /**
   * Bytes of the body from `offset` to the end of its chunk (or of what has been received), or undefined when
   * they are not there (not received yet, or a chunk that is gone: the fill failed or the entry was removed).
   */
  read(offset: number): Buffer | undefined {
    if (offset >= this.received) return undefined;
    const index = Math.floor(offset / this.chunkSize);
    const within = offset - index * this.chunkSize;
    if (index === this.chunkCount) return this.staging?.subarray(within, this.fill);
    const pending = this.pending.get(index);
    if (pending !== undefined) return pending.subarray(within);
    if (this.bodyId === 0) return undefined;
    const chunk = this.dbs.bodies.getBinary([this.bodyId, index]);
    return chunk?.subarray(within);
  }

  /**
   * The body is complete: queues its last chunk and resolves once every chunk has committed, to the chunk
   * count, or undefined when a write failed (then the chunks are removed).
   */
  async complete(): Promise<number | undefined> {
    if (this.state !== 'writing') {
      this.abort();
      return undefined;
    }
    this.flushStaging();
    await this.last;
    if (this.state !== 'writing') {
      this.abort();
      return undefined;
    }
    this.state = 'finished';
    return this.chunkCount;
  }

  /** Removes what was written (the fill failed, or its record was not stored), once no reader needs it. */
  abort(): void {
    if (this.state === 'aborted') return;
    if (this.readers > 0) {
      this.stop();
      this.abortWanted = true;
      return;
    }
    this.state = 'aborted';
    this.staging = undefined;
    this.pending.clear();
    this.pendingBytes = 0;
    this.wake();
    const count = this.chunkCount;
    void this.last.then(() =>
      this.queue.run(null, 0, () => {
        if (this.bodyId === 0) return;
        for (let i = 0; i < count; i++) this.dbs.bodies.removeSync([this.bodyId, i]);
        this.dbs.info.removeSync(FILL_PREFIX + this.bodyId);
      }),
    );
  }
}

/** The `info` key marking body `bodyId` as being written; removed with the final record (inside its transaction). */
export function fillMarker(bodyId: number): string {
  return FILL_PREFIX + bodyId;
}

/**
 * Bodies being written by processes that are not alive (a crash mid-fill). At open a process also counts its own
 * pid as gone (it has started no fill yet, and a pid is reused across restarts, in a container especially).
 */
export function abandonedFills(dbs: LmdbDbs, isAlive: (pid: number) => boolean): number[] {
  const out: number[] = [];
  for (const { key, value } of dbs.info.getRange({ start: FILL_PREFIX, end: 'fill;' })) {
    const bodyId = Number(String(key).slice(FILL_PREFIX.length));
    if (!Number.isSafeInteger(bodyId)) continue;
    if (typeof value !== 'number' || !isAlive(value)) out.push(bodyId);
  }
  return out;
}

/** Removes an abandoned body's chunks and marker (inside a write transaction). Returns how many chunks. */
export function removeFill(dbs: LmdbDbs, bodyId: number): number {
  let removed = 0;
  for (const key of dbs.bodies.getKeys({ start: [bodyId, 0], end: [bodyId + 1, 0] })) {
    dbs.bodies.removeSync(key);
    removed++;
  }
  dbs.info.removeSync(FILL_PREFIX + bodyId);
  return removed;
}

/** Whether a process with this pid is alive (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
