/**
 * --redis-cluster: two edgecache nodes sharing a real three-primary Redis Cluster (test/helpers/redis-cluster.ts).
 * What one stores the other serves from Redis, with entries spread over several primaries; tag and prefix purges
 * reach every primary and the other node; a cold key costs one origin fetch (leases); a purge travels through the
 * stream. And the keys of one entry hash to one slot, whatever the cache key holds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheEntry } from '../../cache-store/entry.js';
import { bodyKey, epochKey, leaseKey, metaKey, purgeStreamKey } from '../../cache-store/redis/codec.js';
import { freePort, startCli } from '../helpers/cli.js';
import { request, type TestResponse } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js';
import { eventually } from '../helpers/redis.js';

const HOST = 'cluster.test';
const PREFIX = 'cl:';
let cluster: TestRedisCluster;
let origin: TestOrigin;
let a: TestProxy;
let b: TestProxy;
/** Origin answers held back until the test lets them go, by path. */
const held = new Map<string, Array<() => void>>();

beforeAll(async () => {
  // A long node timeout: the primary killed in the last test stays "possibly failing" (not failed) for the rest of the
  // file, so the cluster keeps serving the other slots meanwhile (with the default full coverage it would stop).
  cluster = await startRedisCluster({ nodeTimeoutMs: 60_000 });
  origin = await startOrigin(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const n = origin.count(req.url);
    if (url.pathname.startsWith('/hold/')) await new Promise<void>((resolve) => held.set(url.pathname, [...(held.get(url.pathname) ?? []), resolve]));
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': 'max-age=600' };
    const tag = url.searchParams.get('tag');
    if (tag) headers['surrogate-key'] = tag;
    res.writeHead(200, headers);
    const size = Number(url.searchParams.get('size') ?? 0);
    res.end(size > 0 ? Buffer.alloc(size, 'x') : `${url.pathname} #${n}`);
  });
  const config = { redis: cluster.seedUrl, redisCluster: true, redisPrefix: PREFIX, redisTimeout: 500, redisLease: 2_000 };
  [a, b] = await Promise.all([startProxy(origin.url, config), startProxy(origin.url, config)]);
  await eventually('both nodes are connected to the cluster and caught up', async () => {
    const stats = await Promise.all([redisStats(a), redisStats(b)]);
    return stats.every((s) => s.connected === 1) && a.edgecache.broadcast?.caughtUp === true && b.edgecache.broadcast?.caughtUp === true;
  });
});

afterAll(async () => {
  for (const release of [...held.values()].flat()) release();
  await a?.close();
  await b?.close();
  await origin?.close();
  await cluster?.stop();
});

function get(node: TestProxy, path: string): Promise<TestResponse> {
  return request(`${node.url}${path}`, { headers: { host: HOST } });
}

async function redisStats(node: TestProxy): Promise<Record<string, number>> {
  const snapshot = (await node.edgecache.snapshot()) as { tiers: Record<string, Record<string, number>> };
  return snapshot.tiers.redis as Record<string, number>;
}

/** The entry a node holds in memory or on disk (the hit path's lookup), if any. */
function local(node: TestProxy, path: string): CacheEntry | undefined {
  return node.edgecache.store.peek(HOST + path, {});
}

