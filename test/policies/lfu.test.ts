import { describe, expect, it } from 'vitest';
import { LfuPolicy } from '../../policies/eviction/lfu.js';

describe('LfuPolicy', () => {
  it('keeps the frequently used keys and evicts the least used', () => {
    const lfu = new LfuPolicy({ maxBytes: 3 });
    const evicted: string[] = [];
    for (const key of ['a', 'b', 'c']) lfu.offer(key, 1, Infinity, evicted);
    for (let i = 0; i < 3; i++) lfu.recordAccess('a');
    lfu.recordAccess('b');
    lfu.offer('d', 1, Infinity, evicted);
    expect(evicted).toEqual(['c']);
    lfu.offer('e', 1, Infinity, evicted);
    expect(evicted).toEqual(['c', 'd']);
    expect(lfu.has('a') && lfu.has('b') && lfu.has('e')).toBe(true);
    expect([lfu.frequencyOf('a'), lfu.frequencyOf('b'), lfu.frequencyOf('e')]).toEqual([4, 2, 1]);
  });

  it('breaks ties by recency (least recently used first)', () => {
    const lfu = new LfuPolicy({ maxBytes: 3 });
    const evicted: string[] = [];
    for (const key of ['a', 'b', 'c']) lfu.offer(key, 1, Infinity, evicted);
    lfu.recordAccess('a');
    lfu.recordAccess('b');
    lfu.recordAccess('c');
    lfu.recordAccess('a');
    lfu.recordAccess('c');
    lfu.offer('d', 1, Infinity, evicted);
    expect(evicted).toEqual(['b']);
  });

  it('halves every count once per aging period', () => {
    // Period = agingFactor × max(count, 16) accesses = 16 here.
    const lfu = new LfuPolicy({ maxBytes: 10, agingFactor: 1 });
    const evicted: string[] = [];
    lfu.offer('a', 1, Infinity, evicted);
    for (let i = 0; i < 14; i++) lfu.recordAccess('a');
    expect(lfu.frequencyOf('a')).toBe(15);
    lfu.recordAccess('a');
    expect(lfu.frequencyOf('a')).toBe(8);
  });

  it('lets yesterday’s hot key leave once a new key is hot (aging), unlike plain LFU', () => {
    const run = (agingFactor: number): string[] => {
      const lfu = new LfuPolicy({ maxBytes: 2, agingFactor });
      const evicted: string[] = [];
      lfu.offer('old', 1, Infinity, evicted);
      for (let i = 0; i < 100; i++) lfu.recordAccess('old');
      lfu.offer('new', 1, Infinity, evicted);
      for (let i = 0; i < 30; i++) lfu.recordAccess('new');
      lfu.offer('next', 1, Infinity, evicted);
      return evicted;
    };
    expect(run(1)).toEqual(['old']);
    expect(run(Infinity)).toEqual(['new']);
  });
});
