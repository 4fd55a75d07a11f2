import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, sleep, type TestResponse } from '../helpers/http.js';

/** The origin answers /d/<name>?delay=ms&cc=...&status=...; bodies carry a per-path counter. */
let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const delay = Number(url.searchParams.get('delay') ?? 0);
    const n = origin.count(req.url);
    if (delay) await sleep(delay);
    const status = Number(url.searchParams.get('status') ?? 200);
    const etag = url.searchParams.get('etag');
    if (etag && req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag, 'cache-control': url.searchParams.get('cc') ?? 'max-age=60' });
      res.end();
      return;
    }
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': url.searchParams.get('cc') ?? 'max-age=60' };
    if (etag) headers.etag = etag;
    const size = Number(url.searchParams.get('size') ?? 0);
    res.writeHead(status, headers);
    if (size) {
      // A body sent in pieces, so late joiners arrive mid-stream.
      const piece = Buffer.alloc(16 * 1024, 97);
      for (let sent = 0; sent < size; sent += piece.length) {
        res.write(piece);
        await sleep(2);
      }
      res.end(`#${n}`);
      return;
    }
    res.end(`${url.pathname} #${n}`);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

function burst(path: string, n: number, headers: Record<string, string> = {}): Promise<TestResponse[]> {
  return Promise.all(Array.from({ length: n }, () => request(`${proxy.url}${path}`, { headers, timeout: 20_000 })));
}

describe('collapsed misses', () => {
  it('500 concurrent requests for a cold key cost the origin one request; all bodies identical', async () => {
    const path = '/d/cold?delay=200';
    const responses = await burst(path, 500);
    expect(origin.count(path)).toBe(1);
    expect(new Set(responses.map((r) => r.text))).toEqual(new Set(['/d/cold #1']));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    // On a loaded machine some connections are accepted only after the fill has stored the response: those are
    // plain HITs. Every other request joined the one fetch.
    const collapsed = responses.filter((r) => String(r.headers['cache-status']).includes('collapsed'));
    const lateHits = responses.filter((r) => r.headers['x-cache'] === 'HIT' && !String(r.headers['cache-status']).includes('collapsed'));
    const misses = responses.filter((r) => r.headers['x-cache'] === 'MISS' && !String(r.headers['cache-status']).includes('collapsed'));
    expect(misses.length).toBe(1);
    expect(collapsed.length + lateHits.length).toBe(499);
    expect(collapsed.length).toBeGreaterThan(0);
    expect(proxy.edgecache.stats.coalesced).toBe(collapsed.length);
  });

  it('late joiners get the bytes already received, then the rest', async () => {
    const path = '/d/stream?size=400000';
    const first = request(`${proxy.url}${path}`);
    await sleep(30);
    const late = await burst(path, 5);
    const all = [await first, ...late];
    expect(origin.count(path)).toBe(1);
    expect(new Set(all.map((r) => r.body.length)).size).toBe(1);
    expect(all.every((r) => r.body.equals(all[0]?.body as Buffer))).toBe(true);
  });

  it('the first client going away does not break the others', async () => {
    const path = '/d/abort?delay=200';
    const aborting = http.get(`${proxy.url}${path}`);
    aborting.on('error', () => undefined);
    await sleep(20);
    const others = burst(path, 20);
    await sleep(20);
    aborting.destroy();
    const responses = await others;
    expect(responses.every((r) => r.status === 200 && r.text === '/d/abort #1')).toBe(true);
    expect(origin.count(path)).toBe(1);
  });

  it('a private answer is not handed to any waiter; the URL then skips the queue for a while', async () => {
    const path = '/d/private?delay=150&cc=private';
    const responses = await burst(path, 10);
    expect(new Set(responses.map((r) => r.text)).size).toBe(10);
    expect(origin.count(path)).toBe(10);
    const before = proxy.edgecache.stats.hitForMiss;
    await burst(path, 5);
    expect(proxy.edgecache.stats.hitForMiss).toBeGreaterThan(before);
  });

  it('hit-for-miss marks expire: URLs that are never asked for again do not pile up', async () => {
    const own = await startProxy(origin.url);
    try {
      // What is kept is the point here, and nothing on the wire shows it: the pipeline says how many keys it holds.
      for (let i = 0; i < 5; i++) await request(`${own.url}/d/once-${i}?cc=private`);
      expect(own.edgecache.pipeline.tracked().hitForMiss).toBe(5);
      own.advance(61_000);
      await request(`${own.url}/d/once-last?cc=private`);
      expect(own.edgecache.pipeline.tracked().hitForMiss).toBe(1);
      // The one kept is the last URL's: it skips the queue, the expired ones collapse again.
      const before = own.edgecache.stats.hitForMiss;
      await request(`${own.url}/d/once-last?cc=private`);
      await request(`${own.url}/d/once-0?cc=private`);
      expect(own.edgecache.stats.hitForMiss).toBe(before + 1);
    } finally {
      await own.close();
    }
  });

  it('a waiter that varies differently from the shared response fetches on its own', async () => {
    const vary = await startOrigin(async (req, res) => {
      await sleep(150);
      res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language' });
      res.end(`lang=${req.headers['accept-language'] ?? 'none'}`);
    });
    const varyProxy = await startProxy(vary.url);
    try {
      const en = request(`${varyProxy.url}/v`, { headers: { 'accept-language': 'en' } });
      await sleep(20);
      const fr = request(`${varyProxy.url}/v`, { headers: { 'accept-language': 'fr' } });
      const en2 = request(`${varyProxy.url}/v`, { headers: { 'accept-language': 'en' } });
      expect((await en).text).toBe('lang=en');
      expect((await fr).text).toBe('lang=fr');
      expect((await en2).text).toBe('lang=en');
      expect(vary.count('/v')).toBe(2);
    } finally {
      await varyProxy.close();
      await vary.close();
    }
  });

  it('an origin error reaches every waiter promptly', async () => {
    const failing = await startOrigin(async (_req, res) => {
      await sleep(150);
      res.socket?.destroy();
    });
    const failProxy = await startProxy(failing.url);
    try {
      const started = Date.now();
      const responses = await Promise.all(Array.from({ length: 50 }, () => request(`${failProxy.url}/boom`)));
      expect(Date.now() - started).toBeLessThan(2000);
      expect(responses.every((r) => r.status === 502)).toBe(true);
      expect(failing.count('/boom')).toBe(1);
    } finally {
      await failProxy.close();
      await failing.close();
    }
  });

  it('a waiter gives up after --coalesce-wait and fetches on its own', async () => {
    const impatient = await startProxy(origin.url, { coalesceWait: 100 });
    try {
      const path = '/d/impatient?delay=400';
      const responses = await Promise.all(Array.from({ length: 3 }, () => request(`${impatient.url}${path}`)));
      expect(responses.every((r) => r.status === 200)).toBe(true);
      expect(origin.count(path)).toBe(3);
      expect(impatient.edgecache.stats.coalesceDetached).toBe(2);
    } finally {
      await impatient.close();
    }
  });
});