async function purge(node: TestProxy, body: Record<string, unknown>): Promise<void> {
  const res = await request(`${node.adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  expect(res.status).toBe(200);
}

/** Stores `path` through A (a MISS) and waits until A's Redis writes are acknowledged. */
async function storeThroughA(path: string): Promise<void> {
  expect((await get(a, path)).headers['x-cache']).toBe('MISS');
  await a.edgecache.store.flush();
}

/** How many of the entries' meta keys each primary holds. */
async function metaKeysPerNode(paths: string[]): Promise<number[]> {
  const wanted = new Set(paths.map((p) => metaKey(PREFIX, HOST + p)));
  return (await cluster.keysPerNode(`${PREFIX}*`)).map((names) => names.filter((name) => wanted.has(name)).length);
}

describe('key layout', () => {
  it("an entry's meta, body and lease keys hash to one slot, whatever the cache key holds (checked against Redis's CLUSTER KEYSLOT)", async () => {
    const keys = [`${HOST}/a`, 'h.test/{x}', 'h.test/}{', 'h.test/{}', 'h.test/a}b{c}', 'https://h.test/ü?q=1', 'h.test/vary\u0000accept-language=en'];
    const slots = new Set<number>();
    for (const key of keys) {
      for (const prefix of [PREFIX, 'edgecache:', '']) {
        const names = [metaKey(prefix, key), bodyKey(prefix, key), leaseKey(prefix, key)];
        const [first, ...others] = await Promise.all(names.map(async (name) => Number(await cluster.nodes[0]?.cluster('KEYSLOT', name))));
        expect(others, `${prefix}${key}`).toEqual([first, first]);
        expect(calculateSlot(names[0] as string)).toBe(first);
        slots.add(first as number);
      }
    }
    // The slot is the cache key's (the prefix plays no part); different entries are spread over the slots.
    expect(slots.size).toBeGreaterThan(1);
  });

});

describe('two nodes sharing a Redis Cluster', () => {
  it('B serves from Redis what A stored; the entries are spread over more than one primary', async () => {
    const paths = Array.from({ length: 12 }, (_, i) => `/shared/${i}`);
    for (const p of paths) await storeThroughA(p);
    // A large body too: its body key is written with its meta key, in one MULTI (one slot).
    await storeThroughA('/shared/big?size=100000');
    for (const p of [...paths, '/shared/big?size=100000']) {
      const res = await get(b, p);
      expect(res.headers['x-cache'], p).toBe('HIT');
      expect(origin.count(p)).toBe(1);
    }
    expect((await get(b, '/shared/0')).text).toBe('/shared/0 #1');
    expect((await redisStats(b)).hits).toBeGreaterThanOrEqual(paths.length + 1);
    const perNode = await metaKeysPerNode(paths);
    expect(perNode.reduce((x, y) => x + y)).toBe(paths.length);
    expect(perNode.filter((n) => n > 0).length).toBeGreaterThan(1);
  });

  it('a tag purge through A reaches the entries on every primary, and B (half of them stored by B alone)', async () => {
    const paths = Array.from({ length: 8 }, (_, i) => `/tag/${i}?tag=sale`);
    for (const p of paths.slice(0, 4)) await storeThroughA(p);
    await storeThroughA('/tag/other?tag=other');
    for (const p of [...paths.slice(0, 4), '/tag/other?tag=other']) expect((await get(b, p)).headers['x-cache']).toBe('HIT');
    for (const p of paths.slice(4)) expect((await get(b, p)).headers['x-cache']).toBe('MISS');
    await b.edgecache.store.flush();
    expect((await metaKeysPerNode(paths)).filter((n) => n > 0).length).toBeGreaterThan(1);
    await purge(a, { tags: ['sale'] });
    // Applied in Redis when the purge returns.
    expect(await metaKeysPerNode(paths)).toEqual([0, 0, 0]);
    await eventually('B dropped the tagged entries', () => paths.every((p) => local(b, p) === undefined));
    expect(local(b, '/tag/other?tag=other')).toBeDefined();
    const again = await get(b, paths[0] as string);
    expect([again.headers['x-cache'], again.text]).toEqual(['MISS', '/tag/0 #2']);
  });

  it('a prefix purge through A finds, on every primary, entries only B stored', async () => {
    const paths = Array.from({ length: 10 }, (_, i) => `/pp/${i}`);
    for (const p of [...paths, '/keep/1']) expect((await get(b, p)).headers['x-cache']).toBe('MISS');
    await b.edgecache.store.flush();
    expect((await metaKeysPerNode(paths)).filter((n) => n > 0).length).toBeGreaterThan(1);
    // A holds none of them: it finds them in Redis only, by SCAN on each primary.
    expect(paths.every((p) => local(a, p) === undefined)).toBe(true);
    await purge(a, { prefixes: [`http://${HOST}/pp/`] });
    expect(await metaKeysPerNode(paths)).toEqual([0, 0, 0]);
    expect((await metaKeysPerNode(['/keep/1'])).reduce((x, y) => x + y)).toBe(1);
    await eventually('B dropped the prefix', () => paths.every((p) => local(b, p) === undefined));
    const again = await get(b, '/pp/3');
    expect([again.headers['x-cache'], again.text]).toEqual(['MISS', '/pp/3 #2']);
    expect((await get(b, '/keep/1')).headers['x-cache']).toBe('HIT');
  });

  it('a cold key requested concurrently on both nodes costs one origin fetch (the lease is in the cluster)', async () => {
    const p = '/hold/cold';
    const answers = [a, b].flatMap((node) => Array.from({ length: 20 }, () => get(node, p)));
    await eventually('the origin has the one request', () => origin.count(p) === 1 && (held.get(p)?.length ?? 0) === 1);
    // The other node waits on the lease, in the entry's slot.
    expect((await cluster.keysPerNode(leaseKey(PREFIX, HOST + p))).flat()).toEqual([leaseKey(PREFIX, HOST + p)]);
    for (const release of held.get(p) ?? []) release();
    const responses = await Promise.all(answers);
    expect(new Set(responses.map((r) => `${r.status} ${r.text}`))).toEqual(new Set([`200 ${p} #1`]));
    expect(origin.count(p)).toBe(1);
  });

  it('a URL purge through A travels the purge stream to B', async () => {
    await storeThroughA('/stream/x');
    expect((await get(b, '/stream/x')).headers['x-cache']).toBe('HIT');
    expect(local(b, '/stream/x')).toBeDefined();
    const received = b.edgecache.stats.purgesReceived;
    await purge(a, { urls: [`http://${HOST}/stream/x`] });
    await eventually('B applied the purge', () => local(b, '/stream/x') === undefined);
    expect(b.edgecache.stats.purgesReceived).toBeGreaterThan(received);
    const res = await get(b, '/stream/x');
    expect([res.headers['x-cache'], res.text]).toEqual(['MISS', '/stream/x #2']);
  });

  it('the purge stream and the epoch share a slot (a primary that loses one loses both)', async () => {
    const node = cluster.nodes[0] as (typeof cluster.nodes)[number];
    const [stream, epoch] = await Promise.all([purgeStreamKey(PREFIX, true), epochKey(PREFIX, true)].map(async (name) => Number(await node.cluster('KEYSLOT', name))));
    expect(stream).toBe(epoch);
    // And the nodes use them (the stream exists once a purge was published).
    const onNodes = (await cluster.keysPerNode(`${PREFIX}{purge}*`)).find((names) => names.length > 0);
    expect(onNodes?.sort()).toEqual([epochKey(PREFIX, true), purgeStreamKey(PREFIX, true)].sort());
  });

  it('the edgecache command with --redis-cluster and --workers 1 (the primary reads the stream, the worker the tier) serves what A stored', async () => {
    await storeThroughA('/cli/x');
    const dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-cluster-cli-'));
    const cli = await startCli(['--origin', origin.url, '--workers', '1', '--data-dir', dataDir, '--redis', cluster.seedUrl, '--redis-cluster', '--redis-prefix', PREFIX]);
    const stats = async (): Promise<{ purges: number; purgesReceived: number; tiers: Record<string, Record<string, number> | undefined> }> =>
      JSON.parse((await request(`${cli.adminUrl}/stats`)).text) as { purges: number; purgesReceived: number; tiers: Record<string, Record<string, number> | undefined> };
    try {
      await eventually('the command is connected to the cluster', async () => ((await stats()).tiers.redis?.connected ?? 0) > 0);
      // Its primary reads the stream: a purge through A is applied there.
      await purge(a, { urls: [`http://${HOST}/cli/warm-up`] });
      await eventually('the command applied the purge from A', async () => (await stats()).purges >= 1);
      const res = await request(`${cli.url}/cli/x`, { headers: { host: HOST } });
      expect([res.headers['x-cache'], res.text]).toEqual(['HIT', '/cli/x #1']);
      const { purges } = await stats();
      await purge(a, { urls: [`http://${HOST}/cli/x`] });
      await eventually('the command applied the purge from A', async () => (await stats()).purges > purges);
      const again = await request(`${cli.url}/cli/x`, { headers: { host: HOST } });
      expect([again.headers['x-cache'], again.text]).toEqual(['MISS', '/cli/x #2']);
    } finally {
      await cli.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a node whose seed is not reachable starts without waiting and serves from the origin', async () => {
    const port = await freePort(); // nothing listens there
    const lonely = await startProxy(origin.url, { redis: `redis://127.0.0.1:${port}`, redisCluster: true, redisPrefix: PREFIX, redisTimeout: 200 });
    try {
      const first = await get(lonely, '/lonely/x');
      expect([first.status, first.text]).toEqual([200, '/lonely/x #1']);
      expect(await redisStats(lonely)).toMatchObject({ connected: 0, hits: 0, writes: 0 });
      expect((await get(lonely, '/lonely/x')).status).toBe(200);
    } finally {
      await lonely.close();
    }
  });

  // Last: it leaves the cluster without one of its primaries.
  it('a primary lost (no replica): every request is still answered, from Redis for the other primaries\' slots, from the origin for its own; nothing wrong is served', async () => {
    const paths = Array.from({ length: 12 }, (_, i) => `/down/${i}`);
    for (const p of paths) await storeThroughA(p);
    const lost = 2;
    const onLost = new Set((await cluster.keysPerNode(`${PREFIX}*`))[lost]);
    expect(paths.some((p) => onLost.has(metaKey(PREFIX, HOST + p)))).toBe(true);
    expect(paths.some((p) => !onLost.has(metaKey(PREFIX, HOST + p)))).toBe(true);
    await cluster.kill(lost);
    for (const p of paths) {
      const res = await get(b, p);
      expect(res.status, p).toBe(200);
      // B's own fetch for a key whose slot was on the lost primary; A's copy from Redis for the others (the tier
      // backs off the failing primary only).
      if (onLost.has(metaKey(PREFIX, HOST + p))) expect([res.headers['x-cache'], res.text], p).toEqual(['MISS', `${p} #2`]);
      else expect([res.headers['x-cache'], res.text], p).toEqual(['HIT', `${p} #1`]);
    }
    for (const node of [a, b]) {
      const res = await get(node, '/down/new');
      expect(res.status).toBe(200);
      expect(res.text).toMatch(/^\/down\/new #[12]$/);
    }
    expect(origin.count('/down/new')).toBeLessThanOrEqual(2);
  });
});
