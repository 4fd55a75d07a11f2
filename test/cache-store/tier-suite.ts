/**
 * The behaviour every cache tier shares, run against each implementation (memory-tier.test.ts,
 * lmdb-tier.test.ts, redis-tier.test.ts). A tier is driven through a harness that knows how to wait for its queued writes and,
 * where the tier supports it, how to sweep expired entries or damage a stored record.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CONTIGUOUS_LIMIT, isChunked } from '../../cache-store/body.js';
import { recordSize, STALE_KEEP_MS, type CacheEntry, type CacheRecord } from '../../cache-store/entry.js';
import type { CacheTier } from '../../cache-store/tier.js';
import { bodyBytes, digest, Fixtures, partsBody, TestClock } from './fixtures.js';

export interface TierContext {
  maxBytes: number;
  now: () => number;
}

export interface TierHarness {
  /** The tier under test (may be a new instance after `corrupt`). */
  readonly tier: CacheTier;
  /** Waits until queued writes, deletes and access times have reached the tier's storage. */
  settle(): Promise<void>;
  /** Runs one expiry sweep, if the tier has a sweeper. */
  sweep?(): Promise<number>;
  /** Damages the stored record of `key` (as a disk error would), if the tier has storage to damage. */
  corrupt?(key: string): Promise<void>;
  /** Closes the tier and removes everything it created. */
  dispose(): Promise<void>;
  /** The bytes the tier charges a record against its budget, when not recordSize (the memory tier's). */
  sizeOf?(record: CacheRecord): number;
}

export interface TierSuiteOptions {
  /** The tier drops entries past meta.deletableAt (on read or by sweeping). */
  expires: boolean;
  /** The tier evicts least recently used first (not, e.g., by frequency with admission control). */
  recency: boolean;
  /**
   * The tier keeps its own byte budget of maxBytes, with exact `entries` and `bytes` in stats(). A tier whose
   * budget is its server's (Redis: maxmemory) declines only records over maxBytes, and its count is checked
   * through keys('').
   */
  accounting: boolean;
}

const MiB = 1024 * 1024;

