/**
 * The disk tier's write queue. Each operation is an lmdb-js child transaction: it commits together with
 * whatever else is in flight (one fsync for many writes), but if it throws only its own changes roll back.
 * At most maxBatchBytes of writes are handed to lmdb-js at a time; the rest wait here, in order. That bounds
 * one LMDB transaction, and so how far the data file grows past the budget (pages a transaction frees are
 * reused only by later transactions). Until an operation commits, the queue remembers what it will write, so
 * this process reads its own writes.
 */
import type { RootDatabase } from 'lmdb';
import type { CacheRecord } from '../entry.js';

/** A queued write (record) or delete (null) of one storage key. */
export interface PendingOp {
  storage: string;
  key: string;
  record: CacheRecord | null;
}

export interface WriteQueueOptions {
  /** Most bytes handed to lmdb-js at a time (read for each operation: the disk tier lowers it on a full disk). */
  maxBatchBytes(): number;
  /** A committed operation (to end a failure burst). */
  onCommit(): void;
  /** An operation that threw or whose commit failed; it left nothing behind. */
  onFailure(err: unknown, op: PendingOp | null): void;
  /**
   * Runs inside each operation's transaction before its work, with the operation's size (bytes): may throw to
   * roll the operation back before it writes anything (the disk tier checks there that the file has room).
   */
  beforeWork?(size: number): void;
}

export class WriteQueue {
  private readonly pending = new Map<string, PendingOp & { seq: number }>();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly waiting: Array<{ size: number; start: () => void }> = [];
  private seq = 0;
  /** Bytes of operations queued and not yet committed. */
  pendingBytes = 0;
  /** Bytes of operations handed to lmdb-js and not yet committed. */
  private batchBytes = 0;

  constructor(
    private readonly env: RootDatabase,
    private readonly options: WriteQueueOptions,
  ) {}

  /** Operations queued and not yet finished. */
  get size(): number {
    return this.inflight.size;
  }

  /** Bytes of operations handed to lmdb-js and not yet committed: at most what one transaction carries. */
  get inflightBytes(): number {
    return this.batchBytes;
  }

  /** The queued operation on a storage key, if any. */
  pendingOp(storage: string): PendingOp | undefined {
    return this.pending.get(storage);
  }

  pendingOps(): IterableIterator<PendingOp> {
    return this.pending.values();
  }

  /** Forgets queued operations for reads (after a queued clear, nothing before it is visible). */
  forgetPending(): void {
    this.pending.clear();
  }

  /**
   * Queues `work` (run inside the transaction, on this thread). Resolves to its result, or undefined when it
   * threw or the commit failed; never rejects: lmdb-js's commit errors (and their `commitError` promises) are
   * all handled here, since an unhandled rejection would end the process.
   */
  run<T>(op: PendingOp | readonly PendingOp[] | null, size: number, work: () => T, batchCost = size): Promise<T | undefined> {
    const seq = ++this.seq;
    // Several keys for one operation (deleteMany): each is read as this operation's until it finishes.
    const ops: readonly PendingOp[] = op === null ? [] : 'storage' in op ? [op] : op;
    for (const each of ops) this.pending.set(each.storage, { ...each, seq });
    this.pendingBytes += size;
    const result = new Promise<T | undefined>((resolve) => {
      const start = (): void => {
        this.batchBytes += batchCost;
        let started: Promise<T>;
        const { beforeWork } = this.options;
        try {
          started = this.env.childTransaction(
            beforeWork === undefined
              ? work
              : () => {
                  beforeWork(size);
                  return work();
                },
          );
        } catch (err) {
          started = Promise.reject(err);
        }
        void started
          .then(
            (value) => {
              this.options.onCommit();
              return value;
            },
            (err: unknown) => {
              const commitError = (err as { commitError?: unknown } | null)?.commitError;
              if (commitError instanceof Promise) commitError.catch(() => undefined);
              this.options.onFailure(err, ops[0] ?? null);
              return undefined;
            },
          )
          .then((value) => {
            this.batchBytes -= batchCost;
            this.startWaiting();
            resolve(value);
          });
      };
      if (this.waiting.length === 0 && this.hasRoom(batchCost)) start();
      else this.waiting.push({ size: batchCost, start });
    });
    const tracked = result.finally(() => {
      this.pendingBytes -= size;
      for (const each of ops) if (this.pending.get(each.storage)?.seq === seq) this.pending.delete(each.storage);
      this.inflight.delete(tracked);
    });
    this.inflight.add(tracked);
    return tracked;
  }

  /** Resolves once every operation queued so far has finished. */
  async flushed(): Promise<void> {
    await Promise.all([...this.inflight]);
  }

  private hasRoom(size: number): boolean {
    return this.batchBytes === 0 || this.batchBytes + size <= this.options.maxBatchBytes();
  }

  private startWaiting(): void {
    for (let next = this.waiting[0]; next !== undefined && this.hasRoom(next.size); next = this.waiting[0]) {
      this.waiting.shift();
      next.start();
    }
  }
}
