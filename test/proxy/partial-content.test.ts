/**
 * Stored partial content (RFC 9111 §3.3): a single-part 206 an origin answered a fill with is kept apart from the
 * URL's entries and answers later Range requests that lie wholly within it; nothing else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRoutedOrigin, type PathHandler, type RoutedOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

let origin: RoutedOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startRoutedOrigin('/p');
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const path = (handler: PathHandler): string => origin.path(handler);

/** An origin that answers every GET with bytes 4-9 of "0123456789" (as a server that ignores the request's range). */
function partialOrigin(extra: Record<string, string> = {}): PathHandler {
  return (_req, res) => {
    res.writeHead(206, { 'cache-control': 'max-age=3600', 'content-range': 'bytes 4-9/10', 'content-type': 'text/plain', 'x-a': '1', ...extra });
    res.end('456789');
  };
}

describe('stored partial content (RFC 9111 §3.3)', () => {
  it('a 206 is stored and answers Range requests within it: one range, a suffix, an open end, several', async () => {
    const p = path(partialOrigin());
    const first = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=-6' } });
    expect([first.status, first.text, first.headers['content-range']]).toEqual([206, '456789', 'bytes 4-9/10']);
    await proxy.edgecache.pipeline.idle();
    const one = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=6-8' } });
    expect([one.status, one.text, one.headers['content-range'], one.headers['content-length'], one.headers['x-cache'], one.headers['x-a']]).toEqual([206, '678', 'bytes 6-8/10', '3', 'HIT', '1']);
    const suffix = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=-2' } });
    expect([suffix.status, suffix.text, suffix.headers['content-range']]).toEqual([206, '89', 'bytes 8-9/10']);
    const open = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-' } });
    expect([open.status, open.text, open.headers['content-range']]).toEqual([206, '56789', 'bytes 5-9/10']);
    const several = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=4-4,9-9' } });
    expect(several.status).toBe(206);
    expect(several.headers['content-type']).toMatch(/^multipart\/byteranges; boundary=/);
    expect(several.text).toContain('Content-Range: bytes 4-4/10\r\n\r\n4\r\n');
    expect(several.text).toContain('Content-Range: bytes 9-9/10\r\n\r\n9\r\n');
    expect(origin.count(p)).toBe(1);
  });

  it('a range outside the stored part, a request without Range, or a conditional one goes to the origin', async () => {
    const p = path(partialOrigin());
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=4-' } });
    await proxy.edgecache.pipeline.idle();
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=3-5' } });
    expect(origin.count(p)).toBe(2);
    const whole = await request(`${proxy.url}${p}`);
    // Never the part for the whole: the origin's answer (here the same 206) is relayed.
    expect(whole.headers['x-cache']).toBe('MISS');
    expect(origin.count(p)).toBe(3);
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6', 'if-none-match': '"x"' } });
    expect(origin.count(p)).toBe(4);
  });

  it('is not stored when its length and Content-Range disagree, when it varies, or when a 200 with its fields would not be', async () => {
    const short = path((_req, res) => {
      res.writeHead(206, { 'cache-control': 'max-age=3600', 'content-range': 'bytes 4-9/10' });
      res.end('01234');
    });
    const varies = path(partialOrigin({ vary: 'accept' }));
    const noStore = path(partialOrigin({ 'cache-control': 'no-store' }));
    for (const p of [short, varies, noStore]) {
      await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
      await proxy.edgecache.pipeline.idle();
      await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
      expect(origin.count(p)).toBe(2);
    }
  });

  it('a purge of the URL removes it; once stale it is not used', async () => {
    const p = path(partialOrigin({ 'cache-control': 'max-age=10' }));
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
    await proxy.edgecache.pipeline.idle();
    expect((await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } })).headers['x-cache']).toBe('HIT');
    const purged = await request(`${proxy.adminUrl}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ urls: [p] }) });
    expect(purged.status).toBe(200);
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
    expect(origin.count(p)).toBe(2);
    await proxy.edgecache.pipeline.idle();
    proxy.advance(20_000);
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
    expect(origin.count(p)).toBe(3);
  });
});
