import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMetrics } from '../../proxy/admin/metrics.js';
import { ProxyStats } from '../../proxy/admin/stats.js';
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

const snake = (field: string): string => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

describe('GET /metrics', () => {
  it('is valid exposition text with the same figures as /stats', async () => {
    expect((await request(`${proxy.url}/metered`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${proxy.url}/metered`)).headers['x-cache']).toBe('HIT');
    // The disk tier's entry count is read from what has committed: let the write-through land first.
    await proxy.edgecache.store.flush();

    const stats = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as Record<string, unknown> & { tiers: Record<string, Record<string, unknown>> };
    const res = await request(`${proxy.adminUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const metrics = parseExposition(res.text);

    // Every ProxyStats counter, as a counter named after it.
    const counters = Object.keys(new ProxyStats());
    expect(counters.length).toBeGreaterThan(15);
    for (const field of counters) {
      const name = `edgecache_${snake(field)}_total`;
      expect(metrics.families.get(name)?.type, name).toBe('counter');
      expect(metrics.value(name), name).toBe(stats[field]);
    }
    expect([metrics.value('edgecache_hits_total'), metrics.value('edgecache_misses_total')]).toEqual([1, 1]);
    expect(metrics.value('edgecache_origin_fetches_total')).toBe(1);
    expect(metrics.value('edgecache_responses_total', { cache: 'HIT' })).toBe(1);
    expect(metrics.value('edgecache_responses_total', { cache: 'MISS' })).toBe(1);
    for (const cache of ['STALE', 'REVALIDATED', 'BYPASS']) expect(metrics.value('edgecache_responses_total', { cache })).toBe(0);

    // Every numeric tier figure, labelled with its tier; the memory tier's policy as an info gauge.
    expect(Object.keys(stats.tiers).sort()).toEqual(['disk', 'memory']);
    for (const [tier, figures] of Object.entries(stats.tiers)) {
      for (const [field, value] of Object.entries(figures)) {
        if (typeof value !== 'number') continue;
        const type = metrics.families.get(`edgecache_tier_${snake(field)}`)?.type ?? metrics.families.get(`edgecache_tier_${snake(field)}_total`)?.type;
        expect(type, `${tier}.${field}`).toMatch(/^(gauge|counter)$/);
        const name = `edgecache_tier_${snake(field)}${type === 'counter' ? '_total' : ''}`;
        expect(metrics.value(name, { tier }), `${tier}.${field}`).toBe(value);
      }
    }
    for (const tier of ['memory', 'disk']) {
      expect(metrics.value('edgecache_tier_entries', { tier })).toBe(1);
      expect(metrics.value('edgecache_tier_bytes', { tier })).toBeGreaterThan(0);
      expect(metrics.value('edgecache_tier_max_bytes', { tier })).toBeGreaterThan(0);
      expect(metrics.families.get('edgecache_tier_evictions_total')?.type).toBe('counter');
      expect(metrics.value('edgecache_tier_evictions_total', { tier })).toBe(0);
    }
    expect(metrics.value('edgecache_tier_write_failures_total', { tier: 'disk' })).toBe(0);
    expect(metrics.value('edgecache_tier_info', { tier: 'memory', policy: String(stats.tiers.memory?.policy) })).toBe(1);

    // Process figures: /metrics took its own snapshot, a moment after /stats, so they are checked exactly on the
    // exposition of the /stats document (what /metrics formats).
    const delays = stats.eventLoopDelayMs as Record<string, number>;
    const same = parseExposition(formatMetrics(stats));
    for (const stat of ['p50', 'p99', 'max']) {
      const name = `edgecache_event_loop_delay_${stat}_seconds`;
      expect(metrics.families.get(name)?.type).toBe('gauge');
      expect(metrics.value(name, { pid: String(process.pid) })).toEqual(expect.any(Number));
      expect(same.value(name, { pid: String(process.pid) })).toBe(Math.round((delays[stat] as number) * 1000) / 1e6);
    }
    expect(metrics.families.get('edgecache_uptime_seconds')?.type).toBe('gauge');
    expect(same.value('edgecache_uptime_seconds')).toBe(stats.uptimeSeconds);
    expect(metrics.families.has('edgecache_workers')).toBe(false);

    // Conventions: counters end in _total, nothing is exposed without a type.
    for (const [name, family] of metrics.families) {
      expect(family.type, name).not.toBe('untyped');
      expect(name.endsWith('_total'), name).toBe(family.type === 'counter');
      expect(family.help.length, name).toBeGreaterThan(0);
    }
  });

  it('escapes label values, writes non-finite values, and exposes unknown numeric tier figures untyped', () => {
    const text = formatMetrics({
      hits: 3,
      tiers: { remote: { name: 'remote', entries: 2, maxBytes: Infinity, lagMs: 7, policy: 'a"b\\c\nd' } },
    });
    const metrics = parseExposition(text);
    expect(metrics.value('edgecache_hits_total')).toBe(3);
    expect(metrics.value('edgecache_responses_total', { cache: 'HIT' })).toBe(3);
    expect(metrics.value('edgecache_tier_max_bytes', { tier: 'remote' })).toBe(Infinity);
    expect(metrics.families.get('edgecache_tier_lag_ms')?.type).toBe('untyped');
    expect(metrics.value('edgecache_tier_lag_ms', { tier: 'remote' })).toBe(7);
    expect(text).toContain('edgecache_tier_info{tier="remote",policy="a\\"b\\\\c\\nd"} 1\n');
    // Counters that the document does not carry are left out, not reported as zero.
    expect(metrics.families.has('edgecache_misses_total')).toBe(false);
  });
});
