import { afterEach, describe, expect, it } from 'vitest';
import { CacheStore } from '../../cache-store/cache-store.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import { MemoryTier } from '../../cache-store/memory/memory-tier.js';
import { MAX_MARKS, PurgeLog, type PurgeSubject } from '../../cache-store/purge-log.js';
import { Fixtures, TestClock } from './fixtures.js';
import { freshUntil } from '../../policies/http/freshness.js';
import { lmdbHarness, type LmdbHarness } from './lmdb-harness.js';

const page: PurgeSubject = { key: 'shop.test/p/1', primaryKey: 'shop.test/p/1', tags: ['product-1'] };

describe('PurgeLog', () => {
  it('a write that started at the current generation is never affected', () => {
    const log = new PurgeLog();
    log.record({ all: true }, false);
    expect(log.since(log.current, page)).toBe('none');
  });

  it('finds the purges since a generation that address the subject, as the store would find it', () => {
    const cases: Array<[Parameters<PurgeLog['record']>[0], boolean]> = [
      [{ urls: ['shop.test/p/1'] }, true],
      [{ urls: ['shop.test/p/2'] }, false],
      [{ paths: ['/p/1'] }, true],
      [{ paths: ['/p'] }, false],
      [{ keyPrefixes: ['shop.test/p/'] }, true],
      [{ keyPrefixes: ['other.test/p/'] }, false],
      [{ pathPrefixes: ['/p/'] }, true],
      [{ pathPrefixes: ['/q/'] }, false],
      [{ tags: ['product-1'] }, true],
      [{ tags: ['product-2'] }, false],
      [{ all: true }, true],
    ];
    for (const [selector, addressed] of cases) {
      const log = new PurgeLog();
      const since = log.current;
      log.record(selector, false);
      expect([selector, log.since(since, page)]).toEqual([selector, addressed ? 'hard' : 'none']);
    }
  });

  it('matches a Vary variant by its URL, and a subject whose tags are not known yet by any tag purge', () => {
    const log = new PurgeLog();
    const since = log.current;
    log.record({ paths: ['/p/1'] }, false);
    expect(log.since(since, { key: 'shop.test/p/1\naccept-language=fr', primaryKey: 'shop.test/p/1', tags: [] })).toBe('hard');
    const tagged = new PurgeLog();
    tagged.record({ tags: ['anything'] }, false);
    expect(tagged.since(0, { key: 'a.test/x', primaryKey: 'a.test/x' })).toBe('hard');
    expect(tagged.since(0, { key: 'a.test/x', primaryKey: 'a.test/x', tags: [] })).toBe('none');
  });

  it('a hard purge wins over a soft one; only purges after the generation count', () => {
    const log = new PurgeLog();
    log.record({ urls: [page.primaryKey] }, false);
    const since = log.current;
    log.record({ urls: [page.primaryKey] }, true);
    expect(log.since(since, page)).toBe('soft');
    log.record({ tags: ['product-1'] }, false);
    log.record({ urls: ['shop.test/unrelated'] }, true);
    expect(log.since(since, page)).toBe('hard');
    expect(log.since(log.current - 1, page)).toBe('none');
  });

  it('keeps a bounded number of purges; a write older than all of them is treated as purged', () => {
    const log = new PurgeLog();
    const old = log.current;
    log.record({ urls: ['a.test/unrelated'] }, true);
    const recent = log.current;
    for (let i = 0; i < MAX_MARKS; i++) log.record({ urls: [`a.test/other-${i}`] }, false);
    expect(log.since(old, page)).toBe('hard');
    // Still within what is kept: checked one by one.
    expect(log.since(recent + 1, page)).toBe('none');
    // Bounded by items too: one huge purge pushes the others out, and is itself kept.
    const before = log.current;
    log.record({ urls: Array.from({ length: 150_000 }, (_, i) => `a.test/bulk-${i}`) }, false);
    expect(log.since(before, page)).toBe('none');
    expect(log.since(before, { key: 'a.test/bulk-7', primaryKey: 'a.test/bulk-7', tags: [] })).toBe('hard');
    expect(log.since(before - 1, page)).toBe('hard');
  });
});

describe('CacheStore: a write that started before a purge', () => {
  const clock = new TestClock();
  const fx = new Fixtures(clock);
  let disk: LmdbHarness | undefined;

  afterEach(async () => {
    await disk?.dispose();
    disk = undefined;
  });

  async function storeWithDisk(): Promise<{ store: CacheStore; memory: MemoryTier; disk: LmdbHarness }> {
    disk = await lmdbHarness({ maxBytes: 64 * 1024 * 1024, now: clock.now });
    const memory = new MemoryTier({ maxBytes: 64 * 1024 * 1024, now: clock.now, policy: 'lru' });
    return { store: new CacheStore({ memory, lower: [disk.tier], maxVariants: 4 }), memory, disk };
  }

  it('is dropped from every tier after a hard purge that addresses it, and stored after an unrelated one', async () => {
    const { store, memory, disk } = await storeWithDisk();
    const since = store.purgeGeneration;
    await store.purge({ urls: ['shop.test/p/1'] }, { soft: false, now: clock.now() });
    expect(await store.put(fx.entry('shop.test/p/1'), since)).toBe('dropped');
    expect(await store.put(fx.entry('shop.test/p/2'), since)).toBe('stored');
    await disk.settle();
    expect(memory.get('shop.test/p/1')).toBeUndefined();
    expect(disk.tier.get('shop.test/p/1')).toBeUndefined();
    expect(disk.tier.get('shop.test/p/2')?.kind).toBe('entry');
    // A write that starts after the purge is stored as usual.
    expect(await store.put(fx.entry('shop.test/p/1'))).toBe('stored');
  });

  it('is stored already stale after a soft purge, in every tier', async () => {
    const { store, disk } = await storeWithDisk();
    const since = store.purgeGeneration;
    await store.purge({ tags: ['product-1'] }, { soft: true, now: clock.now() });
    clock.advance(1000);
    expect(await store.put(fx.entry('shop.test/p/1', { tags: ['product-1'], etag: '"v1"' }), since)).toBe('stale');
    await disk.settle();
    for (const tier of [store.memory, disk.tier]) {
      const entry = tier.get('shop.test/p/1') as CacheEntry;
      expect(freshUntil(entry.meta)).toBeLessThanOrEqual(clock.now());
      expect(fx.freshness.evaluate(entry.meta, {}, clock.now())).toBe('revalidate');
    }
  });

  it('a 304 refresh of an entry read before a purge does not bring it back', async () => {
    const { store } = await storeWithDisk();
    const entry = fx.entry('shop.test/p/1', { etag: '"v1"' });
    await store.put(entry);
    const since = store.purgeGeneration;
    await store.purge({ keyPrefixes: ['shop.test/p/'] }, { soft: false, now: clock.now() });
    expect(await store.replace(entry, entry.meta, since)).toBe('dropped');
    expect((await store.lookup('shop.test/p/1', {})).entry).toBeUndefined();
  });

  it('a purge recorded before the shared tiers are purged elsewhere (notePurge) counts as well', async () => {
    const { store } = await storeWithDisk();
    const since = store.purgeGeneration;
    store.notePurge({ all: true }, false);
    expect(await store.put(fx.entry('shop.test/p/9'), since)).toBe('dropped');
    expect(store.purgedSince(since, { key: 'x.test/a', primaryKey: 'x.test/a', tags: [] })).toBe('hard');
  });
});
