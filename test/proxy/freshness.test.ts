import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

// The origin answers /r?h=<urlencoded JSON of response headers>, so each test states the response it needs.
let origin: TestOrigin;
let proxy: TestProxy;
let cookieProxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const headers = JSON.parse(url.searchParams.get('h') ?? '{}') as Record<string, string>;
    for (const [name, value] of Object.entries(headers)) {
      if (value === 'NOW') headers[name] = new Date().toUTCString();
      else if (/^NOW[+-]\d+$/.test(value)) headers[name] = new Date(Date.now() + Number(value.slice(3)) * 1000).toUTCString();
    }
    res.writeHead(Number(url.searchParams.get('status') ?? 200), { 'content-type': 'text/plain', ...headers });
    res.end(`#${origin.count(req.url)}`);
  });
  proxy = await startProxy(origin.url);
  cookieProxy = await startProxy(origin.url, { cacheSetCookie: true });
});

afterAll(async () => {
  await proxy.close();
  await cookieProxy.close();
  await origin.close();
});

let n = 0;
/** A fresh URL for a response with these headers. */
function url(headers: Record<string, string>, extra = ''): string {
  n++;
  return `/r?n=${n}&h=${encodeURIComponent(JSON.stringify(headers))}${extra}`;
}

async function xcache(path: string, headers: Record<string, string> = {}, target = proxy): Promise<string> {
  return String((await request(`${target.url}${path}`, { headers })).headers['x-cache']);
}

describe('freshness lifetime (RFC 9111 §4.2.1)', () => {
  it('max-age: fresh until it runs out, then revalidated', async () => {
    const path = url({ 'cache-control': 'max-age=30' });
    expect(await xcache(path)).toBe('MISS');
    proxy.advance(29_000);
    expect(await xcache(path)).toBe('HIT');
    proxy.advance(2_000);
    expect(await xcache(path)).toBe('MISS');
    expect(origin.count(path)).toBe(2);
  });

  it('s-maxage wins over max-age for a shared cache', async () => {
    const path = url({ 'cache-control': 'max-age=1, s-maxage=100' });
    await xcache(path);
    proxy.advance(50_000);
    expect(await xcache(path)).toBe('HIT');
  });

  it('Expires, relative to Date', async () => {
    const path = url({ date: 'NOW', expires: 'NOW+20' });
    await xcache(path);
    proxy.advance(10_000);
    expect(await xcache(path)).toBe('HIT');
    proxy.advance(15_000);
    expect(await xcache(path)).toBe('MISS');
  });

  it('an invalid or past Expires is stale at once', async () => {
    for (const expires of ['0', 'NOW-10']) {
      const path = url({ date: 'NOW', expires, 'last-modified': 'NOW-100000' });
      await xcache(path);
      expect(await xcache(path)).toBe('MISS');
    }
  });

  it('heuristic freshness from Last-Modified (10%) for a 200 without explicit lifetime', async () => {
    const path = url({ date: 'NOW', 'last-modified': 'NOW-1000' });
    await xcache(path);
    proxy.advance(50_000);
    expect(await xcache(path)).toBe('HIT');
    proxy.advance(60_000);
    expect(await xcache(path)).not.toBe('HIT');
  });

  it('an Age from upstream counts against the lifetime', async () => {
    const path = url({ 'cache-control': 'max-age=60', age: '59' });
    await xcache(path);
    proxy.advance(2_000);
    expect(await xcache(path)).toBe('MISS');
  });

  it('a malformed Age is ignored, and the first of several values counts (RFC 9111 §5.1)', async () => {
    const ignored = url({ 'cache-control': 'max-age=3600', age: '-10' });
    await xcache(ignored);
    expect(await xcache(ignored)).toBe('HIT');
    const old = url({ 'cache-control': 'max-age=3600', age: '7200, 0' });
    await xcache(old);
    expect(await xcache(old)).toBe('MISS');
  });

  it('directive names are case-insensitive', async () => {
    const path = url({ 'cache-control': 'MAX-AGE=60' });
    await xcache(path);
    expect(await xcache(path)).toBe('HIT');
  });
});

