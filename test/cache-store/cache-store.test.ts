/**
 * CacheStore's own logic over a real memory tier and a real LMDB tier (in a temp dir): Vary records (one
 * record per URL naming its fields, the variant cap, a change of fields), lookups that select a variant and
 * promote a disk hit, and purges (by URL with every variant, tag, key and path prefix, path, everything; hard and
 * soft; within a reach), invalidation. purge-log.test.ts covers writes that race with purges;
 * meta-update.test.ts what a soft purge writes on disk.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CacheStore } from '../../cache-store/cache-store.js';
import type { CacheEntry, VaryRecord } from '../../cache-store/entry.js';
import { MemoryTier } from '../../cache-store/memory/memory-tier.js';
import { variantKey, varyKey } from '../../policies/http/cache-key.js';
import { Fixtures, TestClock } from './fixtures.js';
import { lmdbHarness, type LmdbHarness } from './lmdb-harness.js';

const MiB = 1024 * 1024;
const clock = new TestClock();
const fx = new Fixtures(clock);
const disks: LmdbHarness[] = [];

afterEach(async () => {
  for (const disk of disks.splice(0)) await disk.dispose();
});

async function tiered(maxVariants = 3): Promise<{ store: CacheStore; memory: MemoryTier; disk: LmdbHarness }> {
  const disk = await lmdbHarness({ maxBytes: 64 * MiB, now: clock.now });
  disks.push(disk);
  const memory = new MemoryTier({ maxBytes: 64 * MiB, now: clock.now, policy: 'lru' });
  return { store: new CacheStore({ memory, lower: [disk.tier], maxVariants }), memory, disk };
}

/** An entry for `lang` of a URL that varies on Accept-Language. */
function variant(primaryKey: string, lang: string, tags: string[] = []): CacheEntry {
  const key = variantKey(primaryKey, varyKey(['accept-language'], { 'accept-language': lang }));
  return fx.entry(key, { primaryKey, vary: ['accept-language'], tags, headers: { vary: 'accept-language', 'content-language': lang } });
}

describe('CacheStore: Vary records', () => {
  it('keeps one Vary record per URL in every tier, and lookup selects the variant a request names', async () => {
    const { store, memory, disk } = await tiered();
    for (const lang of ['en', 'fr']) expect(await store.put(variant('v.test/p', lang))).toBe('stored');
    await disk.settle();
    for (const tier of [memory, disk.tier]) {
      const record = tier.get('v.test/p') as VaryRecord;
      expect([record.kind, record.fields, record.variants.length]).toEqual(['vary', ['accept-language'], 2]);
    }
    const fr = await store.lookup('v.test/p', { 'accept-language': 'fr' });
    expect(fr.entry?.meta.headers['content-language']).toBe('fr');
    expect(fr.key).toBe(variantKey('v.test/p', varyKey(['accept-language'], { 'accept-language': 'fr' })));
    const de = await store.lookup('v.test/p', { 'accept-language': 'de' });
    expect([de.entry, de.key]).toEqual([undefined, variantKey('v.test/p', varyKey(['accept-language'], { 'accept-language': 'de' }))]);
    expect(store.peek('v.test/p', { 'accept-language': 'en' })?.meta.headers['content-language']).toBe('en');
  });

  it('keeps at most maxVariants per URL: the least recently stored variant goes, from every tier', async () => {
    const { store, memory, disk } = await tiered(2);
    for (const lang of ['en', 'fr', 'de']) await store.put(variant('v.test/cap', lang));
    await disk.settle();
    const gone = variantKey('v.test/cap', varyKey(['accept-language'], { 'accept-language': 'en' }));
    expect([memory.get(gone), disk.tier.get(gone)]).toEqual([undefined, undefined]);
    expect((memory.get('v.test/cap') as VaryRecord).variants).toHaveLength(2);
    // Storing a variant again makes it the most recent: then the other old one goes.
    await store.put(variant('v.test/cap', 'fr'));
    await store.put(variant('v.test/cap', 'it'));
    expect((await store.lookup('v.test/cap', { 'accept-language': 'fr' })).entry).toBeDefined();
    expect((await store.lookup('v.test/cap', { 'accept-language': 'de' })).entry).toBeUndefined();
  });

  it('a URL that stops varying, or varies on other fields, loses the variants stored under the old rule', async () => {
    const { store, memory, disk } = await tiered();
    await store.put(variant('v.test/change', 'en'));
    const old = variantKey('v.test/change', varyKey(['accept-language'], { 'accept-language': 'en' }));
    const byEncoding = fx.entry(variantKey('v.test/change', varyKey(['accept-encoding'], { 'accept-encoding': 'gzip' })), {
      primaryKey: 'v.test/change',
      vary: ['accept-encoding'],
    });
    await store.put(byEncoding);
    await disk.settle();
    expect([memory.get(old), disk.tier.get(old)]).toEqual([undefined, undefined]);
    expect((memory.get('v.test/change') as VaryRecord).fields).toEqual(['accept-encoding']);
    await store.put(fx.entry('v.test/change'));
    await disk.settle();
    expect([memory.get(byEncoding.meta.key), disk.tier.get(byEncoding.meta.key), memory.get('v.test/change')?.kind]).toEqual([undefined, undefined, 'entry']);
  });

  it('a disk hit is promoted into memory by lookup and by peek', async () => {
    const { store, memory, disk } = await tiered();
    await store.put(fx.entry('v.test/promoted'));
    await store.put(fx.entry('v.test/peeked'));
    await disk.settle();
    memory.clear();
    expect((await store.lookup('v.test/promoted', {})).entry?.meta.key).toBe('v.test/promoted');
    expect(store.peek('v.test/peeked', {})?.meta.key).toBe('v.test/peeked');
    expect([memory.get('v.test/promoted')?.kind, memory.get('v.test/peeked')?.kind]).toEqual(['entry', 'entry']);
  });
});

