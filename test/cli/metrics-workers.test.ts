/**
 * GET /metrics under --workers 2: one scrape of the primary returns the sum over the workers (prom-client's
 * AggregatorRegistry), equal to the traffic sent, the shared disk tier counted once, and no counter goes
 * backwards when a worker dies and is replaced.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { request, sleep } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { parseExposition, type Exposition } from '../helpers/prometheus.js';

let origin: TestOrigin;
let dataDir: string;

beforeAll(async () => {
  origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=3600' });
    res.end('metered');
  });
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-metrics-'));
});

afterAll(async () => {
  await origin.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const TIERS = ['memory', 'disk', 'redis', 'origin'];

/** The sum of edgecache_requests_total{cache} over the tiers. */
const requests = (metrics: Exposition, cache: string): number => TIERS.reduce((sum, tier) => sum + (metrics.value('edgecache_requests_total', { cache, tier }) ?? NaN), 0);

describe('GET /metrics under --workers 2', () => {
  it('sums the workers: 10 misses and 90 hits, histogram counts equal; nothing goes backwards when a worker dies', async () => {
    const proxy = await startCli(['--origin', origin.url, '--data-dir', dataDir, '--workers', '2']);
    try {
      while ((await request(`${proxy.adminUrl}/readyz`)).status !== 200) await sleep(20);
      // New connections each time: the two workers share them.
      for (let i = 0; i < 10; i++) {
        for (let j = 0; j < 10; j++) await request(`${proxy.url}/w${i}`, { headers: { connection: 'close' } });
      }
      expect(origin.requests).toHaveLength(10);
      const stats = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as { processes: Array<{ pid: number; hits: number; misses: number }> };
      expect(stats.processes).toHaveLength(2);
      // Both workers served some of it (else the sum proves nothing).
      expect(stats.processes.every((p) => p.hits + p.misses > 0)).toBe(true);

      const metrics = parseExposition((await request(`${proxy.adminUrl}/metrics`)).text);
      expect(requests(metrics, 'miss')).toBe(10);
      expect(requests(metrics, 'hit')).toBe(90);
      expect(metrics.value('edgecache_requests_total', { cache: 'miss', tier: 'origin' })).toBe(10);
      expect(metrics.value('edgecache_request_duration_seconds_count', { cache: 'hit' })).toBe(90);
      expect(metrics.value('edgecache_request_duration_seconds_count', { cache: 'miss' })).toBe(10);
      expect(metrics.value('edgecache_request_duration_seconds_bucket', { cache: 'hit', le: '+Inf' })).toBe(90);
      expect(metrics.value('edgecache_origin_fetches_total')).toBe(10);
      expect(metrics.value('edgecache_workers')).toBe(2);
      expect(metrics.value('process_resident_memory_bytes')).toBeGreaterThan(0);
      // The disk tier is shared: its entries are counted once, not once per worker.
      expect(metrics.value('edgecache_tier_entries', { tier: 'disk' })).toBe(10);

      // A worker dies and is replaced: the sum keeps its counts.
      process.kill(stats.processes[0]?.pid as number, 'SIGKILL');
      let after: Exposition;
      for (;;) {
        await sleep(200);
        after = parseExposition((await request(`${proxy.adminUrl}/metrics`)).text);
        const pids = (JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as { processes: Array<{ pid: number }> }).processes.map((p) => p.pid);
        if (pids.length === 2 && !pids.includes(stats.processes[0]?.pid as number)) break;
      }
      expect(requests(after, 'hit')).toBe(90);
      expect(requests(after, 'miss')).toBe(10);
      expect(after.value('edgecache_request_duration_seconds_count', { cache: 'hit' })).toBe(90);
      expect(after.value('edgecache_origin_fetches_total')).toBe(10);
      expect(after.value('edgecache_workers')).toBe(2);
      for (let j = 0; j < 10; j++) await request(`${proxy.url}/w0`, { headers: { connection: 'close' } });
      const more = parseExposition((await request(`${proxy.adminUrl}/metrics`)).text);
      expect(requests(more, 'hit') + requests(more, 'miss')).toBe(110);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  }, 60_000);
});
