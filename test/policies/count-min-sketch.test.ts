import { describe, expect, it } from 'vitest';
import { CountMinSketch } from '../../policies/eviction/count-min-sketch.js';
import { hashKey } from '../../policies/eviction/key-hash.js';

describe('CountMinSketch', () => {
  it('takes key hashes that are signed 32-bit integers (unboxed in an entry), both signs in use', () => {
    const hashes = Array.from({ length: 1000 }, (_, i) => hashKey(`/k${i}`));
    for (const h of hashes) expect(h | 0).toBe(h);
    expect(hashes.some((h) => h < 0) && hashes.some((h) => h > 0)).toBe(true);
    // A negative hash indexes the same counters as its unsigned twin did.
    const sketch = new CountMinSketch(1024);
    const negative = hashes.find((h) => h < 0) as number;
    sketch.increment(negative);
    expect(sketch.estimate(negative >>> 0)).toBe(1);
  });

  it('counts exactly for a few keys and saturates at 15', () => {
    const sketch = new CountMinSketch(1024);
    const a = hashKey('/a');
    const b = hashKey('/b');
    expect(sketch.estimate(a)).toBe(0);
    for (let i = 0; i < 7; i++) sketch.increment(a);
    for (let i = 0; i < 3; i++) sketch.increment(b);
    expect([sketch.estimate(a), sketch.estimate(b)]).toEqual([7, 3]);
    for (let i = 0; i < 20; i++) sketch.increment(a);
    expect(sketch.estimate(a)).toBe(15);
  });

  it('halves every counter at the end of a sample', () => {
    // 16 entries × sampleFactor 1: a sample is 16 increments.
    const sketch = new CountMinSketch(16, { sampleFactor: 1, widthFactor: 4 });
    const a = hashKey('/a');
    const b = hashKey('/b');
    for (let i = 0; i < 10; i++) sketch.increment(a);
    for (let i = 0; i < 5; i++) sketch.increment(b);
    expect(sketch.sampleCount).toBe(15);
    sketch.increment(b);
    expect([sketch.estimate(a), sketch.estimate(b)]).toEqual([5, 3]);
    expect(sketch.sampleCount).toBe(8);
  });

  it('keeps its estimates when it grows', () => {
    const sketch = new CountMinSketch(16);
    const a = hashKey('/a');
    for (let i = 0; i < 9; i++) sketch.increment(a);
    const width = sketch.rowWidth;
    sketch.ensureCapacity(100_000);
    expect(sketch.rowWidth).toBeGreaterThan(width);
    expect(sketch.estimate(a)).toBe(9);
    expect(sketch.samplePeriod).toBe(10 * 100_000);
  });

  it('overestimates but never underestimates within a sample', () => {
    const sketch = new CountMinSketch(64, { sampleFactor: 1_000 });
    const counts = new Map<number, number>();
    for (let i = 0; i < 2_000; i++) {
      const hash = hashKey(`/k${(i * 7919) % 300}`);
      counts.set(hash, (counts.get(hash) ?? 0) + 1);
      sketch.increment(hash);
    }
    for (const [hash, count] of counts) expect(sketch.estimate(hash)).toBeGreaterThanOrEqual(Math.min(15, count));
  });
});
