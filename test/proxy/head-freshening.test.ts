/**
 * A HEAD for a stored response that must be revalidated goes to the origin as a HEAD (RFC 9111 §4.3.5): a 304
 * freshens the stored response as for a GET, a 200 that describes it (same validators, same Content-Length)
 * updates its fields and lifetime and keeps its body, any other answer leaves it stale. Against a real origin
 * on 127.0.0.1 that records the methods it is asked with.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRoutedOrigin, type PathHandler, type RoutedOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

let origin: RoutedOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startRoutedOrigin('/h');
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const path = (handler: PathHandler): string => origin.path(handler);

/** The methods the origin was asked for `p` with, in order. */
function methods(p: string): string[] {
  return origin.requests.filter((r) => r.url === p).map((r) => r.method);
}

const BODY = randomBytes(3000);

/** Stores BODY under `p` (ETag "v1", max-age=10), then lets it go stale. */
async function storeThenStale(p: string): Promise<void> {
  const first = await request(`${proxy.url}${p}`);
  expect([first.status, first.headers['x-cache']]).toEqual([200, 'MISS']);
  await proxy.edgecache.pipeline.idle();
  proxy.advance(20_000);
}

function storedResponse(res: ServerResponse, extra: Record<string, string> = {}): void {
  res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=10', 'content-type': 'application/octet-stream', 'x-field': 'old', ...extra });
  res.end(BODY);
}

