import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res, recorded) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const cc = url.searchParams.get('cc') ?? 'public, max-age=60';
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': cc, etag: '"v1"' };
    if (url.searchParams.has('age')) headers.age = url.searchParams.get('age') as string;
    res.writeHead(200, headers);
    res.end(`body of ${recorded.url} #${origin.count(recorded.url)}`);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

describe('MISS then HIT', () => {
  it('stores a cacheable GET and serves the next one from the memory tier', async () => {
    const first = await request(`${proxy.url}/a`);
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['cache-status']).toBe('edgecache; fwd=uri-miss; fwd-status=200; stored');
    const second = await request(`${proxy.url}/a`);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.text).toBe(first.text);
    expect(second.headers.age).toBe('0');
    expect(second.headers['cache-status']).toMatch(/^edgecache; hit; ttl=(59|60)$/);
    expect(second.headers['content-length']).toBe(String(first.body.length));
    expect(second.headers.via).toBe('1.1 edgecache');
    expect(origin.count('/a')).toBe(1);
  });

  it('answers HEAD from the stored GET response, without a body', async () => {
    await request(`${proxy.url}/head-target`);
    const head = await request(`${proxy.url}/head-target`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['x-cache']).toBe('HIT');
    expect(head.body.length).toBe(0);
    expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
    expect(origin.count('/head-target')).toBe(1);
  });

  it('fills a HEAD miss with a GET, so the next GET is a hit', async () => {
    const head = await request(`${proxy.url}/head-first`, { method: 'HEAD' });
    expect(head.headers['x-cache']).toBe('MISS');
    expect(head.body.length).toBe(0);
    expect(origin.requests.at(-1)?.method).toBe('GET');
    const get = await request(`${proxy.url}/head-first`);
    expect(get.headers['x-cache']).toBe('HIT');
    expect(get.text).toBe('body of /head-first #1');
  });

  it('reports a correct Age as time passes, counting the Age the origin sent', async () => {
    await request(`${proxy.url}/aged?age=10&cc=max-age=100`);
    proxy.advance(5_000);
    const hit = await request(`${proxy.url}/aged?age=10&cc=max-age=100`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers.age).toBe('15');
    expect(hit.headers['cache-status']).toBe('edgecache; hit; ttl=85');
  });

  it('keys on the query string exactly as forwarded', async () => {
    await request(`${proxy.url}/q?a=1&b=2`);
    const other = await request(`${proxy.url}/q?b=2&a=1`);
    expect(other.headers['x-cache']).toBe('MISS');
    expect(origin.count('/q?a=1&b=2')).toBe(1);
    expect(origin.count('/q?b=2&a=1')).toBe(1);
  });

  it('keys on the lower-cased Host, and never sends the request to a host taken from it', async () => {
    await request(`${proxy.url}/host`, { headers: { host: 'Example.COM' } });
    const same = await request(`${proxy.url}/host`, { headers: { host: 'example.com' } });
    expect(same.headers['x-cache']).toBe('HIT');
    const other = await request(`${proxy.url}/host`, { headers: { host: 'other.example' } });
    expect(other.headers['x-cache']).toBe('MISS');
    expect(origin.requests.filter((r) => r.url === '/host').map((r) => r.headers.host)).toEqual(['example.com', 'other.example']);
  });

  it('does not store what must not be stored, and says why', async () => {
    const cases: Array<[string, string]> = [
      ['no-store', 'no-store'],
      ['private, max-age=60', 'private'],
    ];
    for (const [cc, detail] of cases) {
      const path = `/not-stored?cc=${encodeURIComponent(cc)}`;
      const first = await request(`${proxy.url}${path}`);
      expect(first.headers['cache-status']).toBe(`edgecache; fwd=uri-miss; fwd-status=200; detail=${detail}`);
      const second = await request(`${proxy.url}${path}`);
      expect(second.headers['x-cache']).toBe('MISS');
      expect(origin.count(path)).toBe(2);
    }
  });
});

describe('admin API', () => {
  it('answers /healthz and reports counters and tier sizes in /stats', async () => {
    const health = await request(`${proxy.adminUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toEqual({ status: 'ok' });
    const stats = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as Record<string, unknown> & { tiers: Record<string, { entries: number; bytes: number }> };
    expect(stats.hits).toBeGreaterThan(0);
    expect(stats.misses).toBeGreaterThan(0);
    expect(stats.originFetches).toBeGreaterThan(0);
    expect(stats.tiers.memory?.entries).toBeGreaterThan(0);
    expect(stats.tiers.memory?.bytes).toBeGreaterThan(0);
    for (const key of ['stale', 'revalidated', 'bypass']) expect(typeof stats[key]).toBe('number');
    // This process's memory, for telling the heap from the rest of the resident set.
    const memory = stats.memory as Record<string, number>;
    for (const key of ['rss', 'heapUsed', 'heapTotal', 'external', 'arrayBuffers']) expect(memory[key]).toBeGreaterThan(0);
    expect(memory.heapUsed).toBeLessThanOrEqual(memory.heapTotal as number);
  });
});
