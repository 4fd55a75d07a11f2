/**
 * Small entries of the memory tier packed into shared slabs (cache-store/memory/packed-entry.ts, record-slabs.ts)
 * and decoded when hit (decoded-entries.ts), through the real tier.
 */
import { randomBytes } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { PACKED_BODY_LIMIT as SLAB_BODY_LIMIT, encodeEntry } from '../../cache-store/memory/packed-entry.js';
import { SLAB_BYTES } from '../../cache-store/memory/record-slabs.js';
import { MemoryTier } from '../../cache-store/memory/memory-tier.js';
import type { CacheEntry, CacheRecord, StoredHeaders } from '../../cache-store/entry.js';
import { Fixtures, TestClock } from './fixtures.js';

/** The bytes a packed entry takes in a slab (what the slabs count live). */
function packedBytes(key: string, entry: CacheEntry): number {
  return (encodeEntry(key, entry) as Buffer).length;
}

function slabStats(tier: MemoryTier): { slabs: number; bytes: number; live: number } {
  return (tier as unknown as { slabs: { stats(): { slabs: number; bytes: number; live: number } } }).slabs.stats();
}

describe('MemoryTier: small entries packed in slabs', () => {
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
    expect(gotSmall.meta).toEqual(small.meta);
    // The record given is left as it was.
    expect(tier.holdsInSlab(small.body as Buffer)).toBe(false);
    expect(tier.holdsInSlab(gotLarge.body as Buffer)).toBe(false);
    expect(gotLarge.body).toBe(large.body);
  });

  it('compacts slabs that deletes leave mostly empty, keeping every live body intact', () => {
    const tier = new MemoryTier({ maxBytes: 1024 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const bodies = new Map<string, Buffer>();
    const packed = new Map<string, number>();
    const n = 4_000;
    for (let i = 0; i < n; i++) {
      const key = `example.test/${i}`;
      const body = randomBytes(64 + (i % 200));
      const entry = fixtures.entry(key, { body });
      bodies.set(key, body);
      packed.set(key, packedBytes(key, entry));
      tier.set(key, entry);
    }
    const full = slabStats(tier);
    expect(full.live).toBe([...packed.values()].reduce((sum, b) => sum + b, 0));
    // Delete three of every four: every sealed slab falls under half full and is compacted.
    for (let i = 0; i < n; i++) {
      if (i % 4 === 0) continue;
      tier.delete(`example.test/${i}`);
      bodies.delete(`example.test/${i}`);
      packed.delete(`example.test/${i}`);
    }
    const after = slabStats(tier);
    const live = [...packed.values()].reduce((sum, b) => sum + b, 0);
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
    const packed = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const key = `example.test/${i % 3_000}`;
      const body = Buffer.alloc(50 + (i % 500), `${key}#${i};`);
      const entry = fixtures.entry(key, { body });
      latest.set(key, body);
      packed.set(key, packedBytes(key, entry));
      tier.set(key, entry);
    }
    let held = 0;
    for (const key of tier.keys('')) {
      const body = (tier.get(key) as CacheEntry).body as Buffer;
      expect(Buffer.compare(body, latest.get(key) as Buffer)).toBe(0);
      held += packed.get(key) as number;
    }
    expect(held).toBeGreaterThan(0);
    expect(slabStats(tier).live).toBe(held);
    expect(slabStats(tier).bytes).toBeLessThanOrEqual(2 * held + 2 * SLAB_BYTES);
    tier.clear();
    expect(slabStats(tier)).toEqual({ slabs: 0, bytes: 0, live: 0 });
  });

  it('compacts a slab most of whose bodies have gone even when its live bytes are over half (their keys are let go)', () => {
    const tier = new MemoryTier({ maxBytes: 1024 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const big = Array.from({ length: 14 }, (_, i) => [`example.test/big${i}`, Buffer.alloc(SLAB_BODY_LIMIT, i)] as const);
    for (const [key, body] of big) tier.set(key, fixtures.entry(key, { body }));
    const small = Array.from({ length: 300 }, (_, i) => `example.test/small${i}`);
    for (const key of small) tier.set(key, fixtures.entry(key, { body: 100 }));
    const firstSlab = (tier.get('example.test/big0') as CacheEntry).body as Buffer;
    // Fill up to the next slab, so the first one is no longer the one being filled.
    for (let i = 0; slabStats(tier).slabs < 2; i++) tier.set(`example.test/filler${i}`, fixtures.entry(`example.test/filler${i}`, { body: 1024 }));
    for (const key of small) tier.delete(key);
    // Over 28 KiB of big entries stay live (with their headers, over half the slab), but 300 of its 314+ entries
    // have gone: compacted.
    expect(tier.holdsInSlab(firstSlab)).toBe(false);
    for (const [key, body] of big) {
      const got = (tier.get(key) as CacheEntry).body as Buffer;
      expect(tier.holdsInSlab(got)).toBe(true);
      expect(Buffer.compare(got, body)).toBe(0);
    }
  });

  it('keeps a small entry packed until it is read, then decoded, the same object on every later read', () => {
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const peek = (key: string) => (tier as unknown as { policy: { peek(k: string): unknown } }).policy.peek(key);
    tier.set('example.test/a', fixtures.entry('example.test/a', { body: Buffer.alloc(300, 'a') }));
    // Stored, never read: a handle, no object.
    expect(typeof peek('example.test/a')).toBe('number');
    const first = tier.get('example.test/a') as CacheEntry;
    expect((first.body as Buffer).toString()).toBe('a'.repeat(300));
    expect(peek('example.test/a')).toBe(first);
    expect(tier.get('example.test/a')).toBe(first);
    expect(tier.stats().decodedEntries).toBe(1);
  });

  it('counts live bytes right when resident keys are replaced while slabs are compacted', () => {
    const tier = new MemoryTier({ maxBytes: 1024 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const latest = new Map<string, Buffer>();
    const packed = new Map<string, number>();
    // 600 keys, every one replaced 20 times while it stays resident: sealed slabs fall under half live and are
    // compacted while the record being replaced is still the one the policy holds.
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 600; i++) {
        const key = `example.test/${i}`;
        const body = Buffer.alloc(200 + ((i + round) % 300), `${key}#${round};`);
        const entry = fixtures.entry(key, { body });
        latest.set(key, body);
        packed.set(key, packedBytes(key, entry));
        tier.set(key, entry);
      }
    }
    let held = 0;
    for (const [key, body] of latest) {
      const got = (tier.get(key) as CacheEntry).body as Buffer;
      expect(Buffer.compare(got, body)).toBe(0);
      held += packed.get(key) as number;
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
    expect(slabStats(tier).live).toBe(packedBytes('example.test/a', read) + packedBytes('example.test/b', tier.get('example.test/b') as CacheEntry));
    expect(((tier.get('example.test/a') as CacheEntry).body as Buffer).toString()).toBe('a'.repeat(300));
  });

  it('decodes every field of the metadata as it was stored, and the compressed forms', () => {
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'lru' });
    const key = 'example.test/v?q=1\u0000accept-language:fr';
    const entry = fixtures.entry(key, {
      body: Buffer.from('{"a":1}'),
      etag: '"e1"',
      tags: ['t1', 'caf\u00e9'],
      primaryKey: 'example.test/v?q=1',
      vary: ['accept-language'],
      // Values whose lengths take one, two and three bytes, some shorter in UTF-8 than their room.
      headers: { 'set-cookie': ['a=1', 'b=2'], 'x-note': 'na\u00efve \u2603', link: '</a>; rel=preload', 'x-e': '\u00e9'.repeat(60), 'x-long': 'a'.repeat(3_000), 'x-empty': '' },
    });
    const br = Buffer.from('brotli bytes');
    const gzip = Buffer.from('gzip bytes!');
    const withForms: CacheEntry = {
      kind: 'entry',
      meta: { ...entry.meta, status: 203, mustRevalidate: true, sharedMaxAge: true, staleWhileRevalidate: 1234.5, encodings: { identity: 7, br: br.length, gzip: gzip.length } },
      body: entry.body,
      forms: { br, gzip },
    };
    tier.set(key, withForms);
    const got = tier.get(key) as CacheEntry;
    expect(got.meta).toEqual(withForms.meta);
    expect(got.meta.deletableAt).toBe(Infinity);
    expect(String(got.body)).toBe('{"a":1}');
    expect(String(got.forms?.br)).toBe('brotli bytes');
    expect(String(got.forms?.gzip)).toBe('gzip bytes!');
    expect(tier.keysForTag('caf\u00e9')).toEqual([key]);
    // A finite deletableAt (no validator) too, and a meta key other than the tier's.
    const plain = fixtures.entry('example.test/p', { body: 10, maxAge: 60 });
    tier.set('example.test/p', plain);
    expect((tier.get('example.test/p') as CacheEntry).meta).toEqual(plain.meta);
    expect(Number.isFinite(plain.meta.deletableAt)).toBe(true);
    // Times beyond 32-bit milliseconds (a year's lifetime, a deletion time years away) and odd ones.
    const far: CacheEntry = {
      ...plain,
      meta: { ...plain.meta, lifetime: 31_536_000_000, staleIfError: -0.5, storedAt: plain.meta.ageBase - 3_000, deletableAt: plain.meta.ageBase + 4 * 31_536_000_000 },
    };
    tier.set('example.test/far', far);
    // A field named __proto__ (an own property, as JSON.parse makes it): kept as such, never the object's prototype.
    const odd: CacheEntry = { ...plain, meta: { ...plain.meta, headers: JSON.parse('{"content-type":"text/plain","__proto__":"x"}') as StoredHeaders } };
    tier.set('example.test/odd', odd);
    const oddRead = (tier.get('example.test/odd') as CacheEntry).meta.headers;
    expect(Object.getPrototypeOf(oddRead)).toBe(Object.prototype);
    expect(Object.entries(oddRead)).toEqual([['content-type', 'text/plain'], ['__proto__', 'x']]);
    expect((tier.get('example.test/far') as CacheEntry).meta).toEqual({ ...far.meta, key: far.meta.key, primaryKey: far.meta.primaryKey });
  });

  it('keeps the decoded entries within the budget, hit ones longest, and decodes the others again as they were', () => {
    // 2 MiB: 128 KiB for decoded entries whatever the packed ones take, which fill the rest.
    const tier = new MemoryTier({ maxBytes: 2 * 1024 * 1024, now: clock.now, policy: 'lru' });
    const n = 5_000;
    const keys = Array.from({ length: n }, (_, i) => `example.test/${i}`);
    for (const key of keys) tier.set(key, fixtures.entry(key, { body: Buffer.from(key) }));
    const resident = tier.keys('');
    expect(resident.length).toBeGreaterThan(2_000);
    const hot = resident.slice(0, 20);
    const held = new Map(hot.map((key) => [key, tier.get(key)]));
    // A scan over every resident key, the hot ones hit between every few reads: they stay decoded (the same
    // objects), the others are let go again, and the number decoded stays near the floor (128 KiB / 1 KiB).
    for (let i = 0; i < resident.length; i++) {
      const key = resident[i] as string;
      expect(String((tier.get(key) as CacheEntry).body)).toBe(key);
      if (i % 10 === 0) for (const h of hot) tier.get(h);
      expect(tier.stats().decodedEntries).toBeLessThanOrEqual(130);
    }
    for (const [key, entry] of held) expect(tier.get(key)).toBe(entry);
    // The set is full: a key decoded for the first time in a while serves its read and is not kept (no decoded
    // entry is let go for it); read again soon after, it is kept.
    const cold = 'example.test/new';
    tier.set(cold, fixtures.entry(cold, { body: Buffer.from(cold) }));
    // (Storing it evicted an entry, which may have been decoded and left a place: filled by other keys first.)
    for (const key of tier.keys('')) if (key !== cold) tier.get(key);
    const decodedNow = Number(tier.stats().decodedEntries);
    const once = tier.get(cold);
    expect(tier.get(cold)).not.toBe(once);
    const kept = tier.get(cold);
    expect(tier.get(cold)).toBe(kept);
    expect(tier.stats().decodedEntries).toBeLessThanOrEqual(decodedNow + 1);
    // Decoded again from their bytes: the same metadata.
    for (const key of resident.slice(100, 200)) {
      expect((tier.get(key) as CacheEntry).meta).toEqual(fixtures.entry(key, { body: Buffer.from(key) }).meta);
    }
  });

  it('lets more entries be decoded while the budget has room, and frees the tags of packed entries', () => {
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    for (let i = 0; i < 3_000; i++) tier.set(`example.test/${i}`, fixtures.entry(`example.test/${i}`, { body: 50, tags: [`t${i % 3}`] }));
    for (let i = 0; i < 3_000; i++) tier.get(`example.test/${i}`);
    // 4 MiB is the floor; 64 MiB has room for every one.
    expect(tier.stats().decodedEntries).toBe(3_000);
    // Replaced (packed or decoded), deleted: each key leaves its old tag.
    for (let i = 0; i < 3_000; i += 2) tier.set(`example.test/${i}`, fixtures.entry(`example.test/${i}`, { body: 50, tags: ['new'] }));
    for (let i = 1; i < 3_000; i += 4) tier.delete(`example.test/${i}`);
    const tagged = (tag: string) => tier.keysForTag(tag).length;
    expect(tagged('new')).toBe(1_500);
    expect(tagged('t0') + tagged('t1') + tagged('t2')).toBe(750);
  });

  it('lets a decoded entry go as soon as its key leaves the tier, so that it keeps no slab alive and is not counted', () => {
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const key = (i: number) => `example.test/${i}`;
    for (let i = 0; i < 3_000; i++) tier.set(key(i), fixtures.entry(key(i), { body: 50 }));
    for (let i = 0; i < 3_000; i++) tier.get(key(i));
    expect(tier.stats().decodedEntries).toBe(3_000);
    // Replaced: packed again, not decoded until read. Deleted: gone.
    for (let i = 0; i < 3_000; i += 2) tier.set(key(i), fixtures.entry(key(i), { body: 60 }));
    expect(tier.stats().decodedEntries).toBe(1_500);
    for (let i = 1; i < 3_000; i += 4) tier.delete(key(i));
    expect(tier.stats()).toMatchObject({ decodedEntries: 750, decodedBytes: 750 * 1024 });
    // Read again: decoded in the places the others left.
    for (let i = 0; i < 3_000; i += 2) expect((tier.get(key(i)) as CacheEntry).body.length).toBe(60);
    expect(tier.stats().decodedEntries).toBe(2_250);
    tier.clear();
    expect(tier.stats().decodedEntries).toBe(0);

    // Evicted: a small budget, its resident entries read, then as many new keys stored and never read.
    const small = new MemoryTier({ maxBytes: 2 * 1024 * 1024, now: clock.now, policy: 'lru' });
    for (let i = 0; i < 5_000; i++) small.set(key(i), fixtures.entry(key(i), { body: 50 }));
    for (const resident of small.keys('')) small.get(resident);
    expect(small.stats().decodedEntries).toBeGreaterThan(100);
    for (let i = 5_000; i < 15_000; i++) small.set(key(i), fixtures.entry(key(i), { body: 50 }));
    expect(small.keys('').some((resident) => Number(resident.split('/')[1]) < 5_000)).toBe(false);
    expect(small.stats().decodedEntries).toBe(0);
  });

  it('frees a slab once its keys are gone, whether or not their entries were decoded', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'tinylfu' });
    const keys = Array.from({ length: 400 }, (_, i) => `example.test/${i}`);
    for (const key of keys) tier.set(key, fixtures.entry(key, { body: 200 }));
    // A weak reference to the first slab, taken in a function so no local keeps the entry read.
    const firstSlab = ((): WeakRef<ArrayBufferLike> => {
      for (const key of keys) tier.get(key);
      return new WeakRef(((tier.get(keys[0] as string) as CacheEntry).body as Buffer).buffer);
    })();
    expect(tier.stats().decodedEntries).toBe(400);
    for (const key of keys) tier.delete(key);
    // A weak reference's target lives at least to the end of the job that made it.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    gc();
    expect(firstSlab.deref()).toBeUndefined();
  });

  it('hands an evicted small entry to onEvict whole, decoded or not', () => {
    const spilled = new Map<string, CacheRecord>();
    const tier = new MemoryTier({ maxBytes: 1024 * 1024, now: clock.now, policy: 'lru', onEvict: (key, record) => spilled.set(key, record) });
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 6_000; i++) {
      const key = `example.test/${i}`;
      const body = randomBytes(40 + (i % 300));
      bodies.set(key, body);
      tier.set(key, fixtures.entry(key, { body, tags: ['x'] }));
      if (i % 7 === 0) tier.get(key);
    }
    expect(spilled.size).toBeGreaterThan(1_000);
    for (const [key, record] of spilled) {
      const entry = record as CacheEntry;
      expect(entry.meta.key).toBe(key);
      expect(entry.meta.tags).toEqual(['x']);
      expect(Buffer.compare(entry.body as Buffer, bodies.get(key) as Buffer)).toBe(0);
    }
    expect(tier.keysForTag('x').length).toBe(tier.stats().entries);
  });

  it.each(['tinylfu', 'lru', 's3fifo'] as const)('%s: random sets, reads, deletes and evictions never hand out another key\'s bytes or lose count', (policy) => {
    // A model of what the tier may hold: the latest body and tags set for each key. Whatever the tier keeps
    // (packed, decoded, evicted, compacted, decoded again), a read returns that or nothing.
    let seed = 7;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return (seed >>> 8) % n;
    };
    const tier = new MemoryTier({ maxBytes: 1024 * 1024, now: clock.now, policy });
    const latest = new Map<string, { body: Buffer; tags: string[]; version: number }>();
    for (let op = 0; op < 40_000; op++) {
      const key = `example.test/${random(3_000)}`;
      const roll = random(100);
      if (roll < 30) {
        // Mostly small (packed), some larger than a packed body (kept as objects).
        const length = random(10) === 0 ? SLAB_BODY_LIMIT + 1 + random(4_000) : 1 + random(600);
        const body = Buffer.alloc(length, `${key}#${op};`);
        const tags = random(3) === 0 ? [`t${random(5)}`] : [];
        latest.set(key, { body, tags, version: op });
        tier.set(key, fixtures.entry(key, { body, tags, headers: { 'x-version': String(op) } }));
      } else if (roll < 35) {
        tier.delete(key);
        latest.delete(key);
      } else {
        const got = tier.get(key) as CacheEntry | undefined;
        if (got === undefined) continue;
        const want = latest.get(key);
        expect(want).toBeDefined();
        expect(got.meta.key).toBe(key);
        expect(got.meta.headers['x-version']).toBe(String(want?.version));
        expect(Buffer.compare(got.body as Buffer, want?.body as Buffer)).toBe(0);
        expect(got.meta.tags).toEqual(want?.tags);
      }
    }
    // Every resident key is one the model has, and the tag index names exactly the resident keys with the tag.
    const resident = tier.keys('');
    let packedLive = 0;
    for (const key of resident) {
      const want = latest.get(key);
      expect(want).toBeDefined();
      const got = tier.get(key) as CacheEntry;
      expect(Buffer.compare(got.body as Buffer, want?.body as Buffer)).toBe(0);
      if ((want?.body.length ?? 0) <= SLAB_BODY_LIMIT) packedLive += packedBytes(key, got);
    }
    for (let t = 0; t < 5; t++) {
      const expected = resident.filter((key) => latest.get(key)?.tags.includes(`t${t}`)).sort();
      expect(tier.keysForTag(`t${t}`).sort()).toEqual(expected);
    }
    expect(slabStats(tier).live).toBe(packedLive);
    expect(slabStats(tier).bytes).toBeLessThanOrEqual(2 * packedLive + 2 * SLAB_BYTES);
    expect(tier.stats().bytes).toBeLessThanOrEqual(1024 * 1024);
  });

  it('keeps fields it has no shape for as JSON: an origin that sends ever new field names grows no table without bound', () => {
    const tier = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'lru' });
    // 3,000 distinct lists of names, more than the shapes a process makes: every entry still reads back whole.
    for (let i = 0; i < 3_000; i++) {
      const key = `example.test/n${i}`;
      tier.set(key, fixtures.entry(key, { body: 20, headers: { [`x-request-${i}`]: String(i) } }));
    }
    for (let i = 0; i < 3_000; i += 7) {
      const got = tier.get(`example.test/n${i}`) as CacheEntry;
      expect(got.meta.headers[`x-request-${i}`]).toBe(String(i));
      expect(got.meta.headers['content-type']).toBe('application/octet-stream');
    }
  });
});