describe('CacheStore: purges', () => {
  async function stocked() {
    const context = await tiered();
    const { store, disk } = context;
    for (const lang of ['en', 'fr']) await store.put(variant('a.test/shop/1', lang, ['product-1']));
    await store.put(fx.entry('a.test/shop/2', { tags: ['product-2'] }));
    await store.put(fx.entry('b.test/shop/1', { tags: ['product-1'] }));
    await store.put(fx.entry('b.test/blog/1'));
    await disk.settle();
    return context;
  }
  const present = (context: Awaited<ReturnType<typeof tiered>>, key: string): [boolean, boolean] => [
    context.memory.get(key) !== undefined,
    context.disk.tier.get(key) !== undefined,
  ];

  it('by URL: the URL with every variant, in every tier; the count is of entries', async () => {
    const context = await stocked();
    expect(await context.store.purge({ urls: ['a.test/shop/1'] }, { soft: false, now: clock.now() })).toBe(2);
    await context.disk.settle();
    expect(context.disk.tier.keys('a.test/shop/1')).toEqual([]);
    expect(context.memory.keys('a.test/shop/1')).toEqual([]);
    expect(present(context, 'a.test/shop/2')).toEqual([true, true]);
  });

  it('by tag, by key prefix, by path prefix, by path (any host), and everything', async () => {
    const cases: Array<[Parameters<CacheStore['purge']>[0], number, string[]]> = [
      [{ tags: ['product-1'] }, 3, ['a.test/shop/2', 'b.test/blog/1']],
      [{ keyPrefixes: ['a.test/shop/'] }, 3, ['b.test/blog/1', 'b.test/shop/1']],
      [{ pathPrefixes: ['/shop/'] }, 4, ['b.test/blog/1']],
      [{ paths: ['/shop/1'] }, 3, ['a.test/shop/2', 'b.test/blog/1']],
      [{ all: true }, 5, []],
    ];
    for (const [selector, affected, left] of cases) {
      const context = await stocked();
      expect(await context.store.purge(selector, { soft: false, now: clock.now() }), JSON.stringify(selector)).toBe(affected);
      await context.disk.settle();
      const entries = context.disk.tier.keys('').filter((key) => context.disk.tier.get(key)?.kind === 'entry');
      expect(entries.sort(), JSON.stringify(selector)).toEqual(left);
    }
  });

  it('soft: every tier keeps the entries, stale, so the next request revalidates; Vary records stay', async () => {
    const context = await stocked();
    expect(await context.store.purge({ tags: ['product-1'] }, { soft: true, now: clock.now() })).toBe(3);
    await context.disk.settle();
    for (const tier of [context.memory, context.disk.tier]) {
      const entry = tier.get('b.test/shop/1') as CacheEntry;
      expect(fx.freshness.evaluate(entry.meta, {}, clock.now())).toBe('revalidate');
      expect(tier.get('a.test/shop/1')?.kind).toBe('vary');
      expect(fx.freshness.evaluate((tier.get('a.test/shop/2') as CacheEntry).meta, {}, clock.now())).toBe('fresh');
    }
  });

  it("within 'process': only the memory tier is purged (another process purges the disk tier)", async () => {
    const context = await stocked();
    await context.store.purge({ urls: ['a.test/shop/2'] }, { soft: false, now: clock.now(), within: 'process' });
    await context.disk.settle();
    expect(present(context, 'a.test/shop/2')).toEqual([false, true]);
  });

  it('invalidate: every variant of a URL, in every tier, and how many', async () => {
    const context = await stocked();
    expect(await context.store.invalidate('a.test/shop/1')).toBe(2);
    expect(await context.store.invalidate('a.test/shop/2')).toBe(1);
    expect(await context.store.invalidate('a.test/none')).toBe(0);
    await context.disk.settle();
    expect(present(context, 'a.test/shop/1')).toEqual([false, false]);
    expect(present(context, 'a.test/shop/2')).toEqual([false, false]);
  });
});
