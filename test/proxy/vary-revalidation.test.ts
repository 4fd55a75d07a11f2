import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

let origin: TestOrigin;
let proxy: TestProxy;
/** Per-path response version, bumped by tests to simulate a change at the origin. */
const versions = new Map<string, number>();

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (path.startsWith('/lang')) {
      const lang = req.headers['accept-language'] ?? 'none';
      res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language', 'content-type': 'text/plain' });
      res.end(`lang=${lang}`);
      return;
    }
    if (path.startsWith('/validated')) {
      const version = versions.get(path) ?? 1;
      const etag = `"v${version}"`;
      const extra = url.searchParams.get('x') ?? 'a';
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { etag, 'cache-control': 'max-age=10', 'x-extra': `${extra}-updated` });
        res.end();
        return;
      }
      res.writeHead(200, { etag, 'cache-control': 'max-age=10', 'x-extra': extra, 'content-type': 'text/plain', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' });
      res.end(`version ${version}`);
      return;
    }
    if (path.startsWith('/turns-')) {
      // The origin changes its mind on a 304: the response may no longer be stored or shared.
      const now = url.searchParams.get('now') ?? 'no-store';
      if (versions.get(path) === 503) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('origin down');
        return;
      }
      if (req.headers['if-none-match'] === '"t1"') {
        res.writeHead(304, { etag: '"t1"', 'cache-control': now });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"t1"', 'cache-control': 'max-age=10', 'content-type': 'text/plain' });
      res.end(`was shared #${origin.count(req.url)}`);
      return;
    }
    if (path.startsWith('/cookie-304')) {
      // The 304 sets a cookie, as session middleware in front of a static handler does.
      if (req.headers['if-none-match'] === '"c1"') {
        res.writeHead(304, { etag: '"c1"', 'cache-control': 'max-age=10', 'set-cookie': `session=${req.headers['x-user'] ?? 'anonymous'}` });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"c1"', 'cache-control': 'max-age=10', 'content-type': 'text/plain' });
      res.end('shared page');
      return;
    }
    res.writeHead(404);
    res.end();
  });
  proxy = await startProxy(origin.url, { maxVariants: 3 });
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

describe('Vary (RFC 9111 §4.1)', () => {
  it('keeps one variant per nominated request header value and serves each to the right client', async () => {
    const en = await request(`${proxy.url}/lang`, { headers: { 'accept-language': 'en' } });
    const fr = await request(`${proxy.url}/lang`, { headers: { 'accept-language': 'fr' } });
    expect([en.text, fr.text]).toEqual(['lang=en', 'lang=fr']);
    const en2 = await request(`${proxy.url}/lang`, { headers: { 'accept-language': 'en' } });
    const fr2 = await request(`${proxy.url}/lang`, { headers: { 'accept-language': 'fr' } });
    expect([en2.headers['x-cache'], en2.text]).toEqual(['HIT', 'lang=en']);
    expect([fr2.headers['x-cache'], fr2.text]).toEqual(['HIT', 'lang=fr']);
    const none = await request(`${proxy.url}/lang`);
    expect([none.headers['x-cache'], none.text]).toEqual(['MISS', 'lang=none']);
    expect(origin.count('/lang')).toBe(3);
  });

  it('caps the variants per URL, dropping the oldest', async () => {
    for (const lang of ['a', 'b', 'c', 'd']) await request(`${proxy.url}/lang-cap`, { headers: { 'accept-language': lang } });
    const newest = await request(`${proxy.url}/lang-cap`, { headers: { 'accept-language': 'd' } });
    expect(newest.headers['x-cache']).toBe('HIT');
    const oldest = await request(`${proxy.url}/lang-cap`, { headers: { 'accept-language': 'a' } });
    expect(oldest.headers['x-cache']).toBe('MISS');
  });

  it('a hostile Vary cannot grow memory past the cap', async () => {
    for (let i = 0; i < 50; i++) await request(`${proxy.url}/lang-flood`, { headers: { 'accept-language': `x-${i}` } });
    const keys = proxy.edgecache.store.memory.keys('127.0.0.1');
    expect(keys.filter((k) => k.includes('/lang-flood')).length).toBeLessThanOrEqual(3 + 1);
  });
});

