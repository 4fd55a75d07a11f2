/**
 * Purges that are never lost (docs/redis-tier.md): node B reaches a real redis-server through a TCP proxy the test
 * cuts and restores. A purge published while B is cut off, or down, is applied by B when it is back, before its
 * memory and disk answer again; a stream trimmed past B's position, or a Redis that lost its data (a new epoch),
 * makes B drop its memory and disk tiers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { purgeStreamKey } from '../../cache-store/redis/codec.js';
import type { EdgecacheConfig } from '../../config/settings.js';
import { request, type TestResponse } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { eventually, startRedis, type TestRedis } from '../helpers/redis.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const HOST = 'stream.test';
const PREFIX = 'stream:';
let redis: TestRedis;
let origin: TestOrigin;
let line: TcpProxy;
let a: TestProxy;
let b: TestProxy;
let bDir: string;

function config(url: string): Partial<EdgecacheConfig> {
  return { redis: url, redisPrefix: PREFIX, redisTimeout: 200 };
}

async function startB(): Promise<TestProxy> {
  const node = await startProxy(origin.url, { ...config(line.url), dataDir: bDir });
  await caughtUp(node);
  return node;
}

/** Until the node is connected and has applied the purge stream (its memory and disk answer again). */
async function caughtUp(node: TestProxy): Promise<void> {
  await eventually(
    'the node has caught up with the purge stream',
    async () => node.edgecache.broadcast?.caughtUp === true && node.edgecache.store.localTiersTrusted && (await redisConnected(node)),
  );
}

async function redisConnected(node: TestProxy): Promise<boolean> {
  const snapshot = (await node.edgecache.snapshot()) as { tiers: Record<string, Record<string, number>> };
  return snapshot.tiers.redis?.connected === 1;
}

beforeAll(async () => {
  redis = await startRedis();
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' });
    res.end(`${req.url} #${origin.count(req.url)}`);
  });
  line = await startTcpProxy(redis.port);
  bDir = mkdtempSync(path.join(tmpdir(), 'edgecache-stream-b-'));
  a = await startProxy(origin.url, config(redis.url));
  await caughtUp(a);
  b = await startB();
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await line?.close();
  await origin?.close();
  await redis?.stop();
  if (bDir) rmSync(bDir, { recursive: true, force: true });
});

beforeEach(async () => {
  line.restore();
  await caughtUp(b);
});

function get(node: TestProxy, p: string): Promise<TestResponse> {
  return request(`${node.url}${p}`, { headers: { host: HOST } });
}

async function purge(node: TestProxy, body: Record<string, unknown>): Promise<void> {
  const res = await request(`${node.adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  expect(res.status).toBe(200);
}

/** `p` stored by A (origin answer #1) and held by B in its own memory and disk. */
async function sharedCopy(p: string): Promise<void> {
  expect((await get(a, p)).text).toBe(`${p} #1`);
  await a.edgecache.store.flush();
  expect((await get(b, p)).text).toBe(`${p} #1`);
  await b.edgecache.store.flush();
  expect(b.edgecache.store.peek(HOST + p, {})?.meta.key).toBe(HOST + p);
}

async function cutB(): Promise<void> {
  line.cut();
  await eventually('B notices it is cut off', async () => !(await redisConnected(b)));
}

describe('purges through the Redis stream', () => {
  it('a purge published while B is cut off is applied when B reconnects, before its own copy is served again', async () => {
    await sharedCopy('/cut');
    await cutB();
    await purge(a, { urls: [`http://${HOST}/cut`] });
    // Cut off, B cannot know: it still serves what it holds.
    expect((await get(b, '/cut')).text).toBe('/cut #1');
    const received = b.edgecache.stats.purgesReceived;

    line.restore();
    // From here on, the purged copy must never come back: each answer is either B's copy from before it
    // reconnected (while it is still cut off) or a new one; once B has caught up, only new ones.
    await caughtUp(b);
    expect(b.edgecache.stats.purgesReceived).toBe(received + 1);
    expect(b.edgecache.store.peek(`${HOST}/cut`, {})).toBeUndefined();
    const after = await get(b, '/cut');
    expect(after.text).toBe('/cut #2');
    expect((await get(b, '/cut')).text).toBe('/cut #2');
  });

  it('a purge published while B is down is applied when B starts again, before its disk copy is served', async () => {
    await sharedCopy('/restart');
    await b.close();
    await purge(a, { urls: [`http://${HOST}/restart`] });
    b = await startProxy(origin.url, { ...config(line.url), dataDir: bDir });
    // Not one answer from its disk before it has read the stream, and never the purged copy.
    expect((await get(b, '/restart')).text).not.toBe('/restart #1');
    await caughtUp(b);
    expect(b.edgecache.stats.purgesReceived).toBe(1);
    expect(b.edgecache.stats.localTierDrops).toBe(0);
    // (The purge, applied after B's first answer was stored, removed that one too: conservative, never wrong.)
    expect((await get(b, '/restart')).text).not.toBe('/restart #1');
  });

  it('a purge published while B is down and cut off: B restarted while still cut off serves nothing of its own', async () => {
    await sharedCopy('/both');
    await b.close();
    line.cut();
    await purge(a, { urls: [`http://${HOST}/both`] });
    b = await startProxy(origin.url, { ...config(line.url), dataDir: bDir });
    expect(b.edgecache.store.localTiersTrusted).toBe(false);
    // Redis unreachable, its own tiers not trusted: the origin answers.
    const res = await get(b, '/both');
    expect([res.text, res.headers['x-cache']]).toEqual(['/both #2', 'MISS']);
    line.restore();
    await caughtUp(b);
    expect(b.edgecache.stats.purgesReceived).toBe(1);
  });

  it('a stream trimmed past B\'s position while B was cut off: B drops its memory and disk tiers', async () => {
    await sharedCopy('/trim');
    await cutB();
    await purge(a, { urls: [`http://${HOST}/elsewhere`] });
    // More purges than the stream keeps: here, all of them trimmed.
    await redis.client.xtrim(purgeStreamKey(PREFIX), 'MAXLEN', 0);
    line.restore();
    await caughtUp(b);
    expect(b.edgecache.stats.localTierDrops).toBe(1);
    expect(b.edgecache.store.peek(`${HOST}/trim`, {})).toBeUndefined();
    expect(b.edgecache.store.memory.get(`${HOST}/trim`)).toBeUndefined();
    // Redis still has it (nothing purged it): B reads it from there.
    expect((await get(b, '/trim')).text).toBe('/trim #1');
  });

  it('Redis restarted without its data (a new epoch): both nodes drop their memory and disk tiers', async () => {
    await sharedCopy('/epoch');
    const dropsA = a.edgecache.stats.localTierDrops;
    const dropsB = b.edgecache.stats.localTierDrops;
    await redis.kill();
    await redis.start();
    await eventually('both nodes dropped their tiers', () => a.edgecache.stats.localTierDrops === dropsA + 1 && b.edgecache.stats.localTierDrops === dropsB + 1);
    await caughtUp(a);
    await caughtUp(b);
    expect(a.edgecache.store.memory.get(`${HOST}/epoch`)).toBeUndefined();
    expect(b.edgecache.store.memory.get(`${HOST}/epoch`)).toBeUndefined();
    expect((await get(b, '/epoch')).text).toBe('/epoch #2');
  });
});
