import { describe, expect, it } from 'vitest';
import { LruPolicy } from '../../policies/eviction/lru.js';
import { EXACT_ORDER_BELOW } from '../../policies/eviction/entry-list.js';

describe('LruPolicy', () => {
  it('evicts the least recently used key', () => {
    const lru = new LruPolicy({ maxBytes: 3 });
    const evicted: string[] = [];
    for (const key of ['a', 'b', 'c']) expect(lru.offer(key, 1, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual([]);
    lru.recordAccess('a');
    expect(lru.offer('d', 1, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual(['b']);
    expect(lru.keys()).toEqual(['c', 'a', 'd']);
  });

  it('evicts as many least recent keys as the new size needs', () => {
    const lru = new LruPolicy({ maxBytes: 10 });
    const evicted: string[] = [];
    lru.offer('a', 4, Infinity, evicted);
    lru.offer('b', 4, Infinity, evicted);
    lru.offer('c', 2, Infinity, evicted);
    expect(lru.offer('d', 5, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual(['a', 'b']);
    expect(lru.bytes).toBe(7);
    expect(lru.count).toBe(2);
  });

  it('treats a re-offer as a use and never evicts the re-offered key for its own growth', () => {
    const lru = new LruPolicy({ maxBytes: 10 });
    const evicted: string[] = [];
    lru.offer('a', 3, Infinity, evicted);
    lru.offer('b', 3, Infinity, evicted);
    lru.offer('c', 3, Infinity, evicted);
    expect(lru.offer('a', 6, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual(['b']);
    expect(lru.keys()).toEqual(['c', 'a']);
    expect(lru.bytes).toBe(9);
    expect(lru.offer('a', 10, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual(['b', 'c']);
    expect(lru.keys()).toEqual(['a']);
  });

  it('ignores accesses to keys that are not resident', () => {
    const lru = new LruPolicy({ maxBytes: 2 });
    const evicted: string[] = [];
    lru.offer('a', 1, Infinity, evicted);
    lru.offer('b', 1, Infinity, evicted);
    lru.recordAccess('zzz');
    lru.offer('c', 1, Infinity, evicted);
    expect(evicted).toEqual(['a']);
  });

  it('keeps exact recency order on every hit, also in a long list', () => {
    const n = 4 * EXACT_ORDER_BELOW;
    const lru = new LruPolicy({ maxBytes: n });
    const evicted: string[] = [];
    for (let i = 0; i < n; i++) lru.offer(`k${i}`, 1, Infinity, evicted);
    lru.recordAccess(`k${n - 2}`);
    expect(lru.keys().at(-1)).toBe(`k${n - 2}`);
  });
});
