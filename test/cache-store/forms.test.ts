/**
 * Compressed forms in every tier: CacheStore.addForms keeps them beside the identity body in memory and packed
 * after it in LMDB and Redis (cache-store/forms.ts); a store with a cold memory tier reads them back intact, a
 * packed body whose length does not add up reads as absent, and forms are not added to a replaced response.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CacheStore } from '../../cache-store/cache-store.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import type { CacheTier } from '../../cache-store/tier.js';
import { packed, unpacked } from '../../cache-store/forms.js';
import { MemoryTier } from '../../cache-store/memory/memory-tier.js';
import { loadRedisClient } from '../../cache-store/redis/connect.js';
import { RedisTier } from '../../cache-store/redis/redis-tier.js';
import { eventually, startRedis, type TestRedis } from '../helpers/redis.js';
import { bodyBytes, Fixtures, partsBody, recordingLogger, TestClock } from './fixtures.js';
import { lmdbHarness, type LmdbHarness } from './lmdb-harness.js';

const MiB = 1024 * 1024;
const clock = new TestClock();
const fx = new Fixtures(clock);
const disks: LmdbHarness[] = [];
const redisTiers: RedisTier[] = [];
let redis: TestRedis;

beforeAll(async () => {
  await loadRedisClient();
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

afterEach(async () => {
  for (const disk of disks.splice(0)) await disk.dispose();
  for (const tier of redisTiers.splice(0)) {
    await tier.clear();
    await tier.close();
  }
});

async function lmdb(): Promise<CacheTier> {
  const disk = await lmdbHarness({ maxBytes: 64 * MiB, now: clock.now });
  disks.push(disk);
  return disk.tier;
}

async function redisTier(): Promise<RedisTier> {
  const tier = new RedisTier({
    url: redis.url,
    prefix: 'forms:',
    now: clock.now,
    log: recordingLogger(),
    maxBodyBytes: 64 * MiB,
    timeoutMs: 2_000,
    maxPendingBytes: 64 * MiB,
    maxVariants: 32,
  });
  await eventually('the tier is connected', () => tier.stats().connected === 1);
  redisTiers.push(tier);
  return tier;
}

const memory = (): MemoryTier => new MemoryTier({ maxBytes: 64 * MiB, now: clock.now, policy: 'lru' });

const forms = { br: Buffer.from('brotli bytes'), gzip: Buffer.from('gzip bytes, a few more') };

for (const [name, makeTier] of [
  ['LMDB', lmdb],
  ['Redis', redisTier],
] as const) {
  describe(`compressed forms through ${name}`, () => {
    it('are stored beside the body and read back by a store with a cold memory tier', async () => {
      const lower = await makeTier();
      const store = new CacheStore({ memory: memory(), lower: [lower], maxVariants: 4 });
      const entry = fx.entry('forms.test/app.js', { body: 5_000 });
      await store.put(entry);
      expect(await store.addForms(entry, forms, store.purgeGeneration)).toBe(true);
      await store.flush();
      const hot = (await store.lookup('forms.test/app.js', {})).entry as CacheEntry;
      expect(hot.forms?.br).toEqual(forms.br);
      const cold = new CacheStore({ memory: memory(), lower: [lower], maxVariants: 4 });
      const read = (await cold.lookup('forms.test/app.js', {})).entry as CacheEntry;
      expect(bodyBytes(read.body).equals(bodyBytes(entry.body))).toBe(true);
      expect(bodyBytes(read.forms?.br as Buffer).equals(forms.br)).toBe(true);
      expect(bodyBytes(read.forms?.gzip as Buffer).equals(forms.gzip)).toBe(true);
      expect(read.meta.encodings).toEqual({ identity: 5_000, br: forms.br.length, gzip: forms.gzip.length });
    });

    it('are not added once the entry was replaced by another response', async () => {
      const lower = await makeTier();
      const store = new CacheStore({ memory: memory(), lower: [lower], maxVariants: 4 });
      const first = fx.entry('forms.test/b.js', { body: 3_000 });
      await store.put(first);
      clock.advance(1_000);
      await store.put(fx.entry('forms.test/b.js', { body: 3_000 }));
      expect(await store.addForms(first, forms, store.purgeGeneration)).toBe(false);
    });
  });
}

describe('packing', () => {
  it('round-trips chunked bodies and refuses a length that does not add up', () => {
    const entry = fx.entry('forms.test/big', { body: partsBody(2 * MiB + 7, 100_000) });
    const withForms: CacheEntry = { ...entry, meta: { ...entry.meta, encodings: { identity: entry.body.length, br: 10, gzip: 12 } }, forms: { br: Buffer.alloc(10, 1), gzip: Buffer.alloc(12, 2) } };
    const lower = packed(withForms) as CacheEntry;
    expect(lower.body.length).toBe(2 * MiB + 7 + 22);
    const back = unpacked({ kind: 'entry', meta: lower.meta, body: lower.body }) as CacheEntry;
    expect(bodyBytes(back.body).equals(bodyBytes(entry.body))).toBe(true);
    expect(bodyBytes(back.forms?.gzip as Buffer).equals(Buffer.alloc(12, 2))).toBe(true);
    expect(unpacked({ kind: 'entry', meta: lower.meta, body: Buffer.alloc(5) })).toBeUndefined();
  });
});
