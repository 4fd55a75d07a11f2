/**
 * The Redis tier on a real three-primary Redis Cluster (test/helpers/redis-cluster.ts), `cluster: true`: the shared
 * tier contract, then what differs from one server — tag sets, Vary records and deletes spanning slots, key walks and
 * clear() over every primary, server figures summed — and a slot moved to another primary while entries are in it.
 */
import { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { recordSize, type CacheEntry } from '../../cache-store/entry.js';
import { bodyKey, metaKey, tagKey } from '../../cache-store/redis/codec.js';
import { loadRedisClient } from '../../cache-store/redis/connect.js';
import { RedisTier, type RedisTierOptions } from '../../cache-store/redis/redis-tier.js';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js';
import { eventually } from '../helpers/redis.js';
import { bodyBytes, Fixtures, recordingLogger, TestClock } from './fixtures.js';
import { runTierSuite, type TierContext, type TierHarness } from './tier-suite.js';
import { freshUntil } from '../../policies/http/freshness.js';

let cluster: TestRedisCluster;
/** A plain Cluster client for reaching into Redis directly. */
let client: Cluster;
let prefixes = 0;

beforeAll(async () => {
  await loadRedisClient();
  cluster = await startRedisCluster();
  client = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0] as number }], { redisOptions: { maxRetriesPerRequest: 1 } });
  client.on('error', () => undefined);
}, 30_000);

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

async function connected(tier: RedisTier): Promise<RedisTier> {
  await eventually('the tier is connected', () => tier.stats().connected === 1);
  return tier;
}

function newTier(context: TierContext, overrides: Partial<RedisTierOptions> = {}): RedisTier {
  return new RedisTier({
    url: `redis://127.0.0.1:${cluster.ports[0]}`,
    cluster: true,
    prefix: `c${++prefixes}:`,
    now: context.now,
    log: recordingLogger(),
    maxBodyBytes: context.maxBytes,
    timeoutMs: 500,
    maxPendingBytes: 64 * 1024 * 1024,
    maxVariants: 32,
    ...overrides,
  });
}

runTierSuite(
  'RedisTier on a Redis Cluster',
  async (context): Promise<TierHarness> => {
    const tier = await connected(newTier(context));
    const prefix = `c${prefixes}:`;
    return {
      tier,
      settle: () => tier.flushed(),
      corrupt: async (key) => {
        const value = (await client.getBuffer(metaKey(prefix, key))) as Buffer;
        value[value.length - 1] = (value[value.length - 1] as number) ^ 0xff;
        await client.set(metaKey(prefix, key), value);
      },
      dispose: async () => {
        await tier.clear();
        await tier.close();
      },
    };
  },
  { expires: true, recency: false, accounting: false },
);

const MiB = 1024 * 1024;
const clock = new TestClock();
const fx = new Fixtures(clock);
const context: TierContext = { maxBytes: 8 * MiB, now: clock.now };
const open: RedisTier[] = [];

async function tier(overrides: Partial<RedisTierOptions> = {}): Promise<{ tier: RedisTier; prefix: string }> {
  const t = await connected(newTier(context, overrides));
  open.push(t);
  return { tier: t, prefix: overrides.prefix ?? `c${prefixes}:` };
}

afterEach(async () => {
  for (const t of open.splice(0)) {
    await t.clear();
    await t.close();
  }
});

/** How many of `names` each primary holds. */
async function perNode(names: string[]): Promise<number[]> {
  const wanted = new Set(names);
  return (await cluster.keysPerNode('*')).map((found) => found.filter((name) => wanted.has(name)).length);
}

