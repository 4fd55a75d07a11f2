/**
 * Spellings of one host (`a.test`, `A.TEST`, `a.test:80` on an http listener, `a.test.`) are one cache key, are
 * forwarded to the origin as one Host / X-Forwarded-Host, and are purged together, by URL, prefix or PURGE.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

const TOKEN = 'host-token';
let origin: TestOrigin;
let proxy: TestProxy;
let ownHost: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': 'max-age=600' };
    if (req.url === '/moved' && req.method === 'POST') headers.location = 'http://A.TEST.:80/moved-to';
    res.writeHead(req.method === 'POST' ? 201 : 200, headers);
    res.end(`${req.method} ${req.url} host=${req.headers.host} xfh=${req.headers['x-forwarded-host']}`);
  });
  proxy = await startProxy(origin.url, { adminToken: TOKEN });
  ownHost = await startProxy(origin.url, { preserveHost: false });
});

afterAll(async () => {
  await proxy.close();
  await ownHost.close();
  await origin.close();
});

const SPELLINGS = ['a.test', 'A.TEST', 'a.test:80', 'a.test.', 'A.Test.:80', 'a.test:0080'];

async function get(path: string, host: string, on: TestProxy = proxy): Promise<{ xcache: string; text: string }> {
  const res = await request(`${on.url}${path}`, { headers: { host } });
  return { xcache: String(res.headers['x-cache']), text: res.text };
}

describe('one host, several spellings', () => {
  it('share one cache key: one origin fetch, the rest are hits', async () => {
    const results = [];
    for (const host of SPELLINGS) results.push((await get('/same', host)).xcache);
    expect(results).toEqual(['MISS', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT']);
    expect(origin.count('/same')).toBe(1);
  });

  it('are forwarded normalised: the origin sees the Host (with --preserve-host) and X-Forwarded-Host the key is built from', async () => {
    const { text } = await get('/forwarded', 'A.Test.:80');
    expect(text).toBe('GET /forwarded host=a.test xfh=a.test');
    const forwarded = origin.requests.find((r) => r.url === '/forwarded');
    expect(forwarded?.rawHeaders.filter((_, i) => i % 2 === 0 && forwarded.rawHeaders[i]?.toLowerCase() === 'host')).toHaveLength(1);
  });

  it('without --preserve-host, X-Forwarded-Host is normalised', async () => {
    const { text } = await get('/own-host', 'A.TEST.:80', ownHost);
    expect(text).toBe(`GET /own-host host=127.0.0.1:${origin.port} xfh=a.test`);
  });

  it('pass-through requests are forwarded normalised too', async () => {
    const res = await request(`${proxy.url}/post`, { method: 'POST', body: 'x', headers: { host: 'A.TEST.:80' } });
    expect(res.text).toBe('POST /post host=a.test xfh=a.test');
  });

  it('a port other than the default one is a different key and is kept', async () => {
    expect((await get('/port', 'a.test:8080')).xcache).toBe('MISS');
    expect((await get('/port', 'a.test')).xcache).toBe('MISS');
    expect((await get('/port', 'A.TEST:08080')).xcache).toBe('HIT');
    // 443 is not the default port of this (http) listener.
    expect((await get('/port', 'a.test:443')).xcache).toBe('MISS');
    const hosts = origin.requests.filter((r) => r.url === '/port').map((r) => r.headers.host);
    expect(hosts).toEqual(['a.test:8080', 'a.test', 'a.test:443']);
  });
});

describe('purges reach every spelling', () => {
  const adminPurge = (body: unknown): Promise<unknown> =>
    request(`${proxy.adminUrl}/purge`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    }).then((res) => JSON.parse(res.text) as unknown);

  it('by URL, whatever spelling the URL uses', async () => {
    await get('/by-url', 'a.test');
    expect(await adminPurge({ urls: ['http://A.TEST.:80/by-url'] })).toMatchObject({ purged: 1 });
    for (const host of SPELLINGS) {
      await get('/by-url', 'a.test.');
      expect((await get('/by-url', host)).xcache).toBe('HIT');
      expect(await adminPurge({ urls: [`http://${host}/by-url`] })).toMatchObject({ purged: 1 });
    }
  });

  it('an https:// URL drops :443, not :80', async () => {
    await get('/tls-port', 'a.test:443');
    expect(await adminPurge({ urls: ['https://A.test.:443/tls-port'] })).toMatchObject({ purged: 0 });
    expect(await adminPurge({ urls: ['http://a.test:443/tls-port'] })).toMatchObject({ purged: 1 });
  });

  it('by prefix', async () => {
    await get('/prefix/1', 'A.TEST');
    await get('/prefix/2', 'a.test:80');
    expect(await adminPurge({ prefixes: ['http://a.test.:80/prefix/'] })).toMatchObject({ purged: 2 });
    expect((await get('/prefix/1', 'a.test')).xcache).toBe('MISS');
  });

  it('by PURGE on the proxy port', async () => {
    await get('/purge-method', 'a.test');
    const res = await request(`${proxy.url}/purge-method`, { method: 'PURGE', headers: { host: 'A.TEST.:80', authorization: `Bearer ${TOKEN}` } });
    expect(JSON.parse(res.text)).toMatchObject({ purged: 1 });
    expect((await get('/purge-method', 'a.test')).xcache).toBe('MISS');
  });

  it('invalidation after an unsafe method, including a Location spelled differently', async () => {
    await get('/moved', 'a.test');
    await get('/moved-to', 'a.test');
    const res = await request(`${proxy.url}/moved`, { method: 'POST', body: 'x', headers: { host: 'a.test.' } });
    expect(res.status).toBe(201);
    expect((await get('/moved', 'a.test')).xcache).toBe('MISS');
    expect((await get('/moved-to', 'a.test')).xcache).toBe('MISS');
  });
});
