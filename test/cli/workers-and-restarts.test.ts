import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replacingAWorker, startCli, workerStats } from '../helpers/cli.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { request, sleep } from '../helpers/http.js';

// The real command, as users run it: persistence across restarts, and worker processes sharing one disk tier.
let origin: TestOrigin;
const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-cli-'));
  dirs.push(dir);
  return dir;
};

beforeAll(async () => {
  origin = await startOrigin(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    await sleep(Number(url.searchParams.get('delay') ?? 0));
    res.writeHead(200, {
      'content-type': 'text/plain',
      'cache-control': 'public, max-age=3600',
      ...(url.searchParams.has('tag') && { 'surrogate-key': url.searchParams.get('tag') as string }),
    });
    res.end(`${url.pathname} #${origin.count(req.url)}`);
  });
});

afterAll(async () => {
  await origin.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

// Each start listens on a new port; a fixed Host keeps the cache key (host + path) the same across restarts.
const host = { host: 'shop.example' };

describe('the disk tier through the proxy', () => {
  it('survives a clean restart, and Age includes the downtime', async () => {
    const dataDir = tempDir();
    const first = await startCli(['--origin', origin.url, '--data-dir', dataDir]);
    await request(`${first.url}/persist`, { headers: host });
    expect(await first.stop()).toBe(0);
    await sleep(1100);
    const second = await startCli(['--origin', origin.url, '--data-dir', dataDir]);
    try {
      const hit = await request(`${second.url}/persist`, { headers: host });
      expect([hit.headers['x-cache'], hit.text]).toEqual(['HIT', '/persist #1']);
      expect(Number(hit.headers.age)).toBeGreaterThanOrEqual(1);
      expect(origin.count('/persist')).toBe(1);
    } finally {
      await second.stop();
    }
  }, 40_000);

  it('keeps its tag index across a restart', async () => {
    const dataDir = tempDir();
    const first = await startCli(['--origin', origin.url, '--data-dir', dataDir], { EDGECACHE_ADMIN_TOKEN: 't' });
    await request(`${first.url}/tagged?tag=keep-me`, { headers: host });
    await first.stop();
    const second = await startCli(['--origin', origin.url, '--data-dir', dataDir], { EDGECACHE_ADMIN_TOKEN: 't' });
    try {
      const purge = await request(`${second.adminUrl}/purge`, { method: 'POST', body: JSON.stringify({ tags: ['keep-me'] }), headers: { 'content-type': 'application/json', authorization: 'Bearer t' } });
      expect(JSON.parse(purge.text)).toMatchObject({ purged: 1 });
      expect((await request(`${second.url}/tagged?tag=keep-me`, { headers: host })).headers['x-cache']).toBe('MISS');
      expect(origin.count('/tagged?tag=keep-me')).toBe(2);
    } finally {
      await second.stop();
    }
  });
});

describe('--workers 2', () => {
  it('shares entries, collapses a cold key across processes, and purges every worker', async () => {
    const proxy = await startCli(['--origin', origin.url, '--data-dir', tempDir(), '--workers', '2'], { EDGECACHE_ADMIN_TOKEN: 't' });
    try {
      // A cold key requested by 200 clients at once, spread over both workers: one origin fetch.
      const cold = '/cold?delay=200';
      const burst = await Promise.all(Array.from({ length: 200 }, () => request(`${proxy.url}${cold}`, { headers: { connection: 'close' } })));
      expect(burst.every((r) => r.status === 200 && r.text === '/cold #1')).toBe(true);
      expect(origin.count(cold)).toBe(1);

      // Every later request, whichever worker takes it, is a hit (from its memory or the shared disk tier).
      for (let i = 0; i < 40; i++) await request(`${proxy.url}${cold}`, { headers: { connection: 'close' } });
      expect(origin.count(cold)).toBe(1);
      const stats = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as { workers: number; workersListening: number; processes: Array<{ hits: number; misses: number }>; tiers: { disk: { entries: number } } };
      expect([stats.workers, stats.workersListening]).toEqual([2, 2]);
      expect(stats.processes).toHaveLength(2);
      expect(stats.processes.every((p) => p.hits + p.misses > 0)).toBe(true);
      expect(stats.tiers.disk.entries).toBeGreaterThanOrEqual(1);

      // A purge reaches both workers' memory tiers and the disk tier.
      const purge = await request(`${proxy.adminUrl}/purge`, { method: 'POST', body: JSON.stringify({ urls: ['/cold?delay=200'] }), headers: { 'content-type': 'application/json', authorization: 'Bearer t' } });
      expect(purge.status).toBe(200);
      const after = await Promise.all(Array.from({ length: 20 }, () => request(`${proxy.url}${cold}`, { headers: { connection: 'close' } })));
      expect(after.some((r) => r.headers['x-cache'] === 'HIT' && r.text === '/cold #1')).toBe(false);
      expect(origin.count(cold)).toBeGreaterThanOrEqual(2);

      // A successful POST, whichever worker forwards it, invalidates the URL in every worker (RFC 9111 §4.4).
      const fetchedBefore = origin.count(cold);
      for (let i = 0; i < 20; i++) await request(`${proxy.url}${cold}`, { headers: { connection: 'close' } });
      expect(origin.count(cold)).toBe(fetchedBefore);
      const post = await request(`${proxy.url}${cold}`, { method: 'POST', body: 'x', headers: { connection: 'close' } });
      expect(post.status).toBe(200);
      const afterPost = await Promise.all(Array.from({ length: 20 }, () => request(`${proxy.url}${cold}`, { headers: { connection: 'close' } })));
      const latest = `/cold #${origin.count(cold)}`;
      expect(afterPost.every((r) => r.text === latest)).toBe(true);

      // One purge and one invalidation, each counted once in /stats, not once per worker that applied it.
      const counters = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as Record<string, number>;
      expect([counters.purges, counters.purgedEntries, counters.invalidations]).toEqual([1, 1, 1]);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });

  it('a purge while a worker is being replaced is answered at once, and no worker serves the purged entry', async () => {
    const proxy = await startCli(['--origin', origin.url, '--data-dir', tempDir(), '--workers', '2'], { EDGECACHE_ADMIN_TOKEN: 't' });
    try {
      const url = '/replaced';
      for (let i = 0; i < 20; i++) await request(`${proxy.url}${url}`, { headers: { connection: 'close' } });
      expect(origin.count(url)).toBe(1);
      // The purge is sent while the replacement is still starting.
      await replacingAWorker(proxy);
      // Before, the primary waited for the starting worker's answer (a message it could not receive yet) for the
      // purge's whole timeout, 120 s.
      const purge = await request(`${proxy.adminUrl}/purge`, {
        method: 'POST',
        body: JSON.stringify({ urls: [url] }),
        headers: { 'content-type': 'application/json', authorization: 'Bearer t' },
        timeout: 30_000,
      });
      expect([purge.status, JSON.parse(purge.text)]).toEqual([200, expect.objectContaining({ purged: 1 })]);
      for (const deadline = Date.now() + 20_000; Date.now() < deadline && (await workerStats(proxy)).workersListening < 2; ) await sleep(50);
      const after = await Promise.all(Array.from({ length: 20 }, () => request(`${proxy.url}${url}`, { headers: { connection: 'close' } })));
      expect(after.some((r) => r.text === `${url} #1`)).toBe(false);
      expect(origin.count(url)).toBeGreaterThanOrEqual(2);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  }, 90_000);
});
