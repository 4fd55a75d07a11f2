/**
 * Two edgecache nodes (separate data directories) in front of one origin, sharing one real redis-server: what
 * one stores the other serves without asking the origin; purges through one reach the other; Redis going away
 * never fails a request; bodies over the Redis limit and corrupt values stay out of what is served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheEntry } from '../../cache-store/entry.js';
import { keyOfMetaKey, metaKey } from '../../cache-store/redis/codec.js';
import { freePort } from '../helpers/cli.js';
import { request, type TestResponse } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { eventually, startRedis, type TestRedis } from '../helpers/redis.js';
import { freshUntil } from '../../policies/http/freshness.js';

const HOST = 'shop.test';
const PREFIX = 'nodes:';
let redis: TestRedis;
let origin: TestOrigin;
let a: TestProxy;
let b: TestProxy;

beforeAll(async () => {
  redis = await startRedis();
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const etag = `"${url.pathname}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag, 'cache-control': 'max-age=600' });
      res.end();
      return;
    }
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': 'max-age=600', etag };
    if (url.pathname === '/partial') {
      // Part of the representation unasked (bytes 0-4), then what a Range asks for.
      const [start, end] = req.headers.range === 'bytes=5-' ? [5, 9] : [0, 4];
      res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/10` });
      res.end('0123456789'.slice(start, end + 1));
      return;
    }
    const tag = url.searchParams.get('tag');
    if (tag) headers['surrogate-key'] = tag;
    if (url.pathname.startsWith('/vary')) headers.vary = 'accept-language';
    res.writeHead(200, headers);
    const size = Number(url.searchParams.get('size') ?? 0);
    res.end(size > 0 ? Buffer.alloc(size, 'x') : `${url.pathname} #${origin.count(req.url)}`);
  });
  const config = { redis: redis.url, redisPrefix: PREFIX, redisMaxObjectSize: 64 * 1024, redisTimeout: 200 };
  a = await startProxy(origin.url, config);
  b = await startProxy(origin.url, config);
  await eventually('both nodes are connected to Redis', async () => (await redisStats(a)).connected === 1 && (await redisStats(b)).connected === 1);
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await origin?.close();
  await redis?.stop();
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

/** Stores `path` through node A and waits until A's writes (Redis included) are done. */
async function storeThroughA(path: string): Promise<void> {
  expect((await get(a, path)).headers['x-cache']).toBe('MISS');
  await a.edgecache.store.flush();
}

