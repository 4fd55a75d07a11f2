/**
 * The Redis tier against a real redis-server started here: the shared tier contract, the layout in Redis
 * (binary values, expiry, tag sets, prefixes), Vary merging between nodes, corrupt values, and faults (a slow
 * server, a full write queue, a server killed and started again).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { recordSize, type CacheEntry } from '../../cache-store/entry.js';
import { bodyKey, metaKey, REDIS_FORMAT_VERSION, tagKey } from '../../cache-store/redis/codec.js';
import { loadRedisClient } from '../../cache-store/redis/connect.js';
import { RedisTier, type RedisTierOptions } from '../../cache-store/redis/redis-tier.js';
import { eventually, startRedis, type TestRedis } from '../helpers/redis.js';
import { bodyBytes, digest, Fixtures, recordingLogger, TestClock } from './fixtures.js';
import { runTierSuite, type TierContext, type TierHarness } from './tier-suite.js';

let redis: TestRedis;
let prefixes = 0;

beforeAll(async () => {
  await loadRedisClient();
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

async function connected(tier: RedisTier): Promise<RedisTier> {
  await eventually('the tier is connected', () => tier.stats().connected === 1);
  return tier;
}

function newTier(context: TierContext, overrides: Partial<RedisTierOptions> = {}): RedisTier {
  return new RedisTier({
    url: redis.url,
    prefix: `t${++prefixes}:`,
    now: context.now,
    log: recordingLogger(),
    maxBodyBytes: context.maxBytes,
    timeoutMs: 200,
    maxPendingBytes: 64 * 1024 * 1024,
    maxVariants: 32,
    ...overrides,
  });
}

async function redisHarness(context: TierContext): Promise<TierHarness> {
  const tier = await connected(newTier(context));
  const prefix = `t${prefixes}:`;
  return {
    tier,
    settle: () => tier.flushed(),
    corrupt: async (key) => {
      const value = (await redis.client.getBuffer(metaKey(prefix, key))) as Buffer;
      value[value.length - 1] = (value[value.length - 1] as number) ^ 0xff;
      await redis.client.set(metaKey(prefix, key), value);
    },
    dispose: async () => {
      await tier.clear();
      await tier.close();
    },
  };
}

// Redis keeps no byte budget of the tier's own (its maxmemory is the budget) and evicts by its own policy.
runTierSuite('RedisTier', redisHarness, { expires: true, recency: false, accounting: false });

const MiB = 1024 * 1024;
const clock = new TestClock();
const fx = new Fixtures(clock);
const context: TierContext = { maxBytes: 8 * MiB, now: clock.now };
const open: RedisTier[] = [];

async function tier(overrides: Partial<RedisTierOptions> = {}): Promise<{ tier: RedisTier; prefix: string; log: ReturnType<typeof recordingLogger> }> {
  const log = recordingLogger();
  const t = await connected(newTier(context, { log, ...overrides }));
  open.push(t);
  return { tier: t, prefix: overrides.prefix ?? `t${prefixes}:`, log };
}

afterEach(async () => {
  for (const t of open.splice(0)) {
    await t.clear();
    await t.close();
  }
});

describe('RedisTier: layout in Redis', () => {
  it('stores the meta value and a large body as binary, expiring at deletableAt, with tag sets that outlive their members', async () => {
    const { tier: t, prefix } = await tier();
    const big = fx.entry('layout.test/big', { body: 200_000, maxAge: 600, tags: ['t1', 'shared'] });
    const small = fx.entry('layout.test/small', { body: 500, maxAge: 60, tags: ['shared'] });
    expect(t.set(big.meta.key, big)).toBe(true);
    expect(t.set(small.meta.key, small)).toBe(true);
    await t.flushed();

    const meta = (await redis.client.getBuffer(metaKey(prefix, big.meta.key))) as Buffer;
    expect(meta.subarray(0, 3)).toEqual(Buffer.from([0x52, 0x4d, REDIS_FORMAT_VERSION]));
    const body = (await redis.client.getBuffer(bodyKey(prefix, big.meta.key))) as Buffer;
    // The raw bytes, behind a 12-byte header: no base64, no JSON.
    expect(body.length).toBe(200_000 + 12);
    expect(body.subarray(12).equals(big.body as Buffer)).toBe(true);
    // The small body is inline: no body key.
    expect(await redis.client.exists(bodyKey(prefix, small.meta.key))).toBe(0);

    const expected = big.meta.deletableAt - clock.now();
    for (const key of [metaKey(prefix, big.meta.key), bodyKey(prefix, big.meta.key)]) {
      const ttl = await redis.client.pttl(key);
      expect(ttl).toBeGreaterThan(expected - 5_000);
      expect(ttl).toBeLessThanOrEqual(expected);
    }
    expect((await redis.client.smembers(tagKey(prefix, 'shared'))).sort()).toEqual([big.meta.key, small.meta.key].sort());
    expect(await redis.client.pttl(tagKey(prefix, 'shared'))).toBeGreaterThan(expected - 5_000);
    expect((await t.keysForTag('shared')).sort()).toEqual([big.meta.key, small.meta.key].sort());
    expect(await t.keysForTag('t1')).toEqual([big.meta.key]);

    const got = (await t.get(big.meta.key)) as CacheEntry;
    expect(digest(got.body)).toBe(digest(big.body));
    expect(got.meta).toEqual(big.meta);
  });

  it('gives revalidatable entries (deletableAt = Infinity) the maximum TTL', async () => {
    const { tier: t, prefix } = await tier({ maxTtlMs: 3_600_000 });
    const entry = fx.entry('ttl.test/etag', { etag: '"x"' });
    expect(entry.meta.deletableAt).toBe(Infinity);
    t.set(entry.meta.key, entry);
    await t.flushed();
    const ttl = await redis.client.pttl(metaKey(prefix, entry.meta.key));
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
  });

  it('does not write bodies over maxBodyBytes, and removes the older record they replace', async () => {
    const { tier: t, prefix } = await tier({ maxBodyBytes: 100_000 });
    t.set('limit.test/a', fx.entry('limit.test/a', { body: 1_000 }));
    await t.flushed();
    expect(t.set('limit.test/a', fx.entry('limit.test/a', { body: 100_001 }))).toBe(false);
    expect(t.set('limit.test/b', fx.entry('limit.test/b', { body: 100_001 }))).toBe(false);
    await t.flushed();
    expect(await redis.client.exists(metaKey(prefix, 'limit.test/a'), metaKey(prefix, 'limit.test/b'), bodyKey(prefix, 'limit.test/b'))).toBe(0);
    expect(t.stats().writesDeclined).toBe(2);
  });

  it('keys(prefix) escapes glob characters, and clear() removes only its own prefix', async () => {
    const { tier: a } = await tier({ prefix: 'glob[a]*:' });
    const { tier: b, prefix: bPrefix } = await tier({ prefix: 'glob-b:' });
    const keys = ['g.test/[x]', 'g.test/[y]?', 'g.test/*', 'g.test/a\\b', 'g.test/ab'];
    for (const key of keys) a.set(key, fx.entry(key, { body: 10 }));
    b.set('g.test/[x]', fx.entry('g.test/[x]', { body: 10 }));
    await Promise.all([a.flushed(), b.flushed()]);
    expect((await a.keys('g.test/[')).sort()).toEqual(['g.test/[x]', 'g.test/[y]?']);
    expect(await a.keys('g.test/*')).toEqual(['g.test/*']);
    expect(await a.keys('g.test/a\\')).toEqual(['g.test/a\\b']);
    expect((await a.keys('')).sort()).toEqual([...keys].sort());
    await a.clear();
    expect(await a.keys('')).toEqual([]);
    expect(await b.keys('')).toEqual(['g.test/[x]']);
    expect(await redis.client.exists(metaKey(bPrefix, 'g.test/[x]'))).toBe(1);
  });

  it('merges a Vary record with the one another node stored, keeping at most maxVariants', async () => {
    const { tier: a, prefix } = await tier({ maxVariants: 3 });
    const { tier: b } = await tier({ prefix, maxVariants: 3 });
    a.set('vary.test/v', fx.vary('vary.test/v', ['accept-language'], ['en', 'fr']));
    await a.flushed();
    b.set('vary.test/v', fx.vary('vary.test/v', ['accept-language'], ['de']));
    await b.flushed();
    expect(await a.get('vary.test/v')).toEqual(fx.vary('vary.test/v', ['accept-language'], ['en', 'fr', 'de']));
    b.set('vary.test/v\nit', fx.entry('vary.test/v\nit', { primaryKey: 'vary.test/v', vary: ['accept-language'] }));
    b.set('vary.test/v\nen', fx.entry('vary.test/v\nen', { primaryKey: 'vary.test/v', vary: ['accept-language'] }));
    b.set('vary.test/v', fx.vary('vary.test/v', ['accept-language'], ['it']));
    await b.flushed();
    // The least recently stored variant goes, with its entry.
    expect(await a.get('vary.test/v')).toEqual(fx.vary('vary.test/v', ['accept-language'], ['fr', 'de', 'it']));
    expect(await a.get('vary.test/v\nen')).toBeUndefined();
    expect((await a.get('vary.test/v\nit'))?.kind).toBe('entry');
    // Other fields replace the record.
    b.set('vary.test/v', fx.vary('vary.test/v', ['accept-encoding'], ['gzip']));
    await b.flushed();
    expect(await a.get('vary.test/v')).toEqual(fx.vary('vary.test/v', ['accept-encoding'], ['gzip']));
  });
});

describe('RedisTier.updateMeta (soft purges, 304 refreshes)', () => {
  it('rewrites the meta key only: the body key keeps its bytes and follows the new expiry', async () => {
    const { tier: t, prefix } = await tier();
    const big = fx.entry('meta.test/big', { body: 200_000, maxAge: 600 });
    t.set(big.meta.key, big);
    await t.flushed();
    const read = (await t.get(big.meta.key)) as CacheEntry;
    // Marks the stored body's bytes (the header, with its body id, kept): a write of the whole entry would put
    // the original bytes back; a rewrite of the meta key leaves the mark.
    const stored = (await redis.client.getBuffer(bodyKey(prefix, big.meta.key))) as Buffer;
    stored.fill(0x21, 12);
    await redis.client.set(bodyKey(prefix, big.meta.key), stored, 'KEEPTTL');
    const updated: CacheEntry = { ...read, meta: { ...read.meta, headers: { ...read.meta.headers, 'x-refreshed': 'yes' }, deletableAt: clock.now() + 30_000 } };
    expect(t.updateMeta(big.meta.key, updated, read.meta)).toBe(true);
    await t.flushed();
    const body = (await redis.client.getBuffer(bodyKey(prefix, big.meta.key))) as Buffer;
    expect(body.subarray(12).every((byte) => byte === 0x21)).toBe(true);
    for (const key of [metaKey(prefix, big.meta.key), bodyKey(prefix, big.meta.key)]) {
      const ttl = await redis.client.pttl(key);
      expect(ttl).toBeGreaterThan(25_000);
      expect(ttl).toBeLessThanOrEqual(30_000);
    }
    const after = (await t.get(big.meta.key)) as CacheEntry;
    expect([after.meta.headers['x-refreshed'], after.body.length]).toEqual(['yes', 200_000]);
  });

  it('writes the whole entry when the key holds another body (another node replaced it)', async () => {
    const { tier: t, prefix } = await tier();
    const first = fx.entry('meta.test/x', { body: 200_000, maxAge: 600 });
    t.set(first.meta.key, first);
    await t.flushed();
    const read = (await t.get(first.meta.key)) as CacheEntry;
    const { tier: other } = await tier({ prefix });
    other.set(first.meta.key, fx.entry('meta.test/x', { body: 150_000, maxAge: 600 }));
    await other.flushed();
    expect(t.updateMeta(first.meta.key, { ...read, meta: { ...read.meta, headers: { ...read.meta.headers, 'x-softened': '1' } } }, read.meta)).toBe(true);
    await t.flushed();
    const after = (await t.get(first.meta.key)) as CacheEntry;
    expect([after.body.length, digest(after.body), after.meta.headers['x-softened']]).toEqual([200_000, digest(first.body), '1']);
  });
});

describe('RedisTier: unreadable values', () => {
  it('treats a value of another format version, garbage, or a body not matching its meta as a miss, deletes it and counts it', async () => {
    const { tier: t, prefix } = await tier();
    for (const key of ['bad.test/version', 'bad.test/garbage', 'bad.test/body', 'bad.test/good']) t.set(key, fx.entry(key, { body: key.endsWith('body') ? 100_000 : 100 }));
    await t.flushed();
    const version = (await redis.client.getBuffer(metaKey(prefix, 'bad.test/version'))) as Buffer;
    version[2] = REDIS_FORMAT_VERSION + 1;
    await redis.client.set(metaKey(prefix, 'bad.test/version'), version);
    await redis.client.set(metaKey(prefix, 'bad.test/garbage'), Buffer.from('not a record'));
    const body = (await redis.client.getBuffer(bodyKey(prefix, 'bad.test/body'))) as Buffer;
    await redis.client.set(bodyKey(prefix, 'bad.test/body'), body.subarray(0, body.length - 1));

    for (const key of ['bad.test/version', 'bad.test/garbage', 'bad.test/body']) expect(await t.get(key)).toBeUndefined();
    await t.flushed();
    expect(t.stats().corruptRecords).toBe(3);
    expect(await t.keys('bad.test/')).toEqual(['bad.test/good']);
    expect(await redis.client.exists(bodyKey(prefix, 'bad.test/body'))).toBe(0);
    expect((await t.get('bad.test/good'))?.kind).toBe('entry');
  });
});

describe('RedisTier: faults', () => {
  it('a slow Redis: lookups give up after the timeout, the tier backs off, nothing rejects', async () => {
    const { tier: t, log } = await tier({ timeoutMs: 50 });
    t.set('slow.test/a', fx.entry('slow.test/a'));
    await t.flushed();
    // Every client's commands wait for 1.5 s.
    await redis.client.call('CLIENT', 'PAUSE', '1500', 'ALL');
    expect(await t.get('slow.test/a')).toBeUndefined();
    expect(t.stats().errors).toBe(1);
    // Backing off: no command sent.
    expect(await t.get('slow.test/a')).toBeUndefined();
    expect(t.stats().skipped).toBeGreaterThan(0);
    expect(log.lines.filter((l) => l.level === 'error')).toHaveLength(1);
    await eventually('Redis answers again', async () => (await t.get('slow.test/a'))?.kind === 'entry');
    expect(log.lines.some((l) => l.msg.includes('succeed again'))).toBe(true);
  });

  it('a full write queue declines further writes instead of growing', async () => {
    const { tier: t } = await tier({ maxPendingBytes: 64 * 1024, timeoutMs: 300 });
    await redis.client.call('CLIENT', 'PAUSE', '1000', 'WRITE');
    let accepted = 0;
    let maxPending = 0;
    for (let i = 0; i < 40; i++) {
      const entry = fx.entry(`full.test/${i}`, { body: 8_000 });
      if (t.set(entry.meta.key, entry)) accepted++;
      maxPending = Math.max(maxPending, t.stats().pendingBytes);
    }
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(40);
    expect(maxPending).toBeLessThanOrEqual(64 * 1024);
    expect(t.stats().writesDeclined).toBe(40 - accepted);
    await t.flushed();
    expect(t.stats().pendingBytes).toBe(0);
  });

  it('writes that time out: the waiting ones are dropped, and every key they touched is deleted once Redis answers', async () => {
    const { tier: t, prefix } = await tier({ timeoutMs: 50 });
    // Writes wait 2 s, past the write timeout (10 × 50 ms, at least 1 s); reads still pass.
    await redis.client.call('CLIENT', 'PAUSE', '2000', 'WRITE');
    for (let i = 0; i < 40; i++) expect(t.set(`late.test/${i}`, fx.entry(`late.test/${i}`, { body: 100 }))).toBe(true);
    await t.flushed();
    const stats = t.stats();
    expect(stats.errors).toBeGreaterThan(0);
    expect(stats.writesDeclined).toBeGreaterThan(0);
    expect(stats.pendingWrites).toBe(0);
    // The timed-out writes land when the pause ends; the deletes retried after them remove them.
    await eventually('the late writes are deleted again', async () => (await redis.client.keys(`${prefix}*`)).length === 0);
  });

  it('Redis killed and started again: misses and declines while it is away, then works again', async () => {
    const { tier: t } = await tier();
    t.set('kill.test/a', fx.entry('kill.test/a'));
    await t.flushed();
    await redis.kill();
    await eventually('the tier notices', () => t.stats().connected === 0);
    expect(await t.get('kill.test/a')).toBeUndefined();
    expect(t.set('kill.test/b', fx.entry('kill.test/b'))).toBe(false);
    t.delete('kill.test/a');
    expect(await t.keys('')).toEqual([]);
    expect(await t.keysForTag('x')).toEqual([]);
    await t.flushed();
    await redis.start();
    await eventually('the tier reconnects', () => t.stats().connected === 1);
    await eventually('writes are accepted again', () => t.set('kill.test/c', fx.entry('kill.test/c', { body: 123 })));
    await t.flushed();
    const got = (await t.get('kill.test/c')) as CacheEntry;
    expect(got.body.length).toBe(123);
    expect(bodyBytes(got.body).length).toBe(123);
    expect(recordSize(got)).toBeGreaterThan(123);
  });
});
