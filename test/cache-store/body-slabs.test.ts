/** Small bodies of the memory tier in shared slabs (cache-store/memory/body-slabs.ts), through the real tier. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SLAB_BODY_LIMIT, SLAB_BYTES } from '../../cache-store/memory/body-slabs.js';
import { MemoryTier } from '../../cache-store/memory/memory-tier.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import { Fixtures, TestClock } from './fixtures.js';

function slabStats(tier: MemoryTier): { slabs: number; bytes: number; live: number } {
  return (tier as unknown as { slabs: { stats(): { slabs: number; bytes: number; live: number } } }).slabs.stats();
}

describe('MemoryTier: small bodies in slabs', () => {
  const clock = new TestClock();
  const fixtures = new Fixtures(clock);

  it('keeps a small body as a view of a slab, a large one in memory of its own, both byte for byte', () => {
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const small = fixtures.entry('example.test/small', { body: 300 });
    const large = fixtures.entry('example.test/large', { body: SLAB_BODY_LIMIT + 1 });
    tier.set('example.test/small', small);
    tier.set('example.test/large', large);
    const gotSmall = tier.get('example.test/small') as CacheEntry;
    const gotLarge = tier.get('example.test/large') as CacheEntry;
    expect(tier.holdsInSlab(gotSmall.body as Buffer)).toBe(true);
    expect(Buffer.compare(gotSmall.body as Buffer, small.body as Buffer)).toBe(0);
    expect(gotSmall.meta).toBe(small.meta);
    // The record given is left as it was.
    expect(tier.holdsInSlab(small.body as Buffer)).toBe(false);
    expect(tier.holdsInSlab(gotLarge.body as Buffer)).toBe(false);
    expect(gotLarge.body).toBe(large.body);
  });

  it('compacts slabs that deletes leave mostly empty, keeping every live body intact', () => {
    const tier = new MemoryTier({ maxBytes: 1024 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const bodies = new Map<string, Buffer>();
    const n = 4_000;
    for (let i = 0; i < n; i++) {
      const key = `example.test/${i}`;
      const body = randomBytes(64 + (i % 200));
      bodies.set(key, body);
      tier.set(key, fixtures.entry(key, { body }));
    }
    const full = slabStats(tier);
    expect(full.live).toBe([...bodies.values()].reduce((sum, b) => sum + b.length, 0));
    // Delete three of every four: every sealed slab falls under half full and is compacted.
    for (let i = 0; i < n; i++) {
      if (i % 4 === 0) continue;
      tier.delete(`example.test/${i}`);
      bodies.delete(`example.test/${i}`);
    }
    const after = slabStats(tier);
    const live = [...bodies.values()].reduce((sum, b) => sum + b.length, 0);
    expect(after.live).toBe(live);
    // Slabs hold at most twice the live bytes, plus the one being filled (and the views still alive pin nothing here).
    expect(after.bytes).toBeLessThanOrEqual(2 * live + 2 * SLAB_BYTES);
    expect(after.slabs).toBeLessThan(full.slabs);
    for (const [key, body] of bodies) {
      const got = tier.get(key) as CacheEntry;
      expect(tier.holdsInSlab(got.body as Buffer)).toBe(true);
      expect(Buffer.compare(got.body as Buffer, body)).toBe(0);
    }
  });

  it('accounts replacements, evictions and clear: live bytes are those of the bodies held', () => {
    const tier = new MemoryTier({ maxBytes: 2 * 1024 * 1024, now: clock.now, policy: 'lru' });
    // Each version of each key has bytes of its own: whatever compaction moves, a key must keep its latest body.
    const latest = new Map<string, Buffer>();
    for (let i = 0; i < 20_000; i++) {
      const key = `example.test/${i % 3_000}`;
      const body = Buffer.alloc(50 + (i % 500), `${key}#${i};`);
      latest.set(key, body);
      tier.set(key, fixtures.entry(key, { body }));
    }
    let held = 0;
    for (const key of tier.keys('')) {
      const body = (tier.get(key) as CacheEntry).body as Buffer;
      expect(Buffer.compare(body, latest.get(key) as Buffer)).toBe(0);
      held += body.length;
    }
    expect(held).toBeGreaterThan(0);
    expect(slabStats(tier).live).toBe(held);
    expect(slabStats(tier).bytes).toBeLessThanOrEqual(2 * held + 2 * SLAB_BYTES);
    tier.clear();
    expect(slabStats(tier)).toEqual({ slabs: 0, bytes: 0, live: 0 });
  });

  it('compacts a slab most of whose bodies have gone even when its live bytes are over half (their keys are let go)', () => {
    const tier = new MemoryTier({ maxBytes: 1024 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const big = Array.from({ length: 16 }, (_, i) => [`example.test/big${i}`, Buffer.alloc(SLAB_BODY_LIMIT, i)] as const);
    for (const [key, body] of big) tier.set(key, fixtures.entry(key, { body }));
    const small = Array.from({ length: 300 }, (_, i) => `example.test/small${i}`);
    for (const key of small) tier.set(key, fixtures.entry(key, { body: 100 }));
    const firstSlab = (tier.get('example.test/big0') as CacheEntry).body as Buffer;
    // Fill up to the next slab, so the first one is no longer the one being filled.
    for (let i = 0; slabStats(tier).slabs < 2; i++) tier.set(`example.test/filler${i}`, fixtures.entry(`example.test/filler${i}`, { body: 1024 }));
    for (const key of small) tier.delete(key);
    // 32 KiB of big bodies stay live (half the slab), but 300 of its 316+ bodies have gone: compacted.
    expect(tier.holdsInSlab(firstSlab)).toBe(false);
    for (const [key, body] of big) {
      const got = (tier.get(key) as CacheEntry).body as Buffer;
      expect(tier.holdsInSlab(got)).toBe(true);
      expect(Buffer.compare(got, body)).toBe(0);
    }
  });

  it('makes an entry\'s body view when it is first read, and keeps it', () => {
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const peek = (key: string) => (tier as unknown as { policy: { peek(k: string): { body: unknown } } }).policy.peek(key);
    tier.set('example.test/a', fixtures.entry('example.test/a', { body: Buffer.alloc(300, 'a') }));
    // Stored, never read: no Buffer view yet (the bytes are in a slab).
    expect(peek('example.test/a').body).toBeUndefined();
    const first = (tier.get('example.test/a') as CacheEntry).body as Buffer;
    expect(first.toString()).toBe('a'.repeat(300));
    expect(peek('example.test/a').body).toBe(first);
    expect((tier.get('example.test/a') as CacheEntry).body).toBe(first);
  });

  it('counts live bytes right when resident keys are replaced while slabs are compacted', () => {
    const tier = new MemoryTier({ maxBytes: 1024 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const latest = new Map<string, Buffer>();
    // 600 keys, every one replaced 20 times while it stays resident: sealed slabs fall under half live and are
    // compacted while the record being replaced is still the one the policy holds.
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 600; i++) {
        const key = `example.test/${i}`;
        const body = Buffer.alloc(200 + ((i + round) % 300), `${key}#${round};`);
        latest.set(key, body);
        tier.set(key, fixtures.entry(key, { body }));
      }
    }
    let held = 0;
    for (const [key, body] of latest) {
      const got = (tier.get(key) as CacheEntry).body as Buffer;
      expect(Buffer.compare(got, body)).toBe(0);
      held += body.length;
    }
    expect(slabStats(tier).live).toBe(held);
    expect(slabStats(tier).bytes).toBeLessThanOrEqual(2 * held + 2 * SLAB_BYTES);
  });

  it('a record read before a compaction moves its body still reads the same bytes', () => {
    const tier = new MemoryTier({ maxBytes: 1024 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    for (let i = 0; i < 400; i++) tier.set(`example.test/${i}`, fixtures.entry(`example.test/${i}`, { body: Buffer.alloc(500, i % 251) }));
    const held = tier.get('example.test/0') as CacheEntry;
    const before = held.body as Buffer;
    // Delete most of the first slab's bodies, then fill on: the slab is compacted and example.test/0 moves.
    for (let i = 1; i < 100; i++) tier.delete(`example.test/${i}`);
    for (let i = 400; i < 600; i++) tier.set(`example.test/${i}`, fixtures.entry(`example.test/${i}`, { body: Buffer.alloc(500, i % 251) }));
    expect(tier.holdsInSlab(before)).toBe(false);
    expect(tier.holdsInSlab(held.body as Buffer)).toBe(true);
    expect(Buffer.compare(held.body as Buffer, Buffer.alloc(500, 0))).toBe(0);
    expect(Buffer.compare(before, Buffer.alloc(500, 0))).toBe(0);
  });

  it('a spread copy of a record read from the tier is stored as a record of its own, whatever its body', () => {
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    tier.set('example.test/a', fixtures.entry('example.test/a', { body: Buffer.alloc(300, 'a') }));
    tier.set('example.test/b', fixtures.entry('example.test/b', { body: Buffer.alloc(200, 'b') }));
    const read = tier.get('example.test/a') as CacheEntry;
    // The copy carries the fields of the tier's record; its body is now a large one of its own.
    const large = Buffer.alloc(SLAB_BODY_LIMIT + 10, 'c');
    tier.set('example.test/c', { ...read, body: large });
    expect((tier.get('example.test/c') as CacheEntry).body).toBe(large);
    tier.delete('example.test/c');
    // Deleting the copy freed nothing in the slabs: a's and b's bytes are still counted, and still read right.
    expect(slabStats(tier).live).toBe(500);
    expect(((tier.get('example.test/a') as CacheEntry).body as Buffer).toString()).toBe('a'.repeat(300));
  });
});