describe('two nodes sharing a Redis', () => {
  it('serves on B what A stored, from Redis without an origin fetch, then from its own tiers', async () => {
    await storeThroughA('/shared');
    const first = await get(b, '/shared');
    expect([first.headers['x-cache'], first.text]).toEqual(['HIT', '/shared #1']);
    expect(origin.count('/shared')).toBe(1);
    expect((await redisStats(b)).hits).toBe(1);
    // Promoted: B's memory and disk have it now, and the hit path answers.
    expect(local(b, '/shared')?.meta.key).toBe(`${HOST}/shared`);
    expect((await get(b, '/shared')).headers['x-cache']).toBe('HIT');
    expect((await redisStats(b)).reads).toBe(1);
  });

  it('partial content A stored is completed by B from Redis: B asks the origin only for the rest', async () => {
    expect((await get(a, '/partial')).status).toBe(206);
    await a.edgecache.pipeline.idle();
    await a.edgecache.store.flush();
    const whole = await get(b, '/partial');
    expect([whole.status, whole.text]).toEqual([200, '0123456789']);
    expect(origin.requests.filter((r) => r.url === '/partial').map((r) => r.headers.range)).toEqual([undefined, 'bytes=5-']);
    await b.edgecache.pipeline.idle();
    expect((await get(b, '/partial')).headers['x-cache']).toBe('HIT');
    expect(origin.count('/partial')).toBe(2);
  });

  it('a URL purge through A reaches B; so does an invalidation after an unsafe request', async () => {
    await storeThroughA('/p/url');
    await storeThroughA('/p/post');
    for (const path of ['/p/url', '/p/post']) expect((await get(b, path)).headers['x-cache']).toBe('HIT');
    await purge(a, { urls: [`http://${HOST}/p/url`] });
    // Applied in Redis when the purge returns.
    expect(await redis.client.exists(metaKey(PREFIX, `${HOST}/p/url`))).toBe(0);
    await eventually('B dropped /p/url', () => local(b, '/p/url') === undefined);
    expect((await get(b, '/p/url')).headers['x-cache']).toBe('MISS');
    expect(a.edgecache.stats.purgesBroadcast).toBeGreaterThan(0);
    expect(b.edgecache.stats.purgesReceived).toBeGreaterThan(0);

    const post = await request(`${a.url}/p/post`, { method: 'POST', body: 'x', headers: { host: HOST } });
    expect(post.status).toBe(200);
    await eventually('B dropped /p/post', () => local(b, '/p/post') === undefined);
    expect((await get(b, '/p/post')).headers['x-cache']).toBe('MISS');
  });

  it('a URL purge through A also removes the Vary variants only B stored (Redis merges the Vary records)', async () => {
    const lang = (node: TestProxy, language: string): Promise<TestResponse> =>
      request(`${node.url}/vary/p`, { headers: { host: HOST, 'accept-language': language } });
    expect((await lang(a, 'en')).headers['x-cache']).toBe('MISS');
    await a.edgecache.store.flush();
    expect((await lang(b, 'fr')).headers['x-cache']).toBe('MISS');
    await b.edgecache.store.flush();
    expect((await lang(b, 'en')).headers['x-cache']).toBe('HIT');
    expect(await redis.client.keys(`${PREFIX}{${HOST}/vary/p*}m`)).toHaveLength(3);
    await purge(a, { urls: [`http://${HOST}/vary/p`] });
    expect(await redis.client.keys(`${PREFIX}{${HOST}/vary/p*}m`)).toEqual([]);
    await eventually('B dropped its variants', () => local(b, '/vary/p') === undefined && b.edgecache.store.memory.keys(`${HOST}/vary/p`).length === 0);
    expect((await lang(a, 'fr')).headers['x-cache']).toBe('MISS');
  });

  it('a tag purge through A reaches entries B stored itself', async () => {
    await storeThroughA('/tag/1?tag=sale');
    expect((await get(b, '/tag/1?tag=sale')).headers['x-cache']).toBe('HIT');
    expect((await get(b, '/tag/2?tag=sale')).headers['x-cache']).toBe('MISS');
    await b.edgecache.store.flush();
    expect((await get(b, '/tag/3?tag=other')).headers['x-cache']).toBe('MISS');
    await purge(a, { tags: ['sale'] });
    await eventually('B dropped the tagged entries', () => local(b, '/tag/1?tag=sale') === undefined && local(b, '/tag/2?tag=sale') === undefined);
    expect(await redis.client.exists(metaKey(PREFIX, `${HOST}/tag/2?tag=sale`))).toBe(0);
    expect(local(b, '/tag/3?tag=other')).toBeDefined();
    expect((await get(a, '/tag/2?tag=sale')).headers['x-cache']).toBe('MISS');
  });

  it('a soft purge through A marks the entry stale on B and in Redis: the next request revalidates', async () => {
    await storeThroughA('/soft');
    expect((await get(b, '/soft')).headers['x-cache']).toBe('HIT');
    await purge(a, { urls: [`http://${HOST}/soft`], soft: true });
    await eventually('B marked /soft stale', () => (local(b, '/soft') === undefined ? Infinity : freshUntil((local(b, '/soft') as CacheEntry).meta)) <= Date.now());
    expect(local(b, '/soft')).toBeDefined();
    const res = await get(b, '/soft');
    expect([res.headers['x-cache'], res.text]).toEqual(['REVALIDATED', '/soft #1']);
    expect(origin.count('/soft')).toBe(2);
  });

  it('does not write bodies over the Redis limit: B fetches them itself', async () => {
    const before = (await redisStats(a)).writesDeclined ?? 0;
    await storeThroughA('/big?size=100000');
    expect(await redis.client.exists(metaKey(PREFIX, `${HOST}/big?size=100000`))).toBe(0);
    expect((await redisStats(a)).writesDeclined).toBeGreaterThan(before);
    expect((await get(a, '/big?size=100000')).headers['x-cache']).toBe('HIT');
    expect((await get(b, '/big?size=100000')).headers['x-cache']).toBe('MISS');
    expect(origin.count('/big?size=100000')).toBe(2);
  });

  it('a corrupt value in Redis is a miss for B, removed and counted, never served', async () => {
    await storeThroughA('/corrupt');
    await redis.client.set(metaKey(PREFIX, `${HOST}/corrupt`), Buffer.from('RM\u0001garbage'));
    const res = await get(b, '/corrupt');
    expect([res.headers['x-cache'], res.text]).toEqual(['MISS', '/corrupt #2']);
    expect((await redisStats(b)).corruptRecords).toBe(1);
    await b.edgecache.store.flush();
    // B's own fill replaced it with a good value.
    expect((await get(a, '/corrupt')).text).toBe('/corrupt #1');
    expect((await b.edgecache.store.lookup(`${HOST}/corrupt`, {})).entry?.meta.key).toBe(`${HOST}/corrupt`);
  });

  it('/metrics shows the Redis tier', async () => {
    const text = (await request(`${a.adminUrl}/metrics`)).text;
    expect(text).toContain('edgecache_tier_connected{tier="redis"} 1');
    expect(text).toMatch(/edgecache_tier_writes_total\{tier="redis"\} [1-9]/);
  });

  it('a node whose Redis is not there starts without waiting for it, and serves (from the origin: it cannot know which purges it missed)', async () => {
    const port = await freePort(); // nothing listens there
    const lonely = await startProxy(origin.url, { redis: `redis://127.0.0.1:${port}`, redisPrefix: PREFIX });
    try {
      expect((await get(lonely, '/lonely')).headers['x-cache']).toBe('MISS');
      // Stored, but its memory and disk do not answer before it has read the purge stream.
      expect(lonely.edgecache.store.localTiersTrusted).toBe(false);
      expect((await get(lonely, '/lonely')).headers['x-cache']).toBe('MISS');
      await purge(lonely, { urls: [`http://${HOST}/lonely`] });
      expect((await get(lonely, '/lonely')).headers['x-cache']).toBe('MISS');
      expect(await redisStats(lonely)).toMatchObject({ connected: 0, hits: 0, writes: 0 });
      expect(lonely.edgecache.stats.purgeBroadcastFailures).toBe(1);
    } finally {
      await lonely.close();
    }
  });

  it('Redis killed: requests are still served, nothing crashes; the tier recovers when Redis is back', async () => {
    await storeThroughA('/kill/cached');
    await redis.kill();
    await eventually('A notices', async () => (await redisStats(a)).connected === 0);
    expect((await get(a, '/kill/cached')).headers['x-cache']).toBe('HIT');
    const fresh = await get(b, '/kill/new');
    expect([fresh.status, fresh.headers['x-cache']]).toEqual([200, 'MISS']);
    expect((await get(b, '/kill/new')).headers['x-cache']).toBe('HIT');
    // A purge while Redis is away still applies locally.
    await purge(a, { urls: [`http://${HOST}/kill/cached`] });
    expect((await get(a, '/kill/cached')).headers['x-cache']).toBe('MISS');

    await redis.start();
    await eventually('both reconnect', async () => (await redisStats(a)).connected === 1 && (await redisStats(b)).connected === 1);
    // Writes are declined for a second after a failure: store once Redis takes them again.
    await eventually('A writes to Redis again', async () => {
      await get(a, `/kill/after?${origin.count()}`);
      await a.edgecache.store.flush();
      return (await redis.client.dbsize()) > 0;
    });
    const written = (await redis.client.keys(metaKey(PREFIX, '*')))[0] as string;
    const path = (keyOfMetaKey(PREFIX, written) as string).slice(HOST.length);
    const res = await get(b, path);
    expect(res.headers['x-cache']).toBe('HIT');
    expect(origin.count(path)).toBe(1);
  });
});
