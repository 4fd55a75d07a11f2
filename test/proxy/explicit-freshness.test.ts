/**
 * Explicit freshness on the wire, against a real origin: Age (RFC 9111 §5.1), Expires and Date (RFC 9110 §5.6.7,
 * RFC 9111 §5.3), which statuses are stored (RFC 9111 §3, §5.2.2.3), targeted cache-control fields (RFC 9213).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, type TestResponse } from '../helpers/http.js';

// The origin answers /r?h=<urlencoded JSON of response headers>&status=N, so each test states the response it
// needs; `NOW` and `NOW+s` / `NOW-s` become HTTP-dates, arrays become several field lines. `set` switches the
// answer of a path from its next request on.
let origin: TestOrigin;
let proxy: TestProxy;
let acmeProxy: TestProxy;
const overrides = new Map<string, { status: number; headers: Record<string, string> }>();

function date(value: string): string {
  if (value === 'NOW') return new Date().toUTCString();
  if (/^NOW[+-]\d+$/.test(value)) return new Date(Date.now() + Number(value.slice(3)) * 1000).toUTCString();
  return value;
}

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const override = overrides.get(req.url ?? '');
    const headers = override?.headers ?? (JSON.parse(url.searchParams.get('h') ?? '{}') as Record<string, string | string[]>);
    const out: Record<string, string | string[]> = { 'content-type': 'text/plain' };
    for (const [name, value] of Object.entries(headers)) out[name] = Array.isArray(value) ? value.map(date) : date(value);
    res.writeHead(override?.status ?? Number(url.searchParams.get('status') ?? 200), out);
    res.end(`#${origin.count(req.url)}`);
  });
  proxy = await startProxy(origin.url);
  acmeProxy = await startProxy(origin.url, { targetedCacheControl: 'Acme-Cache-Control' });
});

afterAll(async () => {
  await proxy.close();
  await acmeProxy.close();
  await origin.close();
});

let n = 0;
function url(headers: Record<string, string | string[]>, status = 200): string {
  n++;
  return `/r?n=${n}&status=${status}&h=${encodeURIComponent(JSON.stringify(headers))}`;
}

function get(path: string, target = proxy): Promise<TestResponse> {
  return request(`${target.url}${path}`);
}

/** Whether a second request, after a pause, is answered from the cache. */
async function reused(headers: Record<string, string | string[]>, status = 200, target = proxy): Promise<boolean> {
  const path = url(headers, status);
  await get(path, target);
  target.advance(2_000);
  const second = await get(path, target);
  return second.text === '#1';
}

describe('Age (RFC 9111 §5.1)', () => {
  it('counts against the lifetime; the first member of a list is the value', async () => {
    expect(await reused({ date: 'NOW', 'cache-control': 'max-age=3600', age: '60' })).toBe(true);
    expect(await reused({ date: 'NOW', 'cache-control': 'max-age=3600', age: '7200' })).toBe(false);
    expect(await reused({ date: 'NOW', 'cache-control': 'max-age=3600', age: '0,7200' })).toBe(true);
    expect(await reused({ date: 'NOW', 'cache-control': 'max-age=3600', age: '7200,0' })).toBe(false);
  });

  it('a value that is not a non-negative integer leaves the response stale, never fresher', async () => {
    for (const age of ['abc', '-7200', '7200.0', '7200;foo=bar', ['0', '7200']]) {
      expect(await reused({ date: 'NOW', 'cache-control': 'max-age=3600', age }), JSON.stringify(age)).toBe(false);
    }
  });
});

describe('Expires and Date (RFC 9110 §5.6.7, RFC 9111 §5.3)', () => {
  it('reads IMF-fixdate, RFC 850 and asctime dates, in any case', async () => {
    expect(await reused({ date: 'NOW', expires: 'Thu, 18 Aug 2050 02:01:18 GMT' })).toBe(true);
    expect(await reused({ date: 'NOW', expires: 'Thursday, 18-Aug-50 02:01:18 GMT' })).toBe(true);
    expect(await reused({ date: 'NOW', expires: 'Thu Aug 18 02:01:18 2050' })).toBe(true);
    expect(await reused({ date: 'NOW', expires: 'THU, 18 AUG 2050 02:01:18 gmt' })).toBe(true);
  });

  it('treats anything else as already expired', async () => {
    for (const expires of [
      'Thu, 18 Aug 2050 02:01:18 UTC',
      'Thu, 18 Aug 50 02:01:18 GMT',
      'Thu 18 Aug 2050 02:01:18 GMT',
      'Thu, 18  Aug  2050 02:01:18 GMT',
      'Thu, 18-Aug-2050 02:01:18 GMT',
      'Thu, 18 Aug 2050 2:01:18 GMT',
      '0',
      ['Thu, 18 Aug 2050 02:01:18 GMT', 'Thu, 18 Aug 2050 02:01:19 GMT'],
    ]) {
      expect(await reused({ date: 'NOW', expires }), JSON.stringify(expires)).toBe(false);
    }
  });

  it('an invalid Date is treated as absent: replaced by the time of receipt, and Expires counts from it', async () => {
    // Read leniently, this Date would be after Expires: already expired.
    const path = url({ date: 'Thu, 18 Aug 2050 2:01:18 GMT', expires: 'NOW+3600' });
    const first = await get(path);
    // The proxy's clock runs ahead of the origin's in this file (advance): the Date is edgecache's.
    expect(Date.parse(String(first.headers.date))).toBeGreaterThan(Date.now() - 5_000);
    expect(first.headers.date).not.toBe('Thu, 18 Aug 2050 2:01:18 GMT');
    proxy.advance(30_000);
    expect((await get(path)).text).toBe('#1');
  });
});