describe('stale entries', () => {
  it('200 concurrent requests for a stale key send one conditional request', async () => {
    const path = '/d/stale?delay=300&cc=max-age=1&etag=%22e1%22';
    await request(`${proxy.url}${path}`);
    proxy.advance(2_000);
    const responses = await burst(path, 200);
    expect(origin.count(path)).toBe(2);
    expect(origin.requests.filter((r) => r.url === path).at(-1)?.headers['if-none-match']).toBe('"e1"');
    // A request that connects only after the 304 arrived (a loaded machine) finds the refreshed entry: a HIT.
    expect(responses.every((r) => (r.headers['x-cache'] === 'REVALIDATED' || r.headers['x-cache'] === 'HIT') && r.text === '/d/stale #1')).toBe(true);
    expect(responses.filter((r) => r.headers['x-cache'] === 'REVALIDATED').length).toBeGreaterThan(0);
  });

  it('stale-while-revalidate answers at once and refreshes once in the background', async () => {
    // The origin takes 1.5 s: answers that came well before it did not wait for the refresh (a wide margin, so that
    // a loaded machine's slowness is not taken for waiting).
    const path = '/d/swr?delay=1500&cc=max-age=1,stale-while-revalidate=60';
    await request(`${proxy.url}${path}`);
    proxy.advance(2_000);
    const started = Date.now();
    const stale = await burst(path, 20);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(stale.every((r) => r.headers['x-cache'] === 'STALE' && r.text === '/d/swr #1')).toBe(true);
    await proxy.edgecache.pipeline.idle();
    expect(origin.count(path)).toBe(2);
    const fresh = await request(`${proxy.url}${path}`);
    expect([fresh.headers['x-cache'], fresh.text]).toEqual(['HIT', '/d/swr #2']);
  });
});