describe('what is not stored, or not reused without validation', () => {
  it.each([
    ['no-store', { 'cache-control': 'no-store, max-age=60' }, 'no-store'],
    ['private', { 'cache-control': 'private, max-age=60' }, 'private'],
    ['Set-Cookie', { 'cache-control': 'public, max-age=60', 'set-cookie': 'session=abc' }, 'set-cookie'],
    ['Vary: *', { 'cache-control': 'max-age=60', vary: '*' }, 'vary-star'],
    ['no lifetime, no validator', { 'cache-control': 'max-age=0' }, 'zero-ttl'],
  ])('%s', async (_name, headers, detail) => {
    const path = url(headers);
    const first = await request(`${proxy.url}${path}`);
    expect(first.headers['cache-status']).toContain(`detail=${detail}`);
    expect(await xcache(path)).toBe('MISS');
    expect(origin.count(path)).toBe(2);
  });

  it('never hands one client a Set-Cookie meant for another, unless configured', async () => {
    const path = url({ 'cache-control': 'public, max-age=60', 'set-cookie': 'session=abc' });
    await request(`${proxy.url}${path}`);
    const second = await request(`${proxy.url}${path}`);
    expect(second.headers['x-cache']).toBe('MISS');
    // --cache-set-cookie: stored (and the cookie with it), as the operator asked.
    await request(`${cookieProxy.url}${path}`);
    expect(await xcache(path, {}, cookieProxy)).toBe('HIT');
  });

  it('a status the cache does not store (5xx without explicit freshness, 206) is not-cacheable, as documented', async () => {
    for (const [status, headers] of [[500, { 'last-modified': 'NOW-100000' }], [503, {}], [206, { 'cache-control': 'max-age=60' }]] as const) {
      const path = url(headers, `&status=${status}`);
      const first = await request(`${proxy.url}${path}`);
      expect([first.status, first.headers['cache-status']]).toEqual([status, `edgecache; fwd=uri-miss; fwd-status=${status}; detail=not-cacheable`]);
    }
  });

  it('a stored 204 is served without Content-Length (RFC 9110 §8.6)', async () => {
    const path = url({ 'cache-control': 'max-age=60' }, '&status=204');
    await request(`${proxy.url}${path}`);
    // Through the full pipeline: a request directive keeps it off the hit path, whose prepared head is built elsewhere.
    const hit = await request(`${proxy.url}${path}`, { headers: { 'cache-control': 'max-stale=0' } });
    expect([hit.status, hit.headers['x-cache'], hit.headers['content-length']]).toEqual([204, 'HIT', undefined]);
  });

  it('--cache-set-cookie stores a response with Set-Cookie that has a lifetime, without needing public', async () => {
    const path = url({ 'cache-control': 'max-age=60', 'set-cookie': 'theme=dark' });
    const first = await request(`${cookieProxy.url}${path}`);
    expect(first.headers['cache-status']).toContain('; stored');
    const second = await request(`${cookieProxy.url}${path}`);
    expect([second.headers['x-cache'], second.headers['set-cookie']]).toEqual(['HIT', ['theme=dark']]);
    expect(origin.count(path)).toBe(1);
  });

  it('no-cache: stored, but revalidated before every use', async () => {
    const path = url({ 'cache-control': 'no-cache', etag: '"x"' });
    await xcache(path);
    await xcache(path);
    expect(origin.count(path)).toBe(2);
    expect(origin.requests.at(-1)?.headers['if-none-match']).toBe('"x"');
  });

  it('a request with Authorization is stored only when the response says public, s-maxage or must-revalidate', async () => {
    const plain = url({ 'cache-control': 'max-age=60' });
    await xcache(plain, { authorization: 'Bearer a' });
    expect(await xcache(plain)).toBe('MISS');
    for (const cc of ['public, max-age=60', 's-maxage=60', 'must-revalidate, max-age=60']) {
      const path = url({ 'cache-control': cc });
      await xcache(path, { authorization: 'Bearer a' });
      expect(await xcache(path)).toBe('HIT');
    }
  });
});