export function runTierSuite(name: string, createTier: (context: TierContext) => Promise<TierHarness>, options: TierSuiteOptions): void {
  describe(`${name}: CacheTier contract`, () => {
    const clock = new TestClock();
    const fx = new Fixtures(clock);
    const open: TierHarness[] = [];

    async function harness(maxBytes = 16 * MiB): Promise<TierHarness> {
      const h = await createTier({ maxBytes, now: clock.now });
      open.push(h);
      return h;
    }

    afterEach(async () => {
      for (const h of open.splice(0)) await h.dispose();
    });

    /** The tier holds `count` records: by its stats when it accounts exactly, else by listing its keys. */
    async function expectCount(h: TierHarness, count: number, bytes?: number): Promise<void> {
      if (options.accounting) {
        expect(h.tier.stats().entries).toBe(count);
        if (bytes !== undefined) expect(h.tier.stats().bytes).toBe(bytes);
      } else {
        expect((await h.tier.keys('')).length).toBe(count);
      }
    }

    async function getEntry(tier: CacheTier, key: string): Promise<CacheEntry> {
      const record = await tier.get(key);
      expect(record?.kind).toBe('entry');
      return record as CacheEntry;
    }

    it('round-trips an entry: meta, headers, body bytes and a working policy', async () => {
      const h = await harness();
      const revalidatable = fx.entry('example.test/a', {
        body: 10_000,
        etag: '"v1"',
        tags: ['product-1', 'catalog'],
        headers: { link: ['</a.css>; rel=preload', '</b.js>; rel=preload'], 'x-unicode': 'grüße ✓' },
      });
      const expiring = fx.entry('example.test/b', { body: 3_000, maxAge: 60 });
      expect(revalidatable.meta.deletableAt).toBe(Infinity);
      expect(Number.isFinite(expiring.meta.deletableAt)).toBe(true);
      expect(await h.tier.set('example.test/a', revalidatable)).toBe(true);
      expect(await h.tier.set('example.test/b', expiring)).toBe(true);
      await h.settle();

      for (const original of [revalidatable, expiring]) {
        const got = await getEntry(h.tier, original.meta.key);
        expect(got.meta).toEqual(original.meta);
        expect(got.body.length).toBe(original.body.length);
        expect(bodyBytes(got.body).equals(bodyBytes(original.body))).toBe(true);
        // The policy a revalidation needs is made again from what the tier returns (Freshness.storedPolicy).
        const request = fx.request(original.meta.key);
        const policy = fx.freshness.storedPolicy(got.meta, request);
        expect(policy.storable()).toBe(true);
        expect(policy.responseHeaders()).toEqual(fx.freshness.storedPolicy(original.meta, request).responseHeaders());
        expect(policy.revalidationHeaders(request)['if-none-match']).toBe(original.meta.headers.etag);
      }
    });

    it('round-trips a vary record', async () => {
      const h = await harness();
      const vary = fx.vary('example.test/v', ['accept-encoding', 'accept-language'], ['gzip\u0000en', 'br\u0000fr']);
      expect(await h.tier.set('example.test/v', vary)).toBe(true);
      await h.settle();
      expect(await h.tier.get('example.test/v')).toEqual(vary);
    });

    it('an overwrite replaces the record and is charged once', async () => {
      const h = await harness();
      await h.tier.set('example.test/o', fx.entry('example.test/o', { body: 50_000 }));
      await h.settle();
      const second = fx.entry('example.test/o', { body: 2_000, tags: ['new'] });
      await h.tier.set('example.test/o', second);
      await h.settle();
      const got = await getEntry(h.tier, 'example.test/o');
      expect(digest(got.body)).toBe(digest(second.body));
      expect(got.meta).toEqual(second.meta);
      await expectCount(h, 1, (h.sizeOf ?? recordSize)(second));
    });

    it('delete removes a record; deleting a missing key is harmless', async () => {
      const h = await harness();
      await h.tier.set('example.test/d', fx.entry('example.test/d'));
      await h.tier.set('example.test/keep', fx.entry('example.test/keep'));
      await h.settle();
      await h.tier.delete('example.test/d');
      await h.tier.delete('example.test/never-stored');
      await h.settle();
      expect(await h.tier.get('example.test/d')).toBeUndefined();
      expect((await h.tier.get('example.test/keep'))?.kind).toBe('entry');
      await expectCount(h, 1);
    });

    it('keys(prefix) lists stored keys, including very long and unusual ones', async () => {
      const h = await harness();
      const long = 'a.test/' + 'x'.repeat(5000);
      const keys = ['a.test/1', 'a.test/2', 'a.test/ü/ß', long, 'b.test/1', 'a.tesu/1', '\u0001a.test/control', `b.test/${'y'.repeat(80)}\u0003z`, '#b.test/hash', '😀.test/\u{1F600}'];
      for (const key of keys) expect(await h.tier.set(key, fx.entry(key, { body: 100 }))).toBe(true);
      await h.settle();
      expect((await h.tier.keys('a.test/')).sort()).toEqual(['a.test/1', 'a.test/2', 'a.test/ü/ß', long].sort());
      expect((await h.tier.keys('')).sort()).toEqual([...keys].sort());
      expect(await h.tier.keys('c.test/')).toEqual([]);
      expect(await h.tier.keys('a.test/' + 'x'.repeat(3000))).toEqual([long]);
      for (const key of keys) expect((await getEntry(h.tier, key)).meta.key).toBe(key);
    });

    it('clear empties the tier', async () => {
      const h = await harness();
      for (let i = 0; i < 20; i++) await h.tier.set(`c.test/${i}`, fx.entry(`c.test/${i}`, { body: 500 }));
      await h.settle();
      await expectCount(h, 20);
      await h.tier.clear();
      await h.settle();
      expect(await h.tier.keys('')).toEqual([]);
      expect(await h.tier.get('c.test/3')).toBeUndefined();
      await expectCount(h, 0, 0);
      // Usable afterwards.
      await h.tier.set('c.test/after', fx.entry('c.test/after'));
      await h.settle();
      expect((await h.tier.get('c.test/after'))?.kind).toBe('entry');
    });

    it.runIf(options.accounting)('keeps the byte bound while 10× maxBytes of distinct entries pass through', async () => {
      const maxBytes = 2 * MiB;
      const h = await harness(maxBytes);
      const keys: string[] = [];
      let written = 0;
      for (let i = 0; written < 10 * maxBytes; i++) {
        const key = `bound.test/${i}`;
        const entry = fx.entry(key, { body: 1_000 + ((i * 7919) % 48_000) });
        written += (h.sizeOf ?? recordSize)(entry);
        keys.push(key);
        await h.tier.set(key, entry);
        clock.advance(1);
        if (i % 50 === 49) await h.settle();
      }
      await h.settle();
      const stats = h.tier.stats();
      expect(stats.bytes).toBeLessThanOrEqual(maxBytes);
      expect(stats.evictions).toBeGreaterThan(0);
      let retained = 0;
      let count = 0;
      for (const key of keys) {
        const record = await h.tier.get(key);
        if (record === undefined) continue;
        retained += (h.sizeOf ?? recordSize)(record);
        count++;
      }
      expect(retained).toBeLessThanOrEqual(maxBytes);
      expect(retained).toBe(stats.bytes);
      expect(count).toBe(stats.entries);
      expect(count).toBeGreaterThan(10);
    });

    it.runIf(options.recency)('evicts least recently used first: a recently read entry survives', async () => {
      const maxBytes = 1 * MiB;
      const h = await harness(maxBytes);
      const size = Math.floor(maxBytes / 40);
      for (let i = 0; i < 10; i++) {
        await h.tier.set(`lru.test/${i}`, fx.entry(`lru.test/${i}`, { body: size }));
        clock.advance(10);
      }
      await h.settle();
      clock.advance(10);
      expect(await h.tier.get('lru.test/0')).toBeDefined();
      await h.settle();
      // Newer entries until lru.test/1 (written after lru.test/0, read before it) is evicted. (keys() does not
      // count as an access. How many fit depends on the tier: a disk tier counts the pages its records take.)
      let last = 10;
      for (; last < 200 && (await h.tier.keys('lru.test/')).includes('lru.test/1'); last++) {
        await h.tier.set(`lru.test/${last}`, fx.entry(`lru.test/${last}`, { body: size }));
        clock.advance(10);
        await h.settle();
      }
      const left = await h.tier.keys('lru.test/');
      expect(left).not.toContain('lru.test/1');
      expect(left).toContain('lru.test/0');
      expect(left).toContain(`lru.test/${last - 1}`);
    });

    it('a large body round-trips as a ChunkedBody whose chunks(start, end) yield exactly the range', async () => {
      const h = await harness(32 * MiB);
      const size = 5 * MiB + 12_345;
      expect(size).toBeGreaterThan(CONTIGUOUS_LIMIT);
      const source = partsBody(size, 100_000);
      const whole = bodyBytes(source);
      const entry = fx.entry('big.test/file', { body: source });
      expect(await h.tier.set('big.test/file', entry)).toBe(true);
      await h.settle();
      const got = await getEntry(h.tier, 'big.test/file');
      expect(isChunked(got.body)).toBe(true);
      expect(got.body.length).toBe(size);
      expect(digest(got.body)).toBe(digest(source));
      const ranges: Array<[number, number]> = [
        [0, 1],
        [0, size],
        [262_143, 262_145],
        [1_000_000, 3_000_123],
        [size - 10, size],
        [size - 1, size + 100],
        [4_194_304, 4_194_304 + 262_144],
        [17, 17],
      ];
      for (const [start, end] of ranges) {
        const bytes = bodyBytes(got.body, start, end);
        expect(bytes.equals(whole.subarray(start, Math.min(end, size)))).toBe(true);
      }
    });

    it('declines a record larger than maxBytes and keeps what it had', async () => {
      const h = await harness(256 * 1024);
      await h.tier.set('bad.test/small', fx.entry('bad.test/small'));
      await h.settle();
      const before = h.tier.stats();
      const count = options.accounting ? before.entries : (await h.tier.keys('')).length;
      expect(await h.tier.set('bad.test/huge', fx.entry('bad.test/huge', { body: 300 * 1024 }))).toBe(false);
      await h.settle();
      expect(await h.tier.get('bad.test/huge')).toBeUndefined();
      expect((await h.tier.get('bad.test/small'))?.kind).toBe('entry');
      await expectCount(h, count, before.bytes);
    });

    it('a declined overwrite does not leave the replaced record behind', async () => {
      const h = await harness(256 * 1024);
      await h.tier.set('bad.test/k', fx.entry('bad.test/k', { body: 1_000 }));
      await h.settle();
      expect(await h.tier.set('bad.test/k', fx.entry('bad.test/k', { body: 300 * 1024 }))).toBe(false);
      await h.settle();
      expect(await h.tier.get('bad.test/k')).toBeUndefined();
      await expectCount(h, 0, 0);
    });

    it('an empty body round-trips', async () => {
      const h = await harness();
      const entry = fx.entry('empty.test/', { body: Buffer.alloc(0) });
      await h.tier.set('empty.test/', entry);
      await h.settle();
      const got = await getEntry(h.tier, 'empty.test/');
      expect(got.body.length).toBe(0);
      expect(got.meta).toEqual(entry.meta);
    });

    it.runIf(options.expires)('entries past deletableAt are not returned and are swept', async () => {
      const h = await harness();
      const short = fx.entry('exp.test/short', { maxAge: 1 });
      const long = fx.entry('exp.test/long', { maxAge: 3600 });
      const revalidatable = fx.entry('exp.test/etag', { maxAge: 1, etag: '"e"' });
      for (const e of [short, long, revalidatable]) await h.tier.set(e.meta.key, e);
      await h.settle();
      expect(await h.tier.get('exp.test/short')).toBeDefined();
      // Past the stale windows and the keep period that follows them.
      clock.advance(STALE_KEEP_MS + 5_000);
      if (h.sweep) expect(await h.sweep()).toBe(1);
      await h.settle();
      expect(await h.tier.get('exp.test/short')).toBeUndefined();
      expect(await h.tier.get('exp.test/long')).toBeDefined();
      // Stale but revalidatable: kept.
      expect(await h.tier.get('exp.test/etag')).toBeDefined();
      await h.settle();
      expect((await h.tier.keys('exp.test/')).sort()).toEqual(['exp.test/etag', 'exp.test/long']);
      await expectCount(h, 2);
    });

    it('a damaged record is a miss, removed and counted; its neighbours are unaffected', async (context) => {
      const h = await harness();
      if (!h.corrupt) {
        context.skip();
        return;
      }
      const records: CacheRecord[] = [fx.entry('bad.test/1', { body: 2_000 }), fx.entry('bad.test/2', { body: 2_000 })];
      for (const r of records) await h.tier.set((r as CacheEntry).meta.key, r);
      await h.settle();
      await h.corrupt('bad.test/1');
      expect(await h.tier.get('bad.test/1')).toBeUndefined();
      expect((await h.tier.get('bad.test/2'))?.kind).toBe('entry');
      await h.settle();
      expect(await h.tier.keys('bad.test/')).toEqual(['bad.test/2']);
      await expectCount(h, 1);
      expect(h.tier.stats().corruptRecords).toBe(1);
    });
  });
}
