import { BasePolicy } from './base-policy.js';
import { EntryList, type PolicyEntry } from './entry-list.js';
import type { EvictionPolicyOptions } from './policy.js';

/** Counts saturate here; halving keeps real counts far below it, so it only bounds the bucket array. */
const MAX_FREQUENCY = 255;

export interface LfuOptions extends EvictionPolicyOptions {
  /**
   * Aging period, in accesses per resident key: after `agingFactor × count` accesses (hits and
   * offers) every count is halved, so a key that was hot yesterday must keep earning its place.
   * Default 10 (the sample size Caffeine uses for its sketch). Infinity disables aging.
   */
  agingFactor?: number;
}

/**
 * Least frequently used with aging (periodic halving of all counts).
 *
 * Counts are kept only for resident keys. Entries sit in one list per count (O(1) LFU, as in
 * Shah, Mitra & Matani 2010); ties within a count leave least-recently-used first. Halving
 * splices bucket 2k and 2k+1 into bucket k, so it costs O(resident keys) once per aging period,
 * O(1/agingFactor) amortised per access.
 */
export class LfuPolicy extends BasePolicy {
  readonly name = 'lfu' as const;
  private readonly buckets: EntryList[] = [];
  /** A lower bound on the smallest non-empty bucket. */
  private minFrequency = 1;
  private accessesSinceAging = 0;
  private readonly agingFactor: number;

  constructor(options: LfuOptions) {
    super(options);
    this.agingFactor = options.agingFactor ?? 10;
    if (!(this.agingFactor > 0)) throw new RangeError('agingFactor must be > 0');
    for (let f = 0; f <= MAX_FREQUENCY; f++) this.buckets.push(new EntryList());
  }

  /** Access count of a resident key (after aging), or 0. For tests and debugging. */
  frequencyOf(key: string): number {
    return this.entries.get(key)?.freq ?? 0;
  }

  protected override onAccess(entry: PolicyEntry): void {
    const f = entry.freq;
    const from = this.bucket(f);
    if (f < MAX_FREQUENCY) {
      from.remove(entry);
      entry.freq = f + 1;
      this.bucket(f + 1).pushBack(entry);
    } else {
      from.moveToBack(entry);
    }
    this.countAccess();
  }

  protected override link(entry: PolicyEntry, evicted: string[]): void {
    entry.freq = 1;
    this.place(entry, evicted);
  }

  protected override relink(entry: PolicyEntry, evicted: string[]): void {
    entry.freq = Math.min(entry.freq + 1, MAX_FREQUENCY);
    this.place(entry, evicted);
  }

  protected override unlink(entry: PolicyEntry): void {
    this.bucket(entry.freq).remove(entry);
  }

  protected override resetStructures(): void {
    for (const bucket of this.buckets) bucket.reset();
    this.minFrequency = 1;
    this.accessesSinceAging = 0;
  }

  /** Makes room before linking, so the newcomer (count 1) is never its own victim. */
  private place(entry: PolicyEntry, evicted: string[]): void {
    while (this.usedBytes > this.maxBytes) {
      const victim = this.lowestBucket()?.first;
      if (victim === undefined) break;
      this.evict(victim, evicted);
    }
    this.bucket(entry.freq).pushBack(entry);
    if (entry.freq < this.minFrequency) this.minFrequency = entry.freq;
    this.countAccess();
  }

  private lowestBucket(): EntryList | undefined {
    while (this.minFrequency <= MAX_FREQUENCY) {
      const bucket = this.bucket(this.minFrequency);
      if (bucket.length > 0) return bucket;
      this.minFrequency++;
    }
    return undefined;
  }

  private countAccess(): void {
    if (++this.accessesSinceAging >= this.agingFactor * Math.max(this.entries.size, 16)) this.age();
  }

  private age(): void {
    this.accessesSinceAging = 0;
    // Ascending order: bucket f>>1 has already been emptied as a source, so lower old counts end up
    // ahead of higher ones (evicted first) in each merged bucket.
    for (let f = 2; f <= MAX_FREQUENCY; f++) {
      const source = this.bucket(f);
      if (source.length === 0) continue;
      const target = f >> 1;
      for (let e = source.first; e !== undefined; e = source.after(e)) e.freq = target;
      this.bucket(target).appendAll(source);
    }
    this.minFrequency = 1;
  }

  private bucket(frequency: number): EntryList {
    return this.buckets[frequency] as EntryList;
  }
}
