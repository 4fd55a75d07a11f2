/**
 * Compression stored once (--compress): each form decoded byte-equal to the origin's body, validators per form,
 * one origin fetch for every form, Accept-Encoding preferences (q-values, identity;q=0), no-transform, minimum
 * size and type list, origin-compressed bodies undone on the fly, and the forms surviving a restart (disk tier).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, type TestResponse } from '../helpers/http.js';

/** A body that compresses like a JS bundle: repeated identifiers, varied enough to be more than one block. */
function bundle(size: number): Buffer {
  const parts: string[] = [];
  let i = 0;
  while (parts.join('').length < size) {
    parts.push(`export function handler${i}(event){return fetch("/api/v1/items/"+event.id+"?v=${i % 97}").then(r=>r.json());}\n`);
    i++;
  }
  return Buffer.from(parts.join('').slice(0, size));
}

const JS = bundle(40_000);
const SMALL = Buffer.from('x'.repeat(200));
const GZ_BODY = bundle(5_000);

let origin: TestOrigin;
let proxy: TestProxy;

function answer(path: string): { headers: Record<string, string>; body: Buffer } | undefined {
  switch (path) {
    case '/app.js':
    case '/app2.js':
    case '/app3.js':
    case '/app4.js':
      return { headers: { 'content-type': 'application/javascript', 'cache-control': 'public, max-age=600', etag: '"v1"' }, body: JS };
    case '/small.js':
      return { headers: { 'content-type': 'application/javascript', 'cache-control': 'public, max-age=600' }, body: SMALL };
    case '/photo.png':
      return { headers: { 'content-type': 'image/png', 'cache-control': 'public, max-age=600' }, body: JS };
    case '/no-transform.js':
      return { headers: { 'content-type': 'application/javascript', 'cache-control': 'public, max-age=600, no-transform' }, body: JS };
    case '/data.json':
      return { headers: { 'content-type': 'application/problem+json', 'cache-control': 'public, max-age=600', etag: 'W/"j"' }, body: JS };
    default:
      return undefined;
  }
}