describe('qualified no-cache and private (RFC 9111 §5.2.2.4, §5.2.2.7)', () => {
  it('no-cache="f": stored and reused without revalidation, without the listed fields; the first client gets them', async () => {
    const path = url({ 'cache-control': 'no-cache="X-A, x-c", max-age=60', 'x-a': '1', 'x-b': '2', 'x-c': '3', etag: '"q"' });
    const first = await request(`${proxy.url}${path}`);
    expect([first.headers['x-a'], first.headers['x-b'], first.headers['x-c']]).toEqual(['1', '2', '3']);
    const second = await request(`${proxy.url}${path}`);
    expect([second.headers['x-cache'], second.headers['x-a'], second.headers['x-b'], second.headers['x-c'], second.text]).toEqual(['HIT', undefined, '2', undefined, '#1']);
    expect(origin.count(path)).toBe(1);
  });

  it('private="f": stored without the listed fields; Set-Cookie named by either is left out, so the response is stored', async () => {
    for (const cc of ['private="x-user, set-cookie", max-age=60', 'max-age=60, no-cache="set-cookie"', 'private="Set-Cookie", max-age=60']) {
      const path = url({ 'cache-control': cc, 'x-user': 'alice', 'set-cookie': 'session=alice', 'x-b': '2' });
      const first = await request(`${proxy.url}${path}`);
      expect(first.headers['cache-status']).toContain('; stored');
      expect(first.headers['set-cookie']).toEqual(['session=alice']);
      const second = await request(`${proxy.url}${path}`);
      expect([second.headers['x-cache'], second.headers['x-b'], second.headers['set-cookie']]).toEqual(['HIT', '2', undefined]);
      if (cc.includes('x-user')) expect(second.headers['x-user']).toBeUndefined();
      expect(origin.count(path)).toBe(1);
    }
  });

  it('a cookie not named by the qualified directive still keeps the response out of the cache', async () => {
    const path = url({ 'cache-control': 'private="x-user", max-age=60', 'set-cookie': 'session=alice' });
    expect((await request(`${proxy.url}${path}`)).headers['cache-status']).toContain('detail=set-cookie');
  });

  it('unqualified forms, an empty list, or an unqualified one beside a qualified one: as before', async () => {
    const privatePath = url({ 'cache-control': 'private, private="x-a", max-age=60', 'x-a': '1' });
    expect((await request(`${proxy.url}${privatePath}`)).headers['cache-status']).toContain('detail=private');
    for (const cc of ['no-cache="", max-age=60', 'no-cache, no-cache="x-a", max-age=60']) {
      const path = url({ 'cache-control': cc, etag: '"e"' });
      await xcache(path);
      expect(await xcache(path)).not.toBe('HIT');
      expect(origin.count(path)).toBe(2);
    }
  });

  it('collapsed requests are not handed the listed fields: only the client the fetch was made for', async () => {
    const slow = await startOrigin((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'cache-control': 'private="x-user", max-age=60', 'x-user': 'alice', 'x-b': '2' });
        res.end('body');
      }, 150);
    });
    const slowProxy = await startProxy(slow.url);
    try {
      const owner = request(`${slowProxy.url}/c`);
      await new Promise((resolve) => setTimeout(resolve, 30));
      const waiters = await Promise.all([request(`${slowProxy.url}/c`), request(`${slowProxy.url}/c`)]);
      expect((await owner).headers['x-user']).toBe('alice');
      expect(waiters.map((r) => [r.text, r.headers['x-user'], r.headers['x-b']])).toEqual([
        ['body', undefined, '2'],
        ['body', undefined, '2'],
      ]);
      expect(slow.count('/c')).toBe(1);
    } finally {
      await slowProxy.close();
      await slow.close();
    }
  });
});