describe('stale-if-error', () => {
  it('serves the stale body when the origin answers 503, and passes the 503 without the directive', async () => {
    const flaky = await startOrigin((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (flaky.count(req.url) > 1) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('down');
        return;
      }
      res.writeHead(200, { 'cache-control': url.searchParams.get('cc') ?? '' });
      res.end('good');
    });
    const p = await startProxy(flaky.url);
    try {
      for (const cc of ['max-age=1, stale-if-error=60', 'max-age=1', 'max-age=1, stale-if-error=60, must-revalidate']) {
        await request(`${p.url}/x?cc=${encodeURIComponent(cc)}`);
      }
      p.advance(2_000);
      const withDirective = await request(`${p.url}/x?cc=${encodeURIComponent('max-age=1, stale-if-error=60')}`);
      expect([withDirective.status, withDirective.headers['x-cache'], withDirective.text]).toEqual([200, 'STALE', 'good']);
      expect(withDirective.headers['cache-status']).toContain('fwd-status=503');
      expect(withDirective.headers['cache-status']).toContain('detail=stale-if-error');
      const without = await request(`${p.url}/x?cc=${encodeURIComponent('max-age=1')}`);
      expect([without.status, without.text]).toEqual([503, 'down']);
      // must-revalidate wins over stale-if-error (RFC 9111 §4.2.4): the error is passed on.
      const mustRevalidate = await request(`${p.url}/x?cc=${encodeURIComponent('max-age=1, stale-if-error=60, must-revalidate')}`);
      expect(mustRevalidate.status).toBe(503);
      // Past the window, the error is passed on too.
      p.advance(120_000);
      expect((await request(`${p.url}/x?cc=${encodeURIComponent('max-age=1, stale-if-error=60')}`)).status).toBe(503);
    } finally {
      await p.close();
      await flaky.close();
    }
  });

  it('serves the stale body when the origin port is closed; the operator grace covers responses without the directive', async () => {
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'cache-control': req.url === '/sie' ? 'max-age=1, stale-if-error=60' : 'max-age=1' });
      res.end(`stored ${req.url}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const plain = await startProxy(`http://127.0.0.1:${port}`);
    const graceful = await startProxy(`http://127.0.0.1:${port}`, { staleIfErrorGrace: 300_000 });
    try {
      for (const p of [plain, graceful]) for (const path of ['/sie', '/plain']) await request(`${p.url}${path}`);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // Make sure the port really refuses connections now.
      await expect(new Promise<void>((resolve, reject) => net.connect(port, '127.0.0.1', () => resolve()).on('error', reject))).rejects.toThrow();
      plain.advance(2_000);
      graceful.advance(2_000);
      const sie = await request(`${plain.url}/sie`);
      expect([sie.status, sie.headers['x-cache'], sie.text]).toEqual([200, 'STALE', 'stored /sie']);
      expect((await request(`${plain.url}/plain`)).status).toBe(502);
      const grace = await request(`${graceful.url}/plain`);
      expect([grace.status, grace.text]).toEqual([200, 'stored /plain']);
    } finally {
      await plain.close();
      await graceful.close();
    }
  });
});

describe('TTL jitter', () => {
  it('only ever shortens the lifetime the origin gave', async () => {
    const jittery = await startProxy(origin.url, { ttlJitter: 50 });
    try {
      const ttls: number[] = [];
      for (let i = 0; i < 40; i++) {
        await request(`${jittery.url}/d/jitter-${i}?cc=max-age=1000`);
        const hit = await request(`${jittery.url}/d/jitter-${i}?cc=max-age=1000`);
        ttls.push(Number(/ttl=(-?\d+)/.exec(String(hit.headers['cache-status']))?.[1]));
      }
      expect(Math.max(...ttls)).toBeLessThanOrEqual(1000);
      expect(Math.min(...ttls)).toBeGreaterThanOrEqual(499);
      expect(new Set(ttls).size).toBeGreaterThan(10);
    } finally {
      await jittery.close();
    }
  });
});
