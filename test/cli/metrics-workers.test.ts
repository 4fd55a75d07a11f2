import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { request, sleep } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { formatMetrics } from '../../proxy/admin/metrics.js';
import { parseExposition } from '../helpers/prometheus.js';

let origin: TestOrigin;
let dataDir: string;

beforeAll(async () => {
  origin = await startOrigin(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    await sleep(Number(url.searchParams.get('delay') ?? 0));
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=3600' });
    res.end(`${url.pathname} #${origin.count(req.url)}`);
  });
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-metrics-'));
});

afterAll(async () => {
  await origin.close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Stats extends Record<string, unknown> {
  workers: number;
  hits: number;
  misses: number;
  processes: Array<{ pid: number; hits: number; misses: number; originFetches: number; memory: { rss: number; heapUsed: number }; eventLoopDelayMs: { p99: number } }>;
  memory: { rss: number; heapUsed: number };
  tiers: Record<string, Record<string, unknown>>;
}

const snake = (field: string): string => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

describe('GET /metrics under --workers 2', () => {
  it('reports the counters summed over the workers, as /stats does', async () => {
    const proxy = await startCli(['--origin', origin.url, '--data-dir', dataDir, '--workers', '2']);
    try {
      // A burst spread over both workers (one origin fetch between them), then hits.
      const cold = '/metered?delay=200';
      const burst = await Promise.all(Array.from({ length: 200 }, () => request(`${proxy.url}${cold}`, { headers: { connection: 'close' } })));
      expect(burst.every((r) => r.status === 200)).toBe(true);
      for (let i = 0; i < 40; i++) await request(`${proxy.url}${cold}`, { headers: { connection: 'close' } });
      expect(origin.count(cold)).toBe(1);

      // Until the workers' queued disk writes have committed, the disk figures may move between two reads.
      let stats: Stats;
      for (;;) {
        stats = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as Stats;
        if (stats.tiers.disk?.pendingWrites === 0) break;
        await sleep(50);
      }
      const res = await request(`${proxy.adminUrl}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
      const metrics = parseExposition(res.text);

      expect(stats.workers).toBe(2);
      expect(metrics.value('edgecache_workers')).toBe(2);
      expect(stats.processes).toHaveLength(2);
      expect(stats.processes.every((p) => p.hits + p.misses > 0)).toBe(true);
      // Memory per process: each worker's, and the primary's own at the top.
      expect(stats.processes.every((p) => p.memory.rss > 0 && p.memory.heapUsed > 0)).toBe(true);
      expect(stats.memory.rss).toBeGreaterThan(0);

      // Summed: each worker's share adds up to the totals, which /metrics reports.
      expect(metrics.value('edgecache_hits_total')).toBe(sum(stats.processes.map((p) => p.hits)));
      expect(metrics.value('edgecache_misses_total')).toBe(sum(stats.processes.map((p) => p.misses)));
      expect(metrics.value('edgecache_origin_fetches_total')).toBe(sum(stats.processes.map((p) => p.originFetches)));
      expect(metrics.value('edgecache_origin_fetches_total')).toBe(1);
      const responses = ['HIT', 'MISS', 'STALE', 'REVALIDATED', 'BYPASS'].map((cache) => metrics.value('edgecache_responses_total', { cache }) ?? NaN);
      expect(sum(responses)).toBe(240);

      // Every counter and every numeric tier figure is the one /stats reports.
      for (const [field, value] of Object.entries(stats)) {
        if (typeof value !== 'number' || field === 'workers' || field === 'uptimeSeconds') continue;
        expect(metrics.value(`edgecache_${snake(field)}_total`), field).toBe(value);
      }
      for (const [tier, figures] of Object.entries(stats.tiers)) {
        for (const [field, value] of Object.entries(figures)) {
          if (typeof value !== 'number') continue;
          const found = metrics.value(`edgecache_tier_${snake(field)}`, { tier }) ?? metrics.value(`edgecache_tier_${snake(field)}_total`, { tier });
          expect(found, `${tier}.${field}`).toBe(value);
        }
      }
      // Each worker has its own memory copy of the entry; the disk tier is shared and counted once.
      expect(metrics.value('edgecache_tier_entries', { tier: 'memory' })).toBe(2);
      expect(metrics.value('edgecache_tier_entries', { tier: 'disk' })).toBe(1);

      // Event-loop delay per worker, labelled with its pid: one series each in /metrics, and exactly the figures of
      // the /stats document in its exposition (/metrics took a snapshot of its own, a moment later).
      const same = parseExposition(formatMetrics(stats));
      for (const { pid, eventLoopDelayMs } of stats.processes) {
        expect(metrics.value('edgecache_event_loop_delay_p99_seconds', { pid: String(pid) })).toEqual(expect.any(Number));
        expect(same.value('edgecache_event_loop_delay_p99_seconds', { pid: String(pid) })).toBe(Math.round(eventLoopDelayMs.p99 * 1000) / 1e6);
      }
      // The longest-running worker's uptime (not summed).
      expect(same.value('edgecache_uptime_seconds')).toBe(stats.uptimeSeconds);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });
});
