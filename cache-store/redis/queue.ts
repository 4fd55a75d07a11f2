/**
 * The Redis tier's write queue: writes and deletes leave the response path here and are sent a few at a time
 * (`concurrency`). Operations on one key run one at a time, in the order queued; a write or delete of a key
 * that has not started yet is superseded by a later one of the same key (only the last matters). Until an
 * operation is done, the queue remembers what it will leave, so this process reads its own writes. The byte
 * bound is the tier's to check (pendingBytes) before it queues.
 */
import type { CacheRecord } from '../entry.js';

export interface QueuedOp {
  /** Keys the operation changes. */
  keys: readonly string[];
  /** What reads of those keys see until it is done: the record written, or null (deleted). */
  record: CacheRecord | null;
  /** Bytes charged against the queue's bound while it waits or runs. */
  bytes: number;
  /** Sends the operation; must not reject (the tier counts its own failures). */
  run(): Promise<void>;
}

interface Slot {
  op: QueuedOp;
  state: 'waiting' | 'running' | 'done';
  done: Promise<void>;
  finish: () => void;
}

/** Most waiting operations looked at per pump: a key blocked at the head does not cost a scan of the queue. */
const SCAN_LIMIT = 256;

export class RedisWriteQueue {
  private waiting: Slot[] = [];
  private head = 0;
  private running = 0;
  /** Keys with an operation running. */
  private readonly busy = new Set<string>();
  /** The last operation queued per key, while it is not done. */
  private readonly latest = new Map<string, Slot>();
  private readonly unfinished = new Set<Slot>();
  /** Bytes of operations queued and not done. */
  pendingBytes = 0;

  constructor(private readonly concurrency: number) {}

  /** Operations queued and not done. */
  get size(): number {
    return this.unfinished.size;
  }

  /** Queues an operation; resolves when it is done (or superseded before it started). */
  push(op: QueuedOp): Promise<void> {
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const slot: Slot = { op, state: 'waiting', done, finish };
    for (const key of op.keys) {
      const previous = this.latest.get(key);
      if (previous !== undefined && previous.state === 'waiting' && previous.op.keys.length === 1) this.settle(previous);
      this.latest.set(key, slot);
    }
    this.unfinished.add(slot);
    this.pendingBytes += op.bytes;
    this.waiting.push(slot);
    this.pump();
    return done;
  }

  /** What this process will leave under `key` once its queued operations are done: a record, null, or undefined (nothing queued). */
  pending(key: string): CacheRecord | null | undefined {
    return this.latest.get(key)?.op.record;
  }

  /** Keys with a queued operation, and what it leaves. */
  *pendingKeys(): Iterable<[string, CacheRecord | null]> {
    for (const [key, slot] of this.latest) yield [key, slot.op.record];
  }

  /**
   * Drops every operation that has not started (a clear supersedes them); returns the keys they would have
   * changed, and how many of them were writes.
   */
  dropWaiting(): { keys: string[]; writes: number } {
    const keys: string[] = [];
    let writes = 0;
    for (let i = this.head; i < this.waiting.length; i++) {
      const slot = this.waiting[i] as Slot;
      if (slot.state !== 'waiting') continue;
      keys.push(...slot.op.keys);
      if (slot.op.record !== null) writes++;
      this.settle(slot);
    }
    return { keys, writes };
  }

  /** Resolves once every operation queued so far is done. Never rejects. */
  async flushed(): Promise<void> {
    await Promise.all([...this.unfinished].map((slot) => slot.done));
  }

  private pump(): void {
    const blocked = new Set<string>();
    let scanned = 0;
    for (let i = this.head; i < this.waiting.length && this.running < this.concurrency && scanned < SCAN_LIMIT; i++) {
      const slot = this.waiting[i] as Slot;
      if (slot.state !== 'waiting') {
        if (i === this.head) this.head++;
        continue;
      }
      scanned++;
      // An earlier operation on one of its keys is running or waiting: keep the order.
      if (slot.op.keys.some((key) => this.busy.has(key) || blocked.has(key))) {
        for (const key of slot.op.keys) blocked.add(key);
        continue;
      }
      if (i === this.head) this.head++;
      this.start(slot);
    }
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
  }

  private start(slot: Slot): void {
    slot.state = 'running';
    this.running++;
    for (const key of slot.op.keys) this.busy.add(key);
    void slot.op
      .run()
      .catch(() => undefined)
      .then(() => {
        this.running--;
        for (const key of slot.op.keys) this.busy.delete(key);
        this.settle(slot);
        this.pump();
      });
  }

  private settle(slot: Slot): void {
    if (slot.state === 'done') return;
    slot.state = 'done';
    this.pendingBytes -= slot.op.bytes;
    this.unfinished.delete(slot);
    for (const key of slot.op.keys) if (this.latest.get(key) === slot) this.latest.delete(key);
    slot.finish();
  }
}