describe('HEAD freshening (RFC 9111 §4.3.5)', () => {
  it('a HEAD for a stale response goes to the origin as a conditional HEAD, and a 304 freshens it as for a GET', async () => {
    const p = path((req, res, count) => {
      if (count === 1) return storedResponse(res);
      expect(req.headers['if-none-match']).toBe('"v1"');
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=100', 'x-field': 'from-304' });
      res.end();
    });
    await storeThenStale(p);
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD' });
    expect([head.status, head.headers['x-cache'], head.headers['x-field'], head.headers['content-length'], head.body.length]).toEqual([200, 'REVALIDATED', 'from-304', '3000', 0]);
    expect(head.headers['cache-status']).toContain('fwd=stale');
    expect(head.headers['cache-status']).toContain('fwd-status=304');
    expect(methods(p)).toEqual(['GET', 'HEAD']);
    const get = await request(`${proxy.url}${p}`);
    expect([get.status, get.headers['x-cache'], get.headers['x-field'], get.headers['cache-control']]).toEqual([200, 'HIT', 'from-304', 'max-age=100']);
    expect(get.body.equals(BODY)).toBe(true);
    expect(methods(p)).toEqual(['GET', 'HEAD']);
  });

  it('a 200 with the stored ETag and length updates the stored fields and lifetime, and keeps the stored body', async () => {
    const p = path((req, res, count) => {
      if (count === 1) return storedResponse(res);
      expect(req.method).toBe('HEAD');
      res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=100', 'content-length': String(BODY.length), 'x-field': 'from-head', 'x-new': 'added' });
      res.end();
    });
    await storeThenStale(p);
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD' });
    // The client is answered from the freshened response: the HEAD's fields, and the stored ones it did not carry.
    expect([head.status, head.headers['x-cache'], head.headers['x-new'], head.headers['content-type'], head.headers['content-length'], head.body.length]).toEqual([
      200,
      'REVALIDATED',
      'added',
      'application/octet-stream',
      '3000',
      0,
    ]);
    expect(head.headers['cache-status']).toMatch(/fwd=stale; fwd-status=200/);
    await proxy.edgecache.pipeline.idle();
    const get = await request(`${proxy.url}${p}`);
    expect([get.status, get.headers['x-cache'], get.headers['x-field'], get.headers['x-new'], get.headers['cache-control']]).toEqual([200, 'HIT', 'from-head', 'added', 'max-age=100']);
    expect(get.body.equals(BODY)).toBe(true);
    // Fresh for 100 s from the HEAD's answer.
    proxy.advance(90_000);
    expect((await request(`${proxy.url}${p}`)).headers['x-cache']).toBe('HIT');
    expect(methods(p)).toEqual(['GET', 'HEAD']);
  });

  it('a 200 with another ETag leaves the stored response stale: the next GET revalidates and gets the new body', async () => {
    const p = path((req, res, count) => {
      if (count === 1) return storedResponse(res);
      if (req.method === 'HEAD') {
        res.writeHead(200, { etag: '"v2"', 'cache-control': 'max-age=100', 'content-length': '3' });
        res.end();
        return;
      }
      expect(req.headers['if-none-match']).toBe('"v1"');
      res.writeHead(200, { etag: '"v2"', 'cache-control': 'max-age=100' });
      res.end('new');
    });
    await storeThenStale(p);
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD' });
    expect([head.status, head.headers.etag, head.headers['content-length'], head.headers['x-cache']]).toEqual([200, '"v2"', '3', 'MISS']);
    expect(head.headers['cache-status']).not.toContain('stored');
    await proxy.edgecache.pipeline.idle();
    const get = await request(`${proxy.url}${p}`);
    expect([get.status, get.text, get.headers.etag, get.headers['x-cache']]).toEqual([200, 'new', '"v2"', 'MISS']);
    expect(methods(p)).toEqual(['GET', 'HEAD', 'GET']);
  });

  it('a 200 with the stored ETag but another Content-Length does not freshen it', async () => {
    const p = path((req, res, count) => {
      if (count === 1) return storedResponse(res);
      if (req.method === 'HEAD') {
        res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=100', 'content-length': String(BODY.length + 1), 'x-field': 'from-head' });
        res.end();
        return;
      }
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=100' });
      res.end();
    });
    await storeThenStale(p);
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.headers['x-field']]).toEqual([200, String(BODY.length + 1), 'from-head']);
    await proxy.edgecache.pipeline.idle();
    const get = await request(`${proxy.url}${p}`);
    expect([get.headers['x-cache'], get.headers['x-field']]).toEqual(['REVALIDATED', 'old']);
    expect(get.body.equals(BODY)).toBe(true);
    expect(methods(p)).toEqual(['GET', 'HEAD', 'GET']);
  });

  it('a stored response without validators is freshened by a 200 without validators and with its length', async () => {
    const p = path((req, res, count) => {
      if (count === 1) {
        res.writeHead(200, { 'cache-control': 'max-age=2', 'template-a': '1' });
        res.end('abc');
        return;
      }
      expect([req.method, req.headers['if-none-match'], req.headers['if-modified-since']]).toEqual(['HEAD', undefined, undefined]);
      res.writeHead(200, { 'cache-control': 'max-age=1000', 'template-a': '2', 'content-length': '3' });
      res.end();
    });
    const first = await request(`${proxy.url}${p}`);
    expect(first.text).toBe('abc');
    await proxy.edgecache.pipeline.idle();
    proxy.advance(5_000);
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD' });
    expect([head.status, head.headers['template-a']]).toEqual([200, '2']);
    await proxy.edgecache.pipeline.idle();
    const get = await request(`${proxy.url}${p}`);
    expect([get.headers['x-cache'], get.headers['template-a'], get.text]).toEqual(['HIT', '2', 'abc']);
    expect(methods(p)).toEqual(['GET', 'HEAD']);
  });

  it('another status is relayed and changes nothing stored', async () => {
    const p = path((req, res, count) => {
      if (count === 1) return storedResponse(res);
      if (req.method === 'HEAD') {
        res.writeHead(404, { 'cache-control': 'max-age=100', 'x-field': 'gone', 'content-length': '9' });
        res.end();
        return;
      }
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=100' });
      res.end();
    });
    await storeThenStale(p);
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD' });
    expect([head.status, head.headers['x-field'], head.body.length]).toEqual([404, 'gone', 0]);
    expect(head.headers['cache-status']).toContain('fwd-status=404');
    await proxy.edgecache.pipeline.idle();
    // Still stored (not invalidated), still stale: the GET revalidates it and is served the stored body.
    const get = await request(`${proxy.url}${p}`);
    expect([get.status, get.headers['x-cache'], get.headers['x-field']]).toEqual([200, 'REVALIDATED', 'old']);
    expect(get.body.equals(BODY)).toBe(true);
    expect(methods(p)).toEqual(['GET', 'HEAD', 'GET']);
  });

  it('a 5xx to the HEAD lets a stale-if-error response stand in, headers only', async () => {
    const p = path((_req, res, count) => {
      if (count === 1) return storedResponse(res, { 'cache-control': 'max-age=10, stale-if-error=600' });
      res.writeHead(503, { 'content-length': '0' });
      res.end();
    });
    await storeThenStale(p);
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD' });
    expect([head.status, head.headers['x-cache'], head.headers['x-field'], head.headers['content-length'], head.body.length]).toEqual([200, 'STALE', 'old', '3000', 0]);
    expect(methods(p)).toEqual(['GET', 'HEAD']);
  });

  it('a HEAD with no-cache on a fresh response: a 200 that contradicts it makes the stored response stale', async () => {
    const p = path((req, res, count) => {
      if (count === 1) return storedResponse(res, { 'cache-control': 'max-age=100' });
      if (req.method === 'HEAD') {
        res.writeHead(200, { etag: '"v2"', 'cache-control': 'max-age=100', 'content-length': '3' });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"v2"', 'cache-control': 'max-age=100' });
      res.end('new');
    });
    await request(`${proxy.url}${p}`);
    await proxy.edgecache.pipeline.idle();
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD', headers: { 'cache-control': 'no-cache' } });
    expect([head.status, head.headers.etag]).toEqual([200, '"v2"']);
    expect(head.headers['cache-status']).toContain('fwd=request');
    await proxy.edgecache.pipeline.idle();
    const get = await request(`${proxy.url}${p}`);
    expect([get.text, get.headers['x-cache']]).toEqual(['new', 'MISS']);
    expect(methods(p)).toEqual(['GET', 'HEAD', 'GET']);
  });

  it('freshens only the Vary variant the HEAD selects', async () => {
    const p = path((req, res) => {
      const lang = String(req.headers['accept-language']);
      if (req.method === 'HEAD') {
        expect(req.headers['if-none-match']).toBe(`"${lang}"`);
        res.writeHead(304, { etag: `"${lang}"`, 'cache-control': 'max-age=100', vary: 'accept-language', 'x-field': 'from-head' });
        res.end();
        return;
      }
      if (req.headers['if-none-match'] === `"${lang}"`) {
        res.writeHead(304, { etag: `"${lang}"`, 'cache-control': 'max-age=100', vary: 'accept-language', 'x-field': 'from-get' });
        res.end();
        return;
      }
      res.writeHead(200, { etag: `"${lang}"`, 'cache-control': 'max-age=10', vary: 'accept-language', 'x-field': 'old' });
      res.end(`body-${lang}`);
    });
    for (const lang of ['en', 'fr']) await request(`${proxy.url}${p}`, { headers: { 'accept-language': lang } });
    await proxy.edgecache.pipeline.idle();
    proxy.advance(20_000);
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD', headers: { 'accept-language': 'en' } });
    expect([head.headers['x-cache'], head.headers['x-field']]).toEqual(['REVALIDATED', 'from-head']);
    await proxy.edgecache.pipeline.idle();
    const en = await request(`${proxy.url}${p}`, { headers: { 'accept-language': 'en' } });
    expect([en.headers['x-cache'], en.headers['x-field'], en.text]).toEqual(['HIT', 'from-head', 'body-en']);
    const fr = await request(`${proxy.url}${p}`, { headers: { 'accept-language': 'fr' } });
    expect([fr.headers['x-cache'], fr.headers['x-field'], fr.text]).toEqual(['REVALIDATED', 'from-get', 'body-fr']);
    expect(methods(p)).toEqual(['GET', 'GET', 'HEAD', 'GET']);
  });

  it('a HEAD on a miss still fills the cache with a GET', async () => {
    const p = path((_req, res) => storedResponse(res));
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD' });
    expect([head.status, head.headers['x-cache'], head.body.length]).toEqual([200, 'MISS', 0]);
    await proxy.edgecache.pipeline.idle();
    const get = await request(`${proxy.url}${p}`);
    expect(get.headers['x-cache']).toBe('HIT');
    expect(get.body.equals(BODY)).toBe(true);
    expect(methods(p)).toEqual(['GET']);
  });
});
