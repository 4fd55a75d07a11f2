/**
 * Freshening stored responses with a 304 (RFC 9111 §3.2, §4.3.4), against a real origin whose answers each test
 * sets: which fields the 304 updates and where the new lifetime starts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRoutedOrigin, type PathHandler, type RoutedOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

let origin: RoutedOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startRoutedOrigin('/f');
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const path = (handler: PathHandler): string => origin.path(handler);

describe('a 304 freshens the stored response (RFC 9111 §3.2, §4.3.4)', () => {
  it('updates stored fields, except those describing the stored body, and the lifetime starts from the 304', async () => {
    const p = path((req, res, count) => {
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=100', 'x-extra': 'new', 'content-length': '999', 'content-encoding': 'gzip' });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=10', 'x-extra': 'old', 'content-type': 'text/plain' });
      res.end(`body${count}`);
    });
    await request(`${proxy.url}${p}`);
    proxy.advance(50_000);
    const revalidated = await request(`${proxy.url}${p}`);
    expect([revalidated.status, revalidated.text, revalidated.headers['x-extra'], revalidated.headers['cache-control']]).toEqual([200, 'body1', 'new', 'max-age=100']);
    expect([revalidated.headers['content-length'], revalidated.headers['content-encoding']]).toEqual(['5', undefined]);
    // Fresh for 100 s from the 304, not from the first response (which would be stale at 150 s... or fresh at 60).
    proxy.advance(90_000);
    const hit = await request(`${proxy.url}${p}`);
    expect([hit.headers['x-cache'], hit.text, hit.headers['x-extra']]).toEqual(['HIT', 'body1', 'new']);
    expect(origin.count(p)).toBe(2);
    proxy.advance(20_000);
    await request(`${proxy.url}${p}`);
    expect(origin.count(p)).toBe(3);
  });

  it('a weak validator in the 304 selects a stored response with the same opaque tag', async () => {
    const p = path((req, res, count) => {
      if (req.headers['if-none-match'] !== undefined) {
        res.writeHead(304, { etag: 'W/"v1"', 'cache-control': 'max-age=100', 'x-extra': 'from-304' });
        res.end();
        return;
      }
      res.writeHead(200, { etag: 'W/"v1"', 'cache-control': 'max-age=10' });
      res.end(`body${count}`);
    });
    await request(`${proxy.url}${p}`);
    proxy.advance(20_000);
    const second = await request(`${proxy.url}${p}`);
    expect([second.text, second.headers['x-extra']]).toEqual(['body1', 'from-304']);
    expect(origin.count(p)).toBe(2);
  });
});