beforeAll(async () => {
  origin = await startOrigin(async (req, res) => {
    const url = req.url ?? '/';
    if (url === '/slow-gzipped.js') {
      // Slow enough for a second request to join the fill as a waiter; gzip only for a request that accepts it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const gzip = /gzip/.test(req.headers['accept-encoding'] ?? '');
      res.writeHead(200, { 'content-type': 'application/javascript', ...(gzip && { 'content-encoding': 'gzip' }), vary: 'Accept-Encoding', 'cache-control': 'public, max-age=600' });
      res.end(gzip ? gzipSync(GZ_BODY) : GZ_BODY);
      return;
    }
    if (url.startsWith('/always-gzipped.js')) {
      // An origin that compresses whatever it is asked (a bucket of pre-compressed objects), slowly enough for
      // waiters to join the fill.
      await new Promise((resolve) => setTimeout(resolve, 200));
      res.writeHead(200, { 'content-type': 'application/javascript', 'content-encoding': 'gzip', 'cache-control': 'public, max-age=600', etag: '"a1"' });
      res.end(gzipSync(GZ_BODY));
      return;
    }
    if (url === '/pre-gzipped.js') {
      // An origin that compresses itself (whatever it is asked: the test checks what it was asked too).
      res.writeHead(200, { 'content-type': 'application/javascript', 'content-encoding': 'gzip', vary: 'Accept-Encoding', 'cache-control': 'public, max-age=600', etag: '"g1"' });
      res.end(gzipSync(GZ_BODY));
      return;
    }
    const a = answer(url.split('?')[0] as string);
    if (a === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, a.headers);
    res.end(a.body);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
});

const get = (p: string, headers: Record<string, string> = {}): Promise<TestResponse> => request(`${proxy.url}${p}`, { headers });

function decoded(res: TestResponse): Buffer {
  const coding = res.headers['content-encoding'];
  if (coding === 'br') return brotliDecompressSync(res.body);
  if (coding === 'gzip') return gunzipSync(res.body);
  expect(coding).toBeUndefined();
  return res.body;
}

/** Fills the URL and waits for its compressed forms to be stored. */
async function fill(p: string, headers: Record<string, string> = {}): Promise<TestResponse> {
  const first = await get(p, headers);
  await proxy.edgecache.compressor.idle();
  return first;
}

describe('compression stored once', () => {
  it('serves each encoding, decoded byte-equal to the origin body, from one origin fetch', async () => {
    const miss = await fill('/app.js');
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.body.equals(JS)).toBe(true);
    expect(miss.headers.vary).toMatch(/accept-encoding/i);
    const br = await get('/app.js', { 'accept-encoding': 'gzip, deflate, br' });
    const gzip = await get('/app.js', { 'accept-encoding': 'gzip' });
    const identity = await get('/app.js');
    expect(br.headers['content-encoding']).toBe('br');
    expect(gzip.headers['content-encoding']).toBe('gzip');
    for (const res of [br, gzip, identity]) {
      expect(res.status).toBe(200);
      expect(res.headers['x-cache']).toBe('HIT');
      expect(res.headers.vary).toMatch(/accept-encoding/i);
      expect(Number(res.headers['content-length'])).toBe(res.body.length);
      expect(decoded(res).equals(JS)).toBe(true);
    }
    expect(br.body.length).toBeLessThan(gzip.body.length);
    expect(gzip.body.length).toBeLessThan(JS.length / 3);
    expect(origin.count('/app.js')).toBe(1);
    // A client without Accept-Encoding fetched it: the origin was asked for identity in so many words.
    expect(origin.requests.find((r) => r.url === '/app.js')?.headers['accept-encoding']).toBe('identity');
  });

  it('gives each form its own entity tag, and answers 304 to the tag of the form it serves', async () => {
    await fill('/app2.js');
    const br = await get('/app2.js', { 'accept-encoding': 'br' });
    const gzip = await get('/app2.js', { 'accept-encoding': 'gzip' });
    const identity = await get('/app2.js');
    expect(br.headers.etag).toBe('"v1-br"');
    expect(gzip.headers.etag).toBe('"v1-gzip"');
    expect(identity.headers.etag).toBe('"v1"');
    expect((await get('/app2.js', { 'accept-encoding': 'br', 'if-none-match': '"v1-br"' })).status).toBe(304);
    expect((await get('/app2.js', { 'accept-encoding': 'gzip', 'if-none-match': '"v1-gzip"' })).status).toBe(304);
    expect((await get('/app2.js', { 'if-none-match': '"v1"' })).status).toBe(304);
    // Another form's tag does not match the form served.
    const other = await get('/app2.js', { 'accept-encoding': 'gzip', 'if-none-match': '"v1-br"' });
    expect(other.status).toBe(200);
    expect(other.headers['content-encoding']).toBe('gzip');
    expect(origin.count('/app2.js')).toBe(1);
  });

  it('serves ranges of the form chosen, held to that form', async () => {
    await fill('/app3.js');
    const whole = await get('/app3.js', { 'accept-encoding': 'gzip' });
    const part = await get('/app3.js', { 'accept-encoding': 'gzip', range: 'bytes=10-99', 'if-range': '"v1-gzip"' });
    expect(part.status).toBe(206);
    expect(part.headers['content-encoding']).toBe('gzip');
    expect(part.headers['content-range']).toBe(`bytes 10-99/${whole.body.length}`);
    expect(part.body.equals(whole.body.subarray(10, 100))).toBe(true);
    // The identity form's tag in If-Range does not hold for the gzip form: the whole of it.
    const mismatched = await get('/app3.js', { 'accept-encoding': 'gzip', range: 'bytes=10-99', 'if-range': '"v1"' });
    expect(mismatched.status).toBe(200);
  });

  it('follows q-values, and never serves an encoding or identity the client refused', async () => {
    await fill('/app4.js');
    expect((await get('/app4.js', { 'accept-encoding': 'br;q=0.5, gzip;q=0.9' })).headers['content-encoding']).toBe('gzip');
    expect((await get('/app4.js', { 'accept-encoding': 'br;q=0, *' })).headers['content-encoding']).toBe('gzip');
    expect((await get('/app4.js', { 'accept-encoding': 'gzip;q=0.1, identity' })).headers['content-encoding']).toBeUndefined();
    const refused = await get('/app4.js', { 'accept-encoding': 'gzip, identity;q=0' });
    expect(refused.headers['content-encoding']).toBe('gzip');
    expect(decoded(refused).equals(JS)).toBe(true);
    const nothing = await get('/app4.js', { 'accept-encoding': 'zstd, identity;q=0' });
    expect(nothing.status).toBe(406);
    const star = await get('/app4.js', { 'accept-encoding': '*;q=0' });
    expect(star.status).toBe(406);
    expect(origin.count('/app4.js')).toBe(1);
  });

  it('leaves alone no-transform, bodies under --compress-min-size and types not in the list', async () => {
    for (const p of ['/no-transform.js', '/small.js', '/photo.png']) {
      await fill(p);
      const res = await get(p, { 'accept-encoding': 'br, gzip' });
      expect(res.headers['x-cache']).toBe('HIT');
      expect(res.headers['content-encoding']).toBeUndefined();
    }
    await fill('/data.json');
    const json = await get('/data.json', { 'accept-encoding': 'br' });
    expect(json.headers['content-encoding']).toBe('br');
    expect(json.headers.etag).toBe('W/"j-br"');
  });

  it('stores an origin-compressed body as sent and undoes it for a client without gzip, never fetching again', async () => {
    const first = await get('/pre-gzipped.js', { 'accept-encoding': 'gzip, br, zstd' });
    expect(first.headers['content-encoding']).toBe('gzip');
    // The origin was asked with the normalised value: only codings edgecache can undo.
    expect(origin.requests.find((r) => r.url === '/pre-gzipped.js')?.headers['accept-encoding']).toBe('br, gzip;q=0.9');
    const gz = await get('/pre-gzipped.js', { 'accept-encoding': 'gzip' });
    expect(gz.headers['x-cache']).toBe('HIT');
    expect(gunzipSync(gz.body).equals(GZ_BODY)).toBe(true);
    const plain = await get('/pre-gzipped.js');
    expect(plain.status).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers['content-length']).toBeUndefined();
    expect(plain.headers.etag).toBe('"g1-identity"');
    expect(plain.headers.vary).toMatch(/accept-encoding/i);
    expect(plain.body.equals(GZ_BODY)).toBe(true);
    expect((await get('/pre-gzipped.js', { 'if-none-match': '"g1-identity"' })).status).toBe(304);
    expect(origin.count('/pre-gzipped.js')).toBe(1);
  });

  it('decodes on the miss for the client whose request fetched a coding it refused, and for waiters, in one fetch', async () => {
    const p = '/always-gzipped.js?miss';
    const owner = get(p, { 'accept-encoding': 'identity' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const [identity, none, gzip] = await Promise.all([get(p, { 'accept-encoding': 'identity' }), get(p), get(p, { 'accept-encoding': 'gzip' })]);
    const first = await owner;
    expect(first.headers['x-cache']).toBe('MISS');
    for (const res of [first, identity, none]) {
      expect(res.status).toBe(200);
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.headers['content-length']).toBeUndefined();
      expect(res.headers.etag).toBe('"a1-identity"');
      expect(res.headers.vary).toMatch(/accept-encoding/i);
      expect(res.body.equals(GZ_BODY)).toBe(true);
    }
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gzip.body).equals(GZ_BODY)).toBe(true);
    expect(origin.count(p)).toBe(1);
    // Stored as sent: a HEAD says what a GET would send, a later identity GET is a decoded hit.
    const head = await request(`${proxy.url}${p}`, { method: 'HEAD', headers: { 'accept-encoding': 'identity' } });
    expect(head.headers['content-encoding']).toBeUndefined();
    const hit = await get(p, { 'accept-encoding': 'identity' });
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.body.equals(GZ_BODY)).toBe(true);
    expect(origin.count(p)).toBe(1);
  });

  it('decodes a HEAD on the miss the same way', async () => {
    const head = await request(`${proxy.url}/always-gzipped.js?head`, { method: 'HEAD', headers: { 'accept-encoding': 'identity' } });
    expect(head.status).toBe(200);
    expect(head.headers['content-encoding']).toBeUndefined();
    expect(head.headers['content-length']).toBeUndefined();
    expect(head.headers.etag).toBe('"a1-identity"');
  });

  it('never hands a collapsed waiter a coding it did not accept', async () => {
    const owner = get('/slow-gzipped.js', { 'accept-encoding': 'gzip' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const waiter = await get('/slow-gzipped.js');
    expect(waiter.headers['content-encoding']).toBeUndefined();
    expect(waiter.body.equals(GZ_BODY)).toBe(true);
    expect(gunzipSync((await owner).body).equals(GZ_BODY)).toBe(true);
  });
});

