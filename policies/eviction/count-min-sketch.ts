import { mix32 } from './key-hash.js';

/** Rows of the sketch; each key has one counter per row and its estimate is the minimum. */
const DEPTH = 4;
/** 4-bit counters, eight to a 32-bit word. */
const COUNTERS_PER_WORD = 8;
const MAX_COUNT = 15;
const MIN_WIDTH = 16;

export interface CountMinSketchOptions {
  /** Counters per row per expected entry (rounded up to a power of two). Default 1. */
  widthFactor?: number;
  /** Halve every counter after `sampleFactor × capacity` increments. Default 10. */
  sampleFactor?: number;
  /** Increment only the counters that hold the current minimum (less overestimation). Default true. */
  conservative?: boolean;
}

/**
 * Count-min sketch of 4-bit saturating counters with periodic halving, the frequency
 * histogram of TinyLFU (Einziger, Friedman & Manes 2017).
 *
 * After a sample of `sampleFactor × capacity` increments every counter is halved (the "reset"),
 * so estimates reflect recent popularity. Callers pass a 32-bit key hash (see `hashKey`).
 */
export class CountMinSketch {
  private table: Uint32Array;
  private width = 0;
  private mask = 0;
  private rowWords = 0;
  private capacity = 0;
  private additions = 0;
  private sampleSize = 0;
  private readonly widthFactor: number;
  private readonly sampleFactor: number;
  private readonly conservative: boolean;

  constructor(expectedEntries: number, options: CountMinSketchOptions = {}) {
    this.widthFactor = options.widthFactor ?? 1;
    this.sampleFactor = options.sampleFactor ?? 10;
    this.conservative = options.conservative ?? true;
    if (!(this.widthFactor > 0) || !(this.sampleFactor > 0)) {
      throw new RangeError('widthFactor and sampleFactor must be > 0');
    }
    this.table = new Uint32Array(0);
    this.resize(Math.max(1, expectedEntries), true);
  }

  /** Counters per row. */
  get rowWidth(): number {
    return this.width;
  }

  /** Increments since the last halving. */
  get sampleCount(): number {
    return this.additions;
  }

  /** Increments between halvings. */
  get samplePeriod(): number {
    return this.sampleSize;
  }

  /** Estimated recent count of the key, 0..15 (never below the true count since the last halving, up to 15). */
  estimate(hash: number): number {
    const { table, mask, rowWords } = this;
    const step = mix32(hash) | 1;
    let min = MAX_COUNT;
    for (let row = 0; row < DEPTH; row++) {
      const index = (hash + Math.imul(row, step)) & mask;
      const value = ((table[row * rowWords + (index >>> 3)] as number) >>> ((index & 7) << 2)) & MAX_COUNT;
      if (value < min) min = value;
    }
    return min;
  }

  /** Counts one occurrence of the key; halves everything at the end of a sample. */
  increment(hash: number): void {
    const { table, mask, rowWords } = this;
    const step = mix32(hash) | 1;
    // Conservative update raises only the counters at the key's minimum; with it off, min stays
    // below every counter and all non-saturated ones are raised.
    const min = this.conservative ? this.estimate(hash) : -1;
    if (min === MAX_COUNT) return;
    let added = false;
    for (let row = 0; row < DEPTH; row++) {
      const index = (hash + Math.imul(row, step)) & mask;
      const word = row * rowWords + (index >>> 3);
      const shift = (index & 7) << 2;
      const value = ((table[word] as number) >>> shift) & MAX_COUNT;
      if (value < MAX_COUNT && (min < 0 || value === min)) {
        table[word] = (table[word] as number) + (1 << shift);
        added = true;
      }
    }
    if (added && ++this.additions >= this.sampleSize) this.halve();
  }

  /**
   * Grows the sample with the resident set, and the table when the width falls short. Widening
   * copies each old counter into both counters that now split its hash range, so estimates
   * survive the growth.
   */
  ensureCapacity(entries: number): void {
    if (entries > this.capacity) this.resize(entries, false);
  }

  /** Halves every counter (the TinyLFU reset). */
  halve(): void {
    const table = this.table;
    let odd = 0;
    for (let i = 0; i < table.length; i++) {
      const word = table[i] as number;
      odd += popcount(word & 0x11111111);
      table[i] = (word >>> 1) & 0x77777777;
    }
    // Each key touches DEPTH counters, so odd/DEPTH estimates the increments lost to truncation.
    this.additions = Math.max(0, (this.additions - odd / DEPTH) / 2) | 0;
  }

  clear(): void {
    this.table.fill(0);
    this.additions = 0;
  }

  private resize(entries: number, fresh: boolean): void {
    const width = Math.max(MIN_WIDTH, nextPowerOfTwo(Math.ceil(entries * this.widthFactor)));
    this.capacity = entries;
    this.sampleSize = Math.max(1, Math.ceil(this.sampleFactor * entries));
    if (width <= this.width) return;
    const table = new Uint32Array((DEPTH * width) / COUNTERS_PER_WORD);
    if (!fresh && this.width > 0) {
      const oldRowWords = this.width / COUNTERS_PER_WORD;
      const rowWords = width / COUNTERS_PER_WORD;
      for (let row = 0; row < DEPTH; row++) {
        for (let w = 0; w < rowWords; w++) {
          // Indices are hash & (width - 1); the old index is the low bits of the new one.
          table[row * rowWords + w] = this.table[row * oldRowWords + (w & (oldRowWords - 1))] as number;
        }
      }
    }
    this.table = table;
    this.width = width;
    this.mask = width - 1;
    this.rowWords = width / COUNTERS_PER_WORD;
  }
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}