describe('revalidation (RFC 9111 §4.3)', () => {
  it('revalidates a stale entry with If-None-Match; a 304 refreshes headers and keeps the body', async () => {
    const first = await request(`${proxy.url}/validated`);
    expect(first.text).toBe('version 1');
    proxy.advance(11_000);
    const second = await request(`${proxy.url}/validated`);
    expect(second.headers['x-cache']).toBe('REVALIDATED');
    expect(second.headers['cache-status']).toBe('edgecache; fwd=stale; fwd-status=304; ttl=10');
    expect(second.text).toBe('version 1');
    expect(second.headers['x-extra']).toBe('a-updated');
    expect(origin.requests.at(-1)?.headers['if-none-match']).toBe('"v1"');
    expect(origin.requests.at(-1)?.headers['if-modified-since']).toBe('Mon, 01 Jan 2024 00:00:00 GMT');
    const third = await request(`${proxy.url}/validated`);
    expect(third.headers['x-cache']).toBe('HIT');
    expect(third.headers['x-extra']).toBe('a-updated');
    expect(origin.count('/validated')).toBe(2);
  });

  it('a Set-Cookie on the 304 reaches the client that caused the revalidation only, never the stored response', async () => {
    await request(`${proxy.url}/cookie-304`);
    proxy.advance(11_000);
    const revalidated = await request(`${proxy.url}/cookie-304`, { headers: { 'x-user': 'alice' } });
    expect(revalidated.headers['x-cache']).toBe('REVALIDATED');
    expect(revalidated.headers['set-cookie']).toEqual(['session=alice']);
    const other = await request(`${proxy.url}/cookie-304`, { headers: { 'x-user': 'bob' } });
    expect([other.headers['x-cache'], other.text]).toEqual(['HIT', 'shared page']);
    expect(other.headers['set-cookie']).toBeUndefined();
    expect(origin.count('/cookie-304')).toBe(2);
  });

  it.each(['no-store', 'private, max-age=60'])('a 304 that says %s removes the stored copy; only the requester gets it', async (now) => {
    // An operator grace would serve whatever is still stored when the origin fails: nothing must be.
    const graceful = await startProxy(origin.url, { staleIfErrorGrace: 600_000 });
    try {
      const path = `/turns-${now.split(',')[0]}?now=${encodeURIComponent(now)}`;
      await request(`${graceful.url}${path}`);
      graceful.advance(11_000);
      const revalidated = await request(`${graceful.url}${path}`);
      expect([revalidated.headers['x-cache'], revalidated.headers['cache-control'], revalidated.text]).toEqual(['REVALIDATED', now, 'was shared #1']);
      versions.set(path.split('?')[0] as string, 503);
      const after = await request(`${graceful.url}${path}`);
      expect([after.status, after.headers['x-cache'], after.text]).toEqual([503, 'MISS', 'origin down']);
    } finally {
      await graceful.close();
    }
  });

  it('a 200 to the revalidation replaces the entry', async () => {
    await request(`${proxy.url}/validated-2`);
    versions.set('/validated-2', 2);
    proxy.advance(11_000);
    const changed = await request(`${proxy.url}/validated-2`);
    expect(changed.headers['x-cache']).toBe('MISS');
    expect(changed.text).toBe('version 2');
    const hit = await request(`${proxy.url}/validated-2`);
    expect([hit.headers['x-cache'], hit.text]).toEqual(['HIT', 'version 2']);
  });

  it("answers a client's matching conditional request with 304 from cache", async () => {
    await request(`${proxy.url}/validated-3`);
    const conditional = await request(`${proxy.url}/validated-3`, { headers: { 'if-none-match': '"v1"' } });
    expect(conditional.status).toBe(304);
    expect(conditional.headers['x-cache']).toBe('HIT');
    expect(conditional.headers.etag).toBe('"v1"');
    expect(conditional.body.length).toBe(0);
    const weak = await request(`${proxy.url}/validated-3`, { headers: { 'if-none-match': 'W/"v1"' } });
    expect(weak.status).toBe(304);
    const ims = await request(`${proxy.url}/validated-3`, { headers: { 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' } });
    expect(ims.status).toBe(304);
    const mismatch = await request(`${proxy.url}/validated-3`, { headers: { 'if-none-match': '"other"' } });
    expect(mismatch.status).toBe(200);
    expect(origin.count('/validated-3')).toBe(1);
  });

  it('does not pass the client validators on a miss: it fetches the full response, then answers 304 itself', async () => {
    const conditional = await request(`${proxy.url}/validated-4`, { headers: { 'if-none-match': '"v1"' } });
    expect(conditional.status).toBe(304);
    expect(origin.requests.at(-1)?.headers['if-none-match']).toBeUndefined();
    const full = await request(`${proxy.url}/validated-4`);
    expect([full.status, full.headers['x-cache'], full.text]).toEqual([200, 'HIT', 'version 1']);
  });
});

describe('ranges from cache', () => {
  it('serves a single byte range of a stored response, and 416 past the end', async () => {
    await request(`${proxy.url}/validated-5`);
    const range = await request(`${proxy.url}/validated-5`, { headers: { range: 'bytes=0-6' } });
    expect(range.status).toBe(206);
    expect(range.text).toBe('version');
    expect(range.headers['content-range']).toBe('bytes 0-6/9');
    const suffix = await request(`${proxy.url}/validated-5`, { headers: { range: 'bytes=-1' } });
    expect(suffix.text).toBe('1');
    const beyond = await request(`${proxy.url}/validated-5`, { headers: { range: 'bytes=100-' } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers['content-range']).toBe('bytes */9');
  });

  it('fills the whole response on a Range miss (the Range is not forwarded) and answers the range from it', async () => {
    const partial = await request(`${proxy.url}/validated-6`, { headers: { range: 'bytes=0-2' } });
    expect([partial.status, partial.text, partial.headers['x-cache']]).toEqual([206, 'ver', 'MISS']);
    expect(origin.requests.at(-1)?.headers.range).toBeUndefined();
    await proxy.edgecache.pipeline.idle();
    expect((await request(`${proxy.url}/validated-6`)).headers['x-cache']).toBe('HIT');
  });
});