describe('request directives (RFC 9111 §5.2.1)', () => {
  it('no-cache and Pragma: no-cache force a trip to the origin', async () => {
    const path = url({ 'cache-control': 'max-age=60' });
    await xcache(path);
    expect(await xcache(path, { 'cache-control': 'no-cache' })).toBe('MISS');
    expect(await xcache(path, { pragma: 'no-cache' })).toBe('MISS');
    expect(origin.count(path)).toBe(3);
  });

  it('max-age and min-fresh', async () => {
    const path = url({ 'cache-control': 'max-age=60' });
    await xcache(path);
    proxy.advance(10_000);
    expect(await xcache(path, { 'cache-control': 'max-age=5' })).toBe('MISS');
    expect(await xcache(path, { 'cache-control': 'min-fresh=30' })).toBe('HIT');
    expect(await xcache(path, { 'cache-control': 'min-fresh=70' })).toBe('MISS');
  });

  it('max-stale serves a stale response, but never one the origin forbade', async () => {
    const allowed = url({ 'cache-control': 'max-age=10' });
    const forbidden = url({ 'cache-control': 'max-age=10, must-revalidate' });
    const smaxage = url({ 'cache-control': 's-maxage=10' });
    for (const path of [allowed, forbidden, smaxage]) await xcache(path);
    proxy.advance(20_000);
    expect(await xcache(allowed, { 'cache-control': 'max-stale=60' })).toBe('STALE');
    expect(await xcache(forbidden, { 'cache-control': 'max-stale=60' })).toBe('MISS');
    expect(await xcache(smaxage, { 'cache-control': 'max-stale' })).toBe('MISS');
  });

  it('a fresh must-revalidate response is reused while fresh', async () => {
    const path = url({ 'cache-control': 'max-age=60, must-revalidate' });
    await xcache(path);
    expect(await xcache(path)).toBe('HIT');
  });

  it('only-if-cached answers from cache or with 504, never from the origin', async () => {
    const path = url({ 'cache-control': 'max-age=60' });
    const miss = await request(`${proxy.url}${path}`, { headers: { 'cache-control': 'only-if-cached' } });
    expect(miss.status).toBe(504);
    expect(miss.headers['cache-status']).toBe('edgecache; detail=only-if-cached');
    expect(origin.count(path)).toBe(0);
    await xcache(path);
    expect(await xcache(path, { 'cache-control': 'only-if-cached' })).toBe('HIT');
    // Stale: with max-stale it is served, and said to be stale; without, 504.
    proxy.advance(61_000);
    const stale = await request(`${proxy.url}${path}`, { headers: { 'cache-control': 'only-if-cached, max-stale' } });
    expect([stale.status, stale.headers['x-cache']]).toEqual([200, 'STALE']);
    expect(stale.headers['cache-status']).toContain('detail=max-stale');
    expect((await request(`${proxy.url}${path}`, { headers: { 'cache-control': 'only-if-cached' } })).status).toBe(504);
    expect(origin.count(path)).toBe(1);
  });
});

describe('Surrogate-Control', () => {
  it('sets the lifetime for the cache only, and is not relayed to clients', async () => {
    const path = url({ 'cache-control': 'no-store', 'surrogate-control': 'max-age=60' });
    const first = await request(`${proxy.url}${path}`);
    expect(first.headers['surrogate-control']).toBeUndefined();
    const hit = await request(`${proxy.url}${path}`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers['cache-control']).toBe('no-store');
    expect(origin.requests.at(-1)?.headers['surrogate-capability']).toBe('edgecache="Surrogate/1.0"');
  });

  it('no-store addressed to edgecache prevents storing; directives for other targets are ignored', async () => {
    const noStore = url({ 'cache-control': 'max-age=60', 'surrogate-control': 'no-store;edgecache' });
    await xcache(noStore);
    expect(await xcache(noStore)).toBe('MISS');
    const other = url({ 'cache-control': 'max-age=60', 'surrogate-control': 'no-store;someone-else' });
    await xcache(other);
    expect(await xcache(other)).toBe('HIT');
  });
});