describe('compressed forms on the disk tier', () => {
  it('survive a restart', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-compress-'));
    try {
      let p = await startProxy(origin.url, { dataDir: dir });
      // One Host for both processes (the port, part of the key otherwise, changes with the restart).
      await request(`${p.url}/app.js?restart`, { headers: { host: 'assets.test' } });
      await p.edgecache.compressor.idle();
      await p.edgecache.store.flush();
      await p.close();
      const before = origin.count('/app.js?restart');
      p = await startProxy(origin.url, { dataDir: dir });
      try {
        for (const ae of ['br', 'gzip', '']) {
          const res = await request(`${p.url}/app.js?restart`, { headers: { host: 'assets.test', ...(ae && { 'accept-encoding': ae }) } });
          expect(res.headers['x-cache']).toBe('HIT');
          expect(res.headers['content-encoding']).toBe(ae || undefined);
          expect(decoded(res).equals(JS)).toBe(true);
        }
        expect(origin.count('/app.js?restart')).toBe(before);
      } finally {
        await p.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--compress off', () => {
  it('stores and serves bodies as the origin sent them', async () => {
    const p = await startProxy(origin.url, { compress: 'off' });
    try {
      await request(`${p.url}/app.js?off`);
      await p.edgecache.compressor.idle();
      expect(origin.requests.find((r) => r.url === '/app.js?off')?.headers['accept-encoding']).toBeUndefined();
      const res = await request(`${p.url}/app.js?off`, { headers: { 'accept-encoding': 'br, gzip' } });
      expect(res.headers['x-cache']).toBe('HIT');
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.body.equals(JS)).toBe(true);
    } finally {
      await p.close();
    }
  });
});