describe('RedisTier on a Redis Cluster: what spans slots', () => {
  it('entries with tags on several primaries: tag sets filled, keysForTag and deleteMany reach every slot', async () => {
    const { tier: t, prefix } = await tier();
    const keys = Array.from({ length: 12 }, (_, i) => `tags.test/${i}`);
    const entries = new Map(keys.map((key) => [key, fx.entry(key, { body: key === 'tags.test/0' ? 200_000 : 50, tags: ['all', `one-${key}`] })]));
    for (const [key, entry] of entries) expect(t.set(key, entry)).toBe(true);
    await t.flushed();
    expect((await perNode(keys.map((key) => metaKey(prefix, key)))).filter((n) => n > 0).length).toBeGreaterThan(1);
    expect((await client.smembers(tagKey(prefix, 'all'))).sort()).toEqual([...keys].sort());
    expect(await client.pttl(tagKey(prefix, 'all'))).toBeGreaterThan(0);
    expect((await t.keysForTag('all')).sort()).toEqual([...keys].sort());
    for (const [key, entry] of entries) expect(bodyBytes(((await t.get(key)) as CacheEntry).body)).toEqual(bodyBytes(entry.body));
    expect(await client.exists(bodyKey(prefix, 'tags.test/0'))).toBe(1);
    await t.deleteMany(keys);
    expect(await perNode(keys.flatMap((key) => [metaKey(prefix, key), bodyKey(prefix, key)]))).toEqual([0, 0, 0]);
    for (const key of keys) expect(await t.get(key)).toBeUndefined();
  });

  it('a Vary record over maxVariants deletes the dropped variants, in other slots', async () => {
    const { tier: a, prefix } = await tier({ maxVariants: 2 });
    const variants = ['en', 'fr', 'de'].map((lang) => `vary.test/v\n${lang}`);
    for (const key of variants) a.set(key, fx.entry(key, { primaryKey: 'vary.test/v', vary: ['accept-language'] }));
    a.set('vary.test/v', fx.vary('vary.test/v', ['accept-language'], ['en', 'fr']));
    await a.flushed();
    a.set('vary.test/v', fx.vary('vary.test/v', ['accept-language'], ['de']));
    await a.flushed();
    expect(await a.get('vary.test/v')).toEqual(fx.vary('vary.test/v', ['accept-language'], ['fr', 'de']));
    expect(await client.exists(metaKey(prefix, variants[0] as string))).toBe(0);
    expect((await a.get(variants[1] as string))?.kind).toBe('entry');
    expect((await a.get(variants[2] as string))?.kind).toBe('entry');
  });

  it('updateMeta rewrites the meta key in place (one script on one slot)', async () => {
    const { tier: t, prefix } = await tier();
    const big = fx.entry('meta.test/big', { body: 200_000, maxAge: 600 });
    t.set(big.meta.key, big);
    await t.flushed();
    const read = (await t.get(big.meta.key)) as CacheEntry;
    const bodyBefore = (await client.getBuffer(bodyKey(prefix, big.meta.key))) as Buffer;
    const refreshed: CacheEntry = { ...read, meta: { ...read.meta, lifetime: read.meta.lifetime + 1_000 } };
    expect(t.updateMeta(big.meta.key, refreshed, read.meta)).toBe(true);
    await t.flushed();
    expect(freshUntil(((await t.get(big.meta.key)) as CacheEntry).meta)).toBe(freshUntil(refreshed.meta));
    expect((await client.getBuffer(bodyKey(prefix, big.meta.key)))?.equals(bodyBefore)).toBe(true);
    expect(t.stats().writes).toBe(2);
  });

  it('keys(prefix) and clear() walk every primary; clear() keeps other prefixes; the server figures are summed', async () => {
    const { tier: a, prefix } = await tier({ prefix: 'walk[a]*:' });
    const { tier: b, prefix: bPrefix } = await tier({ prefix: 'walk-b:' });
    const keys = Array.from({ length: 20 }, (_, i) => `walk.test/${i % 2 === 0 ? 'even' : 'odd'}/${i}`);
    for (const key of keys) a.set(key, fx.entry(key, { body: 10, tags: ['t'] }));
    b.set('walk.test/even/0', fx.entry('walk.test/even/0', { body: 10 }));
    await Promise.all([a.flushed(), b.flushed()]);
    expect((await perNode(keys.map((key) => metaKey(prefix, key)))).filter((n) => n > 0).length).toBeGreaterThan(1);
    expect((await a.keys('walk.test/even/')).sort()).toEqual(keys.filter((key) => key.includes('/even/')).sort());
    expect((await a.keys('')).sort()).toEqual([...keys].sort());
    await a.refreshServerFigures();
    const dbsizes = await Promise.all(cluster.nodes.map((node) => node.dbsize()));
    expect(a.stats().entries).toBe(dbsizes.reduce((x, y) => x + y));
    await a.clear();
    expect(await a.keys('')).toEqual([]);
    expect((await cluster.keysPerNode('walk[[]a[]][*]:*')).flat()).toEqual([]);
    expect(await b.keys('')).toEqual(['walk.test/even/0']);
    expect(await client.exists(metaKey(bPrefix, 'walk.test/even/0'))).toBe(1);
  });
});

describe('RedisTier on a Redis Cluster: a slot moved to another primary', () => {
  it('follows the move (MOVED): the entry stays readable, and is written and deleted where the slot now is', async () => {
    const { tier: t, prefix } = await tier();
    const key = 'move.test/a';
    const entry = fx.entry(key, { body: 200_000, tags: ['moved'] });
    t.set(key, entry);
    await t.flushed();
    const slot = Number(await cluster.nodes[0]?.cluster('KEYSLOT', metaKey(prefix, key)));
    const ids = await Promise.all(cluster.nodes.map(async (node) => String(await node.cluster('MYID'))));
    const counts = await Promise.all(cluster.nodes.map((node) => node.cluster('COUNTKEYSINSLOT', slot)));
    const from = counts.findIndex((n) => Number(n) > 0);
    expect(from).toBeGreaterThanOrEqual(0);
    const to = (from + 1) % cluster.nodes.length;
    const source = cluster.nodes[from] as (typeof cluster.nodes)[number];
    const target = cluster.nodes[to] as (typeof cluster.nodes)[number];
    // The moves redis-cli --cluster reshard makes, for one slot.
    await target.cluster('SETSLOT', slot, 'IMPORTING', ids[from] as string);
    await source.cluster('SETSLOT', slot, 'MIGRATING', ids[to] as string);
    const names = (await source.cluster('GETKEYSINSLOT', slot, 100)) as string[];
    expect(names.sort()).toEqual([bodyKey(prefix, key), metaKey(prefix, key)].sort());
    await source.call('MIGRATE', '127.0.0.1', String(cluster.ports[to]), '', '0', '5000', 'KEYS', ...names);
    for (const node of cluster.nodes) await node.cluster('SETSLOT', slot, 'NODE', ids[to] as string);
    expect(Number(await target.cluster('COUNTKEYSINSLOT', slot))).toBe(2);

    const read = (await t.get(key)) as CacheEntry;
    expect(read?.kind).toBe('entry');
    expect(recordSize(read)).toBe(recordSize(entry));
    expect(bodyBytes(read.body)).toEqual(bodyBytes(entry.body));
    const rewritten = fx.entry(key, { body: 100 });
    t.set(key, rewritten);
    await t.flushed();
    expect(bodyBytes(((await t.get(key)) as CacheEntry).body)).toEqual(bodyBytes(rewritten.body));
    expect(Number(await target.cluster('COUNTKEYSINSLOT', slot))).toBe(1);
    t.delete(key);
    await t.flushed();
    expect(Number(await target.cluster('COUNTKEYSINSLOT', slot))).toBe(0);
    expect(t.stats().errors).toBe(0);
  });
});
