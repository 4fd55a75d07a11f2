import { PolicyEntry } from './entry-list.js';
import { ExpiryQueue } from './expiry-queue.js';
import type { EvictionPolicy, EvictionPolicyName, EvictionPolicyOptions } from './policy.js';

/** Released entries kept for reuse; enough to absorb a burst of evictions without holding memory after `clear`. */
const ENTRY_POOL_LIMIT = 1024;

/**
 * What every policy shares: the key index, byte accounting, expired-first eviction, validation
 * and entry reuse. Subclasses only decide where entries live and which one leaves.
 *
 * Expiry rule: an entry is expired when `now() > expiresAt`. An offer whose `expiresAt` has already
 * passed is refused (the key is reported in `evicted`), since the entry would be useless.
 */
export abstract class BasePolicy implements EvictionPolicy {
  abstract readonly name: EvictionPolicyName;
  readonly maxBytes: number;
  protected readonly entries = new Map<string, PolicyEntry>();
  protected usedBytes = 0;
  private readonly now: () => number;
  private readonly expiry = new ExpiryQueue();
  /** The last expiry stamp given (see PolicyEntry.expiry): 1..2^31-1, wrapping. */
  private expiryStamp = 0;
  private readonly pool: PolicyEntry[] = [];
  /** While an offer runs: where the values of the keys it reports as evicted go (see offer). */
  private evictedValues: unknown[] | undefined = undefined;

  constructor(options: EvictionPolicyOptions) {
    const { maxBytes } = options;
    if (!Number.isFinite(maxBytes) || maxBytes < 0) {
      throw new RangeError(`maxBytes must be a finite number >= 0, got ${String(maxBytes)}`);
    }
    this.maxBytes = maxBytes;
    this.now = options.now ?? Date.now;
  }

  get bytes(): number {
    return this.usedBytes;
  }

  get count(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  recordAccess(key: string): void {
    const entry = this.entries.get(key);
    if (entry !== undefined) this.onAccess(entry);
  }

  get(key: string): unknown {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.onAccess(entry);
    return entry.value;
  }

  peek(key: string): unknown {
    return this.entries.get(key)?.value;
  }

  replaceValue(key: string, value: unknown): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    entry.value = value;
    return true;
  }

  residentKeys(): IterableIterator<string> {
    return this.entries.keys();
  }

  offer(key: string, size: number, expiresAt: number, evicted: string[], value?: unknown, evictedValues?: unknown[]): boolean {
    assertSize(size);
    if (Number.isNaN(expiresAt)) throw new RangeError('expiresAt must be a number (Infinity for no expiry)');
    this.evictedValues = evictedValues;
    try {
      return this.admit(key, size, expiresAt, evicted, value);
    } finally {
      this.evictedValues = undefined;
    }
  }

  private admit(key: string, size: number, expiresAt: number, evicted: string[], value: unknown): boolean {
    const now = this.evictExpired(evicted, expiresAt !== Infinity);
    const existing = this.entries.get(key);
    if (size > this.maxBytes || expiresAt < now) {
      if (existing !== undefined) this.drop(existing);
      this.onRefused(key);
      evicted.push(key);
      this.evictedValues?.push(value);
      return false;
    }
    if (existing !== undefined) {
      existing.value = value;
      this.unlink(existing);
      this.usedBytes += size - existing.size;
      existing.size = size;
      this.setExpiry(existing, expiresAt);
      this.relink(existing, evicted);
    } else {
      const entry = this.acquireEntry(key, size);
      entry.value = value;
      this.entries.set(key, entry);
      this.usedBytes += size;
      this.setExpiry(entry, expiresAt);
      this.link(entry, evicted);
    }
    return this.entries.has(key);
  }

  wouldAdmit(_key: string, size: number): boolean {
    assertSize(size);
    return size <= this.maxBytes;
  }

  remove(key: string): unknown {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const value = entry.value;
    this.drop(entry);
    return value;
  }

  clear(): void {
    this.entries.clear();
    this.usedBytes = 0;
    this.expiry.clear();
    this.resetStructures();
  }

