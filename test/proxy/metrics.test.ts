/**
 * GET /metrics (prom-client) in a single process: parsed with a strict exposition parser, its counters equal to
 * the traffic sent (10 misses and 90 hits give exactly those), the duration histograms' counts equal to the
 * requests, the tiers' figures, and prom-client's default process metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { parseExposition } from '../helpers/prometheus.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=3600' });
    res.end('metered');
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const RESULTS = ['hit', 'miss', 'stale', 'revalidated', 'bypass'];
const TIERS = ['memory', 'disk', 'redis', 'origin'];

describe('GET /metrics', () => {
  it('counts exactly the traffic sent: 10 misses and 90 hits', async () => {
    for (let i = 0; i < 10; i++) {
      expect((await request(`${proxy.url}/m${i}`)).headers['x-cache']).toBe('MISS');
      for (let j = 0; j < 9; j++) expect((await request(`${proxy.url}/m${i}`)).headers['x-cache']).toBe('HIT');
    }
    await proxy.edgecache.store.flush();
    const res = await request(`${proxy.adminUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const metrics = parseExposition(res.text);

    expect(metrics.families.get('edgecache_requests_total')?.type).toBe('counter');
    for (const cache of RESULTS) {
      for (const tier of TIERS) {
        const expected = cache === 'hit' && tier === 'memory' ? 90 : cache === 'miss' && tier === 'origin' ? 10 : 0;
        expect(metrics.value('edgecache_requests_total', { cache, tier }), `${cache}/${tier}`).toBe(expected);
      }
    }
    expect(metrics.value('edgecache_origin_fetches_total')).toBe(10);
    expect(metrics.value('edgecache_coalesced_total')).toBe(0);
    expect(origin.requests).toHaveLength(10);

    // Histograms: every bucket present, cumulative, +Inf and _count equal to the requests.
    const duration = 'edgecache_request_duration_seconds';
    expect(metrics.families.get(duration)?.type).toBe('histogram');
    for (const [cache, count] of [['hit', 90], ['miss', 10], ['stale', 0]] as const) {
      expect(metrics.value(`${duration}_count`, { cache })).toBe(count);
      expect(metrics.value(`${duration}_bucket`, { cache, le: '+Inf' })).toBe(count);
      const buckets = [...metrics.series].filter(([key]) => key.startsWith(`${duration}_bucket{cache="${cache}",`)).map(([, v]) => v);
      expect(buckets.length).toBeGreaterThan(10);
      expect([...buckets].sort((a, b) => a - b)).toEqual(buckets);
    }
    expect(metrics.value(`${duration}_sum`, { cache: 'hit' })).toBeGreaterThan(0);
    expect(metrics.value('edgecache_origin_request_duration_seconds_count')).toBe(10);
    expect(metrics.value('edgecache_origin_request_duration_seconds_bucket', { le: '+Inf' })).toBe(10);

    // Tiers: entries and bytes per tier, evictions.
    for (const tier of ['memory', 'disk']) {
      expect(metrics.value('edgecache_tier_entries', { tier }), tier).toBe(10);
      expect(metrics.value('edgecache_tier_bytes', { tier })).toBeGreaterThan(0);
      expect(metrics.value('edgecache_tier_evictions_total', { tier })).toBe(0);
    }
    expect(metrics.value('edgecache_tier_write_failures_total', { tier: 'disk' })).toBe(0);
    expect(metrics.value('edgecache_purges_total')).toBe(0);
    // The ten small entries ('metered' and their header fields) sit packed in the memory tier's slabs, and each
    // was hit, so decoded.
    const live = metrics.value('edgecache_tier_slab_live_bytes', { tier: 'memory' }) ?? 0;
    expect(live).toBeGreaterThan(10 * (64 + 'metered'.length));
    expect(live).toBeLessThan(10 * 1024);
    expect(metrics.value('edgecache_tier_slab_bytes', { tier: 'memory' })).toBeGreaterThanOrEqual(live);
    expect(metrics.value('edgecache_tier_decoded_entries', { tier: 'memory' })).toBe(10);

    // prom-client's default process and Node metrics.
    expect(metrics.value('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(metrics.families.get('nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
    expect(metrics.families.has('nodejs_gc_duration_seconds')).toBe(true);
  });

  it('times passed-through requests in the origin latency histogram too', async () => {
    const count = async (): Promise<number> =>
      parseExposition((await request(`${proxy.adminUrl}/metrics`)).text).value('edgecache_origin_request_duration_seconds_count') as number;
    const before = await count();
    for (let i = 0; i < 3; i++) expect((await request(`${proxy.url}/posted`, { method: 'POST', body: 'x' })).headers['x-cache']).toBe('BYPASS');
    expect(await count()).toBe(before + 3);
  });

  it('counts purges', async () => {
    const purged = await request(`${proxy.adminUrl}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ all: true }) });
    expect(purged.status).toBe(200);
    const metrics = parseExposition((await request(`${proxy.adminUrl}/metrics`)).text);
    expect(metrics.value('edgecache_purges_total')).toBe(1);
    expect(metrics.value('edgecache_tier_entries', { tier: 'memory' })).toBe(0);
    expect(metrics.value('edgecache_tier_slab_live_bytes', { tier: 'memory' })).toBe(0);
  });
});

describe('edgecache_origin_errors_total{kind}', () => {
  it('counts each failed origin request once, by kind, on the cache path and the pass-through alike', async () => {
    const failing = await startOrigin((req, res) => {
      // /silent: headers never come; /reset: the connection is destroyed before any byte; POST /reset likewise.
      if (req.url?.startsWith('/silent')) return;
      if (req.url?.startsWith('/reset')) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.end('ok');
    });
    const edge = await startProxy(failing.url, { originHeadersTimeout: 300 });
    // A port nobody listens on: the same origin closed.
    const closed = await startOrigin(() => undefined);
    const closedUrl = closed.url;
    await closed.close();
    const refusing = await startProxy(closedUrl);
    try {
      expect((await request(`${edge.url}/silent`)).status).toBe(504);
      expect((await request(`${edge.url}/reset/a`)).status).toBe(502);
      expect((await request(`${edge.url}/reset/b`, { method: 'POST', body: 'x' })).status).toBe(502);
      expect((await request(`${edge.url}/fine`)).status).toBe(200);
      expect((await request(`${refusing.url}/x`)).status).toBe(502);

      const kinds = (text: string): Record<string, number> => {
        const metrics = parseExposition(text);
        const out: Record<string, number> = {};
        for (const kind of ['refused', 'dns', 'connect-timeout', 'headers-timeout', 'body-timeout', 'reset', 'other']) {
          out[kind] = metrics.value('edgecache_origin_errors_total', { kind }) as number;
        }
        return out;
      };
      expect(kinds((await request(`${edge.adminUrl}/metrics`)).text)).toEqual({
        refused: 0,
        dns: 0,
        'connect-timeout': 0,
        'headers-timeout': 1,
        'body-timeout': 0,
        reset: 2,
        other: 0,
      });
      expect(kinds((await request(`${refusing.adminUrl}/metrics`)).text)).toMatchObject({ refused: 1, reset: 0, 'headers-timeout': 0 });
      const stats = JSON.parse((await request(`${edge.adminUrl}/stats`)).text) as Record<string, number>;
      expect([stats.originErrors, stats.originErrorsHeadersTimeout, stats.originErrorsReset]).toEqual([3, 1, 2]);
    } finally {
      await Promise.all([edge.close(), refusing.close(), failing.close()]);
    }
  });
});
