/**
 * The real command with --workers 2 and --redis, next to an in-process node sharing the same Redis: under
 * --workers the cluster primary speaks for the node, publishing its purges and handing received ones to every
 * worker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaKey } from '../../cache-store/redis/codec.js';
import { startCli, type RunningCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { eventually, startRedis, type TestRedis } from '../helpers/redis.js';

const HOST = 'shop.example';
const PREFIX = 'cli:';
let redis: TestRedis;
let origin: TestOrigin;
let cluster: RunningCli;
let single: TestProxy;
let dataDir: string;

beforeAll(async () => {
  redis = await startRedis();
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.writeHead(200, {
      'content-type': 'text/plain',
      'cache-control': 'public, max-age=3600',
      ...(url.searchParams.has('tag') && { 'surrogate-key': url.searchParams.get('tag') as string }),
    });
    res.end(`${url.pathname} #${origin.count(req.url)}`);
  });
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-cli-redis-'));
  // Lookups may take up to 2 s (not the default 100 ms): on a machine loaded by the whole suite a slow lookup would
  // be a miss by design, and this test is about what reaches Redis and the other node, not about timeouts.
  cluster = await startCli(['--origin', origin.url, '--data-dir', dataDir, '--workers', '2', '--redis', redis.url, '--redis-prefix', PREFIX, '--redis-timeout', '2s']);
  single = await startProxy(origin.url, { redis: redis.url, redisPrefix: PREFIX, redisTimeout: 2000 });
  await eventually('every worker is connected to Redis', async () => (await clusterStats()).tiers.redis?.connected === 2, 15_000);
}, 30_000);

afterAll(async () => {
  await single?.close();
  await cluster?.stop();
  await origin?.close();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function clusterStats(): Promise<{ purges: number; tiers: Record<string, Record<string, number> | undefined> }> {
  return JSON.parse((await request(`${cluster.adminUrl}/stats`)).text) as { purges: number; tiers: Record<string, Record<string, number> | undefined> };
}

function get(url: string, p: string): ReturnType<typeof request> {
  return request(`${url}${p}`, { headers: { host: HOST } });
}

async function purge(adminUrl: string, body: Record<string, unknown>): Promise<void> {
  const res = await request(`${adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  expect(res.status).toBe(200);
}

describe('--workers with --redis', () => {
  it('a purge through the cluster node reaches the other node; one through the other node reaches every worker', async () => {
    expect((await get(single.url, '/w/1?tag=t')).headers['x-cache']).toBe('MISS');
    // The fill is over (its writes queued) before the tiers' queues are flushed.
    await single.edgecache.pipeline.idle();
    await single.edgecache.store.flush();
    const fromRedis = await get(cluster.url, '/w/1?tag=t');
    expect([fromRedis.headers['x-cache'], fromRedis.text]).toEqual(['HIT', '/w/1 #1']);
    expect(origin.count('/w/1?tag=t')).toBe(1);

    await purge(cluster.adminUrl, { urls: [`http://${HOST}/w/1?tag=t`] });
    expect(await redis.client.exists(metaKey(PREFIX, `${HOST}/w/1?tag=t`))).toBe(0);
    await eventually('the other node dropped it', () => single.edgecache.store.peek(`${HOST}/w/1?tag=t`, {}) === undefined);
    expect(JSON.parse((await request(`${cluster.adminUrl}/stats`)).text)).toMatchObject({ purgesBroadcast: 1 });

    for (let i = 0; i < 4; i++) await get(cluster.url, '/w/2?tag=t');
    expect(origin.count('/w/2?tag=t')).toBe(1);
    const before = (await clusterStats()).purges;
    await purge(single.adminUrl, { tags: ['t'] });
    // Counted once by the cluster primary, which had every worker apply it.
    await eventually('the cluster node applied it', async () => (await clusterStats()).purges === before + 1);
    expect((await get(cluster.url, '/w/2?tag=t')).headers['x-cache']).toBe('MISS');
    // Each request is a new connection, spread over both workers: none may still hold the purged copy.
    const after: string[] = [];
    for (let i = 0; i < 6; i++) after.push((await get(cluster.url, '/w/2?tag=t')).text);
    expect(after).toEqual(Array(6).fill('/w/2 #2'));
    expect(origin.count('/w/2?tag=t')).toBe(2);
  });
});
