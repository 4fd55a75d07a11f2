import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

const TOKEN = 's3cret-token';
let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const headers: Record<string, string> = {
      'content-type': 'text/plain',
      'cache-control': url.searchParams.get('cc') ?? 'max-age=600',
      etag: `"${origin.count(req.url)}"`,
    };
    const sk = url.searchParams.get('sk');
    if (sk) headers['surrogate-key'] = sk;
    const ct = url.searchParams.get('ct');
    if (ct) headers['cache-tag'] = ct;
    if (url.pathname.startsWith('/vary')) headers.vary = 'accept-language';
    res.writeHead(200, headers);
    res.end(`${req.url} #${origin.count(req.url)} ${req.headers['accept-language'] ?? ''}`);
  });
  proxy = await startProxy(origin.url, { adminToken: TOKEN });
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const auth = { authorization: `Bearer ${TOKEN}` };

async function xcache(path: string, headers: Record<string, string> = {}): Promise<string> {
  return String((await request(`${proxy.url}${path}`, { headers })).headers['x-cache']);
}

async function adminPurge(body: unknown, headers: Record<string, string> = auth): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${proxy.adminUrl}/purge`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  });
  const json = String(res.headers['content-type']).includes('json') ? (JSON.parse(res.text) as Record<string, unknown>) : { message: res.text };
  return { status: res.status, json };
}

describe('PURGE on the proxy port', () => {
  it('removes one URL with all its Vary variants, using the same key normalisation as lookups', async () => {
    await xcache('/vary/a?x=1', { 'accept-language': 'en' });
    await xcache('/vary/a?x=1', { 'accept-language': 'fr' });
    await xcache('/vary/a?x=2');
    const res = await request(`${proxy.url}/vary/a?x=1`, { method: 'PURGE', headers: { ...auth, host: `127.0.0.1:${proxy.port}` } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ status: 'ok', purged: 2, soft: false });
    expect(await xcache('/vary/a?x=1', { 'accept-language': 'en' })).toBe('MISS');
    expect(await xcache('/vary/a?x=1', { 'accept-language': 'fr' })).toBe('MISS');
    expect(await xcache('/vary/a?x=2')).toBe('HIT');
  });

  it('is refused without the right token, changes nothing, and is counted', async () => {
    await xcache('/guarded');
    const before = proxy.edgecache.stats.purgeAuthFailures;
    const missing = await request(`${proxy.url}/guarded`, { method: 'PURGE' });
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer');
    const wrong = await request(`${proxy.url}/guarded`, { method: 'PURGE', headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(403);
    // Like every response on the proxy port, refusals say what the cache did.
    expect([missing.headers['x-cache'], wrong.headers['x-cache']]).toEqual(['BYPASS', 'BYPASS']);
    expect(wrong.headers['cache-status']).toBe('edgecache; fwd=bypass');
    expect(await xcache('/guarded')).toBe('HIT');
    expect(proxy.edgecache.stats.purgeAuthFailures).toBe(before + 2);
  });

  it('is refused outright when no token is configured', async () => {
    const open = await startProxy(origin.url);
    try {
      await request(`${open.url}/x`);
      const res = await request(`${open.url}/x`, { method: 'PURGE', headers: { authorization: 'Bearer anything' } });
      expect(res.status).toBe(403);
      expect((await request(`${open.url}/x`)).headers['x-cache']).toBe('HIT');
      // ... but the admin API still accepts purges from loopback.
      const admin = await request(`${open.adminUrl}/purge`, { method: 'POST', body: JSON.stringify({ all: true }), headers: { 'content-type': 'application/json' } });
      expect(admin.status).toBe(200);
      expect((await request(`${open.url}/x`)).headers['x-cache']).toBe('MISS');
    } finally {
      await open.close();
    }
  });

  it('Soft-Purge: 1 marks stale instead of removing: the next request revalidates', async () => {
    await xcache('/soft-one');
    const res = await request(`${proxy.url}/soft-one`, { method: 'PURGE', headers: { ...auth, 'soft-purge': '1' } });
    expect(JSON.parse(res.text)).toMatchObject({ purged: 1, soft: true });
    const next = await request(`${proxy.url}/soft-one`);
    expect(next.headers['x-cache']).toBe('MISS');
    expect(origin.requests.at(-1)?.headers['if-none-match']).toBe('"1"');
  });
});

describe('POST /purge on the admin port', () => {
  it('purges by tag, from Surrogate-Key and Cache-Tag, and hides the tag headers from clients', async () => {
    const a = '/t/a?sk=product-1%20shelf';
    const b = '/t/b?ct=product-1,other';
    const c = '/t/c?sk=product-2';
    const first = await request(`${proxy.url}${a}`);
    expect(first.headers['surrogate-key']).toBeUndefined();
    for (const p of [b, c]) await xcache(p);
    const result = await adminPurge({ tags: ['product-1'] });
    expect(result).toEqual({ status: 200, json: { status: 'ok', purged: 2, soft: false } });
    expect(await xcache(a)).toBe('MISS');
    expect(await xcache(b)).toBe('MISS');
    expect(await xcache(c)).toBe('HIT');
  });

  it('purges by path prefix on every host, and by absolute URL prefix on one host', async () => {
    await xcache('/section/1', { host: 'one.example' });
    await xcache('/section/2', { host: 'two.example' });
    await xcache('/sectionless', { host: 'one.example' });
    expect((await adminPurge({ prefixes: ['http://two.example/section/'] })).json.purged).toBe(1);
    expect(await xcache('/section/1', { host: 'one.example' })).toBe('HIT');
    expect((await adminPurge({ prefixes: ['/section/'] })).json.purged).toBe(1);
    expect(await xcache('/section/1', { host: 'one.example' })).toBe('MISS');
    expect(await xcache('/sectionless', { host: 'one.example' })).toBe('HIT');
  });

  it('purges URLs, absolute or by path', async () => {
    await xcache('/u/1', { host: 'one.example' });
    await xcache('/u/2', { host: 'one.example' });
    const result = await adminPurge({ urls: ['http://ONE.example/u/1', '/u/2'] });
    expect(result.json.purged).toBe(2);
    expect(await xcache('/u/1', { host: 'one.example' })).toBe('MISS');
    expect(await xcache('/u/2', { host: 'one.example' })).toBe('MISS');
  });

  it('soft purge keeps serving stale-while-revalidate content once while refreshing', async () => {
    const path = '/swr?cc=max-age=600,stale-while-revalidate=60&sk=swr';
    await xcache(path);
    expect((await adminPurge({ tags: ['swr'], soft: true })).json).toMatchObject({ purged: 1, soft: true });
    expect(await xcache(path)).toBe('STALE');
    await proxy.edgecache.pipeline.idle();
    expect(await xcache(path)).toBe('HIT');
    expect(origin.count(path)).toBe(2);
  });

  it('purges everything', async () => {
    await xcache('/everything-1');
    await xcache('/everything-2');
    const result = await adminPurge({ all: true });
    expect(result.json.purged).toBeGreaterThanOrEqual(2);
    expect(proxy.edgecache.store.memory.stats().entries).toBe(0);
    expect(await xcache('/everything-1')).toBe('MISS');
  });

  it.each([
    ['malformed JSON', '{"urls": [', /JSON/i],
    ['an unknown field', { urls: ['/x'], nope: true }, /must NOT have additional properties/],
    ['empty lists', { urls: [], tags: [] }, /nothing to purge/],
    ['a list too long', { tags: Array.from({ length: 10_001 }, (_, i) => `t${i}`) }, /must NOT have more than 10000 items/],
    ['a wrong type', { tags: 'product-1' }, /must be array/],
    ['an unusable URL', { urls: ['/fine', 'ftp://x/y'] }, /neither an http/],
  ])('answers 400 to %s, applying nothing', async (_name, body, message) => {
    await xcache('/untouched?sk=untouched');
    await xcache('/fine');
    const result = await adminPurge(body);
    expect(result.status).toBe(400);
    expect(String(result.json.message)).toMatch(message);
    expect(await xcache('/untouched?sk=untouched')).toBe('HIT');
    expect(await xcache('/fine')).toBe('HIT');
  });

  it('refuses a missing or wrong token before looking at the body', async () => {
    expect((await adminPurge({ all: true }, {})).status).toBe(401);
    expect((await adminPurge('{bad json', { authorization: 'Bearer wrong' })).status).toBe(403);
  });
});

describe('tag headers', () => {
  it('are relayed when --expose-tag-headers is set', async () => {
    const exposing = await startProxy(origin.url, { exposeTagHeaders: true });
    try {
      const miss = await request(`${exposing.url}/exposed?sk=a%20b`);
      expect(miss.headers['surrogate-key']).toBe('a b');
      const hit = await request(`${exposing.url}/exposed?sk=a%20b`);
      expect([hit.headers['x-cache'], hit.headers['surrogate-key']]).toEqual(['HIT', 'a b']);
    } finally {
      await exposing.close();
    }
  });
});
