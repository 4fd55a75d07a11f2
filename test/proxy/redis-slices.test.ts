/**
 * Sliced fills (--slice-size) with a Redis tier: slices are records like any other, so a second node finds the
 * slices the first one fetched in Redis and asks the origin for none of them.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { eventually, startRedis, type TestRedis } from '../helpers/redis.js';
import { request } from '../helpers/http.js';

/** One host for both nodes: the cache key holds it (and each node listens on a port of its own). */
const HOST = 'media.test';
const SLICE = 256 * 1024;
const SIZE = SLICE * 4 + 999;
const BODY = Buffer.alloc(SIZE);
for (let i = 0; i * 64 < SIZE; i++) createHash('sha512').update(String(i)).digest().copy(BODY, i * 64);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let redis: TestRedis;
let origin: TestOrigin;
let a: TestProxy;
let b: TestProxy;

beforeAll(async () => {
  redis = await startRedis();
  origin = await startOrigin((req, res) => {
    const headers = { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=600', etag: '"one"' };
    const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
    if (range === null) {
      res.writeHead(200, headers);
      res.end(BODY);
      return;
    }
    const start = Number(range[1]);
    const end = Math.min(Number(range[2]), SIZE - 1);
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${SIZE}` });
    res.end(BODY.subarray(start, end + 1));
  });
  const config = { redis: redis.url, redisPrefix: 'slices:', sliceSize: SLICE, diskMax: 0, memoryMax: 64 * 1024 * 1024, maxObjectSize: 1024 * 1024 };
  a = await startProxy(origin.url, config);
  b = await startProxy(origin.url, config);
  const connected = async (node: TestProxy): Promise<boolean> =>
    ((await node.edgecache.snapshot()) as { tiers: Record<string, Record<string, number>> }).tiers.redis?.connected === 1;
  await eventually('both nodes are connected to Redis', async () => (await connected(a)) && (await connected(b)));
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await origin?.close();
  await redis?.stop();
});

describe('slices in the Redis tier', () => {
  it('are found by another node: no origin request, the same bytes', async () => {
    const first = await request(`${a.url}/file.bin`, { headers: { host: HOST } });
    expect([first.status, sha(first.body)]).toEqual([200, sha(BODY)]);
    expect(origin.count('/file.bin')).toBe(5);
    await a.edgecache.store.flush();
    const other = await request(`${b.url}/file.bin`, { headers: { host: HOST, range: 'bytes=-100' } });
    expect([other.status, other.body.equals(BODY.subarray(SIZE - 100))]).toEqual([206, true]);
    const full = await request(`${b.url}/file.bin`, { headers: { host: HOST } });
    expect([full.status, sha(full.body)]).toEqual([200, sha(BODY)]);
    expect(origin.count('/file.bin')).toBe(5);
    const again = await request(`${b.url}/file.bin`, { headers: { host: HOST } });
    expect([again.headers['x-cache'], sha(again.body)]).toEqual(['HIT', sha(BODY)]);
  });
});
