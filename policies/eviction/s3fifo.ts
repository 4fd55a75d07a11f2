import { BasePolicy } from './base-policy.js';
import { EntryList, type PolicyEntry } from './entry-list.js';
import type { EvictionPolicyOptions } from './policy.js';

const SMALL = 1;
const MAIN = 2;
const MAX_FREQUENCY = 3;

export interface S3FifoOptions extends EvictionPolicyOptions {
  /** Share of maxBytes for the small FIFO. Default 0.1. */
  smallFraction?: number;
  /** Bytes of remembered (ghost) keys, as a share of maxBytes. Default 0.9 (as many as main holds). */
  ghostFraction?: number;
}

/**
 * S3-FIFO (Yang et al., SOSP 2023): three FIFO queues and a 2-bit access counter per entry.
 *
 * New keys enter the small FIFO (10%), or main directly when remembered by the ghost FIFO or when
 * at least as big as the small FIFO. Leaving small, a key that was hit at least once moves to main
 * (libCacheSim's move-to-main threshold of 1); the rest are evicted and remembered as ghosts
 * ("quick demotion" of one-hit wonders). Main is a CLOCK: a key with a non-zero counter is
 * reinserted with the counter decremented, one with zero is evicted. Hits only bump the counter.
 */
export class S3FifoPolicy extends BasePolicy {
  readonly name = 's3fifo' as const;
  private readonly small = new EntryList();
  private readonly main = new EntryList();
  private readonly ghost = new EntryList();
  private readonly ghostIndex = new Map<string, PolicyEntry>();
  private readonly smallMax: number;
  private readonly ghostMax: number;

  constructor(options: S3FifoOptions) {
    super(options);
    const smallFraction = options.smallFraction ?? 0.1;
    const ghostFraction = options.ghostFraction ?? 0.9;
    if (!(smallFraction > 0 && smallFraction < 1) || !(ghostFraction >= 0)) {
      throw new RangeError('smallFraction must be within (0, 1) and ghostFraction >= 0');
    }
    this.smallMax = this.maxBytes * smallFraction;
    this.ghostMax = this.maxBytes * ghostFraction;
  }

  /** Keys per queue, oldest first (allocates; for tests and debugging). */
  queues(): { small: string[]; main: string[]; ghost: string[] } {
    return { small: this.small.keys(), main: this.main.keys(), ghost: this.ghost.keys() };
  }

  protected override onAccess(entry: PolicyEntry): void {
    if (entry.freq < MAX_FREQUENCY) entry.freq++;
  }

  protected override link(entry: PolicyEntry, evicted: string[]): void {
    this.makeRoom(evicted);
    entry.freq = 0;
    const ghost = this.ghostIndex.get(entry.key);
    if (ghost !== undefined) {
      this.forgetGhost(ghost);
      this.pushTo(MAIN, entry);
    } else {
      this.pushTo(entry.size >= this.smallMax ? MAIN : SMALL, entry);
    }
  }

  protected override relink(entry: PolicyEntry, evicted: string[]): void {
    if (entry.freq < MAX_FREQUENCY) entry.freq++;
    this.makeRoom(evicted);
    this.pushTo(entry.queue, entry);
  }

  protected override unlink(entry: PolicyEntry): void {
    (entry.queue === SMALL ? this.small : this.main).remove(entry);
  }

  protected override resetStructures(): void {
    this.small.reset();
    this.main.reset();
    this.ghost.reset();
    this.ghostIndex.clear();
  }

  private pushTo(queue: number, entry: PolicyEntry): void {
    entry.queue = queue;
    (queue === SMALL ? this.small : this.main).pushBack(entry);
  }

  /** Evicts until the (not yet linked) entry fits; it is counted in usedBytes already. */
  private makeRoom(evicted: string[]): void {
    while (this.usedBytes > this.maxBytes) {
      if (this.small.length > 0 && (this.small.bytes >= this.smallMax || this.main.length === 0)) {
        if (this.evictFromSmall(evicted)) continue;
      }
      if (!this.evictFromMain(evicted)) break;
    }
  }

  /** Returns true when it evicted a key; false when every key in small moved to main instead. */
  private evictFromSmall(evicted: string[]): boolean {
    for (let tail = this.small.first; tail !== undefined; tail = this.small.first) {
      if (tail.freq > 0) {
        this.small.remove(tail);
        tail.freq = 0;
        this.pushTo(MAIN, tail);
      } else {
        const { key, size } = tail;
        this.evict(tail, evicted);
        this.rememberGhost(key, size);
        return true;
      }
    }
    return false;
  }

  private evictFromMain(evicted: string[]): boolean {
    // Terminates: every pass over a key decrements its counter, and hits add at most 3 per key.
    for (let tail = this.main.first; tail !== undefined; tail = this.main.first) {
      if (tail.freq > 0) {
        tail.freq--;
        this.main.moveToBack(tail);
      } else {
        this.evict(tail, evicted);
        return true;
      }
    }
    return false;
  }

  private rememberGhost(key: string, size: number): void {
    // The evicted node went back to the pool just before, so this usually reuses it.
    const ghost = this.acquireEntry(key, size);
    this.ghost.pushBack(ghost);
    this.ghostIndex.set(key, ghost);
    while (this.ghost.bytes > this.ghostMax) {
      const oldest = this.ghost.first;
      if (oldest === undefined) break;
      this.forgetGhost(oldest);
    }
  }

  private forgetGhost(ghost: PolicyEntry): void {
    this.ghost.remove(ghost);
    this.ghostIndex.delete(ghost.key);
    this.releaseEntry(ghost);
  }
}
