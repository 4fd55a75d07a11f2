/**
 * Coalescing across nodes (docs/redis-tier.md): three edgecache nodes on one real redis-server. A cold key requested
 * concurrently on all three costs one origin fetch (the fetching node holds a lease in Redis, the others wait for
 * its answer there); a lease holder killed mid-fill (the real command, SIGKILL) costs the others at most the lease;
 * an answer that may not be shared releases the waiters to fetch on their own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgecacheConfig } from '../../config/settings.js';
import { startCli } from '../helpers/cli.js';
import { request, type TestResponse } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { eventually, startRedis, type TestRedis } from '../helpers/redis.js';

const HOST = 'lease.test';
const PREFIX = 'lease:';
const LEASE_MS = 1_000;
let redis: TestRedis;
let origin: TestOrigin;
let nodes: TestProxy[] = [];
/** Origin answers held back until the test lets them go, by path. */
const held = new Map<string, Array<() => void>>();

beforeAll(async () => {
  redis = await startRedis();
  origin = await startOrigin(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const n = origin.count(req.url);
    // /hang/...: the first request never gets an answer (its fetcher is killed meanwhile).
    if (url.pathname.startsWith('/hang/') && n === 1) return;
    if (url.pathname.startsWith('/hold/')) await new Promise<void>((resolve) => held.set(url.pathname, [...(held.get(url.pathname) ?? []), resolve]));
    const cacheControl = url.pathname.startsWith('/private/') ? 'private, max-age=600' : 'max-age=600';
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': cacheControl });
    res.end(`${url.pathname} #${n}`);
  });
  const config: Partial<EdgecacheConfig> = { redis: redis.url, redisPrefix: PREFIX, redisLease: LEASE_MS, redisTimeout: 500 };
  nodes = await Promise.all([startProxy(origin.url, config), startProxy(origin.url, config), startProxy(origin.url, config)]);
  await eventually('every node has caught up with Redis', () => nodes.every((n) => n.edgecache.broadcast?.caughtUp === true));
});

afterAll(async () => {
  for (const release of [...held.values()].flat()) release();
  await Promise.all(nodes.map((n) => n.close()));
  await origin?.close();
  await redis?.stop();
});

function get(node: { url: string }, p: string): Promise<TestResponse> {
  return request(`${node.url}${p}`, { headers: { host: HOST } });
}

describe('one origin fetch per cold key across nodes', () => {
  it('a cold key requested concurrently on three nodes (100 requests each) costs one origin fetch', async () => {
    const p = '/hold/cold';
    const answers = nodes.flatMap((node) => Array.from({ length: 100 }, () => get(node, p)));
    // Every node has asked (one of them the origin, the others Redis) before the origin answers.
    await eventually('the origin has the one request', () => origin.count(p) === 1 && (held.get(p)?.length ?? 0) === 1);
    for (const release of held.get(p) ?? []) release();
    const responses = await Promise.all(answers);
    expect(new Set(responses.map((r) => `${r.status} ${r.text}`))).toEqual(new Set([`200 ${p} #1`]));
    expect(origin.count(p)).toBe(1);
  });

  it('an answer that may not be shared releases the other nodes to fetch on their own', async () => {
    const p = '/private/x';
    const responses = await Promise.all(nodes.map((node) => get(node, p)));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    // Each node fetched its own (nothing private is served from another node's fetch).
    expect(origin.count(p)).toBe(3);
    expect(new Set(responses.map((r) => r.text)).size).toBe(3);
  });

  it('a lease holder killed mid-fill: the other nodes take over once the lease runs out', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-lease-'));
    const holder = await startCli(['--origin', origin.url, '--workers', '1', '--data-dir', dataDir, '--redis', redis.url, '--redis-prefix', PREFIX, '--redis-lease', `${LEASE_MS}ms`]);
    try {
      await eventually('the holder is connected to Redis', async () => {
        const stats = JSON.parse((await request(`${holder.adminUrl}/stats`)).text) as { tiers: Record<string, Record<string, number> | undefined> };
        return (stats.tiers.redis?.connected ?? 0) > 0;
      });
      const p = '/hang/x';
      void get(holder, p).catch(() => undefined);
      await eventually('the holder is fetching', () => origin.count(p) === 1);
      expect(await redis.client.exists(`${PREFIX}l:${HOST}${p}`)).toBe(1);
      const waiting = [get(nodes[0] as TestProxy, p), get(nodes[1] as TestProxy, p)];
      await holder.stop('SIGKILL');
      const responses = await Promise.all(waiting);
      expect(responses.map((r) => [r.status, r.text])).toEqual([
        [200, `${p} #2`],
        [200, `${p} #2`],
      ]);
      // The killed holder's fetch, and one more by whichever node took the lease after it.
      expect(origin.count(p)).toBe(2);
    } finally {
      await holder.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('Redis away: each node fetches for itself, without waiting for Redis', async () => {
    await redis.kill();
    try {
      await eventually('the nodes notice', async () => {
        const snapshots = (await Promise.all(nodes.map((n) => n.edgecache.snapshot()))) as Array<{ tiers: Record<string, Record<string, number>> }>;
        return snapshots.every((s) => s.tiers.redis?.connected === 0);
      });
      const p = '/alone';
      const responses = await Promise.all(nodes.map((node) => get(node, p)));
      expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(origin.count(p)).toBe(3);
    } finally {
      await redis.start();
    }
  });

  it('Redis back: the nodes subscribe again and a cold key costs one origin fetch again', async () => {
    await eventually('every node has Redis again', async () => {
      const snapshots = (await Promise.all(nodes.map((n) => n.edgecache.snapshot()))) as Array<{ tiers: Record<string, Record<string, number>> }>;
      return snapshots.every((s) => (s.tiers.redis?.connected ?? 0) > 0);
    });
    // Until each node's fills channel is subscribed again it fetches on its own: ask until one fetch serves all.
    let round = 0;
    await eventually('one origin fetch for a cold key on three nodes', async () => {
      const p = `/hold/again-${round++}`;
      const answers = nodes.map((node) => get(node, p));
      await eventually('the origin has a request', () => (held.get(p)?.length ?? 0) >= 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const release of held.get(p) ?? []) release();
      const responses = await Promise.all(answers);
      return origin.count(p) === 1 && responses.every((r) => r.status === 200 && r.text === `${p} #1`);
    });
  });
});