  /** A hit on a resident, linked entry. Must be O(1) and allocation-free. */
  protected abstract onAccess(entry: PolicyEntry): void;

  /**
   * Places a new entry (already indexed and counted in `usedBytes`, not yet linked) and evicts
   * through {@link evict} until `usedBytes <= maxBytes`. May evict the new entry itself (refusal).
   */
  protected abstract link(entry: PolicyEntry, evicted: string[]): void;

  /**
   * Re-places a resident entry after {@link unlink} and a size/expiry update (a re-offer, which
   * counts as an access), then evicts until the bound holds, as {@link link} does.
   */
  protected abstract relink(entry: PolicyEntry, evicted: string[]): void;

  /** Detaches a linked entry from the policy's lists (and nothing else). */
  protected abstract unlink(entry: PolicyEntry): void;

  /** Empties the policy's lists and state; the base has already dropped its index. */
  protected abstract resetStructures(): void;

  /** Hook for an offer refused before reaching the policy (expired or too large). */
  protected onRefused(_key: string): void {}

  /** Removes a linked entry and reports it. */
  protected evict(entry: PolicyEntry, evicted: string[]): void {
    evicted.push(entry.key);
    this.evictedValues?.push(entry.value);
    this.drop(entry);
  }

  /** Takes a node from the pool; used for resident entries and for ghosts. */
  protected acquireEntry(key: string, size: number): PolicyEntry {
    const entry = this.pool.pop() ?? new PolicyEntry();
    entry.key = key;
    entry.size = size;
    return entry;
  }

  /** Returns an unlinked node to the pool. */
  protected releaseEntry(entry: PolicyEntry): void {
    entry.key = '';
    entry.freq = 0;
    entry.queue = 0;
    entry.hash = 0;
    entry.expiry = 0;
    entry.value = undefined;
    if (this.pool.length < ENTRY_POOL_LIMIT) this.pool.push(entry);
  }

  private drop(entry: PolicyEntry): void {
    this.unlink(entry);
    this.entries.delete(entry.key);
    this.usedBytes -= entry.size;
    this.releaseEntry(entry);
  }

  /**
   * Gives the entry its expiry: none (Infinity), or a new triple in the queue whose stamp the entry keeps, which
   * makes any earlier triple of the key stale. (Stamps wrap after 2^31 - 1 expiries: a triple left that long
   * could match again and evict its key early, never late.)
   */
  private setExpiry(entry: PolicyEntry, expiresAt: number): void {
    if (expiresAt === Infinity) {
      entry.expiry = 0;
      return;
    }
    const stamp = this.expiryStamp === 0x7fffffff ? 1 : this.expiryStamp + 1;
    this.expiryStamp = stamp;
    entry.expiry = stamp;
    this.expiry.push(expiresAt, entry.key, stamp);
    if (this.expiry.size > 2 * this.entries.size + 64) this.compactExpiry();
  }

  /**
   * Evicts every expired entry. Returns the current time, or -Infinity when the clock was not
   * needed (nothing can expire and the caller's offer never expires), so a trace replay without
   * expiry never reads the clock.
   */
  private evictExpired(evicted: string[], needNow: boolean): number {
    if (this.expiry.size === 0 && !needNow) return -Infinity;
    const now = this.now();
    while (this.expiry.peekTime() < now) {
      const key = this.expiry.peekKey();
      const stamp = this.expiry.peekStamp();
      this.expiry.pop();
      const entry = this.entries.get(key);
      // A triple is stale when its key left or got a new expiry since it was pushed.
      if (entry !== undefined && entry.expiry === stamp) this.evict(entry, evicted);
    }
    return now;
  }

  private compactExpiry(): void {
    this.expiry.retain((key, stamp) => this.entries.get(key)?.expiry === stamp);
  }
}

function assertSize(size: number): void {
  if (!(size >= 0) || !Number.isFinite(size)) {
    throw new RangeError(`size must be a finite number >= 0, got ${String(size)}`);
  }
}