describe('status codes (RFC 9111 §3, §5.2.2.3)', () => {
  it('stores any final status with explicit freshness, and serves it with its status', async () => {
    for (const status of [400, 404, 410, 500, 502, 503, 504, 299, 499, 599]) {
      const path = url({ 'cache-control': 'max-age=3600' }, status);
      const first = await get(path);
      const second = await get(path);
      expect([first.status, second.status, second.text, second.headers['x-cache']], String(status)).toEqual([status, status, '#1', 'HIT']);
    }
  });

  it('uses no heuristic for a status that is not heuristically cacheable', async () => {
    expect(await reused({ date: 'NOW', 'last-modified': 'NOW-100000' }, 404)).toBe(true);
    expect(await reused({ date: 'NOW', 'last-modified': 'NOW-100000' }, 500)).toBe(false);
    expect(await reused({ date: 'NOW', 'last-modified': 'NOW-100000' }, 599)).toBe(false);
  });

  it('must-understand: an understood status is stored despite no-store, an unrecognised one never', async () => {
    expect(await reused({ 'cache-control': 'max-age=3600, no-store, must-understand' }, 200)).toBe(true);
    expect(await reused({ 'cache-control': 'max-age=3600, no-store, must-understand' }, 503)).toBe(true);
    expect(await reused({ 'cache-control': 'max-age=3600, must-understand' }, 299)).toBe(false);
    expect(await reused({ 'cache-control': 'max-age=3600, no-store, must-understand' }, 299)).toBe(false);
  });

  it('a cacheable 5xx does not replace a stored response that stale-if-error can still serve', async () => {
    const path = url({ 'cache-control': 'max-age=10, stale-if-error=600' });
    overrides.set(path, { status: 200, headers: { 'cache-control': 'max-age=10, stale-if-error=600' } });
    expect((await get(path)).status).toBe(200);
    overrides.set(path, { status: 503, headers: { 'cache-control': 'max-age=3600' } });
    proxy.advance(20_000);
    const stale = await get(path);
    expect([stale.status, stale.text]).toEqual([200, '#1']);
    const again = await get(path);
    expect([again.status, again.text]).toEqual([200, '#1']);
    // Once stale-if-error no longer covers it, the 503 with its own freshness is stored in its place.
    proxy.advance(700_000);
    const replaced = await get(path);
    expect(replaced.status).toBe(503);
    expect((await get(path)).headers['x-cache']).toBe('HIT');
  });
});

describe('targeted cache-control fields (RFC 9213)', () => {
  it("CDN-Cache-Control decides edgecache's lifetime over Cache-Control and Expires, both ways", async () => {
    expect(await reused({ 'cache-control': 'max-age=1', 'cdn-cache-control': 'max-age=3600' })).toBe(true);
    expect(await reused({ 'cache-control': 'max-age=3600', 'cdn-cache-control': 'max-age=1' })).toBe(false);
    expect(await reused({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=3600' })).toBe(true);
    expect(await reused({ 'cache-control': 'max-age=3600', 'cdn-cache-control': 'no-store' })).toBe(false);
    expect(await reused({ 'cache-control': 'max-age=3600', 'cdn-cache-control': 'private' })).toBe(false);
    expect(await reused({ 'cdn-cache-control': 'max-age=3600', date: 'NOW', expires: 'NOW-100' })).toBe(true);
  });

  it('an invalid field is ignored as a whole', async () => {
    expect(await reused({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=10000, &&&&&' })).toBe(false);
    expect(await reused({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age="10000"' })).toBe(false);
    expect(await reused({ 'cache-control': 'max-age=1', 'cdn-cache-control': 'max-age= 100' })).toBe(false);
  });

  it('Edgecache-Cache-Control comes first and is not sent on; CDN-Cache-Control is', async () => {
    const path = url({ 'cache-control': 'max-age=1', 'cdn-cache-control': 'max-age=2', 'edgecache-cache-control': 'max-age=3600' });
    const first = await get(path);
    expect(first.headers['edgecache-cache-control']).toBeUndefined();
    expect(first.headers['cdn-cache-control']).toBe('max-age=2');
    proxy.advance(60_000);
    const hit = await get(path);
    expect([hit.text, hit.headers['x-cache']]).toEqual(['#1', 'HIT']);
    expect(hit.headers['edgecache-cache-control']).toBeUndefined();
    expect(hit.headers['cdn-cache-control']).toBe('max-age=2');
  });

  it('what the client gets lets no browser keep it longer than Cache-Control says', async () => {
    const path = url({ date: 'NOW', 'cache-control': 'max-age=60', 'cdn-cache-control': 'max-age=3600' });
    await get(path);
    proxy.advance(600_000);
    const hit = await get(path);
    expect([hit.text, hit.headers['x-cache'], hit.headers['cache-control'], hit.headers.expires]).toEqual(['#1', 'HIT', 'max-age=60', undefined]);
    // Age says how long edgecache has held it: a browser sees it is already stale by its Cache-Control.
    expect(Number(hit.headers.age)).toBeGreaterThanOrEqual(600);
  });

  it('obeys the configured names only (--targeted-cache-control)', async () => {
    expect(await reused({ 'cache-control': 'max-age=1', 'cdn-cache-control': 'max-age=3600' }, 200, acmeProxy)).toBe(false);
    expect(await reused({ 'cache-control': 'max-age=1', 'acme-cache-control': 'max-age=3600' }, 200, acmeProxy)).toBe(true);
  });
});
