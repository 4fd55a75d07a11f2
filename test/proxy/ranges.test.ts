/**
 * Range requests end to end (RFC 9110 §14): a Range on a miss fills the whole object once (collapsed with the
 * other requests for it) and is answered 206 from the bytes as they arrive; hits from memory and from the disk
 * tier after a restart; If-Range, suffix ranges, 416, several ranges as multipart/byteranges; an origin that
 * answers 206 itself. Every range is compared byte for byte with the origin's body.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, type TestResponse } from '../helpers/http.js';

/** Deterministic bytes that differ at every offset (a range taken from the wrong place shows). */
function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const SIZE = 1_000_000; // several disk chunks (256 KiB) and more than one socket read
const BODY = bytes(SIZE, 7);
const LAST_MODIFIED = 'Tue, 02 Jan 2024 00:00:00 GMT';

/** Releases the bodies of /slow/* requests held back by the origin (see the handler). */
const gates = new Map<string, () => void>();

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'cache-control': 'public, max-age=600',
      etag: '"v1"',
      'last-modified': LAST_MODIFIED,
    };
    if (url.pathname.startsWith('/always-206')) {
      res.writeHead(206, { ...headers, 'content-range': `bytes 0-9/${SIZE}`, 'content-length': '10' });
      res.end(BODY.subarray(0, 10));
      return;
    }
    if (url.pathname.startsWith('/chunked-long')) {
      res.writeHead(200, headers);
      res.write(BODY);
      res.end(BODY);
      return;
    }
    if (url.pathname.startsWith('/chunked')) {
      res.writeHead(200, headers);
      res.write(BODY.subarray(0, 1000));
      res.end(BODY.subarray(1000, 5000));
      return;
    }
    if (url.pathname.startsWith('/private')) {
      res.writeHead(200, { ...headers, 'cache-control': 'private', 'content-length': String(SIZE) });
      res.end(BODY);
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': String(SIZE) });
    if (url.pathname.startsWith('/slow')) {
      // Half the body now, the rest when the test opens the gate: requests arriving meanwhile join the fill.
      res.write(BODY.subarray(0, SIZE / 2));
      gates.set(url.pathname, () => res.end(BODY.subarray(SIZE / 2)));
      return;
    }
    res.end(BODY);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const get = (p: string, headers: Record<string, string> = {}, on = proxy): Promise<TestResponse> => request(`${on.url}${p}`, { headers });

function expectRange(res: TestResponse, start: number, end: number): void {
  expect(res.status).toBe(206);
  expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/${SIZE}`);
  expect(res.headers['content-length']).toBe(String(end - start + 1));
  expect(res.body.equals(BODY.subarray(start, end + 1))).toBe(true);
}

/** The parts of a multipart/byteranges body: each part's fields and bytes. */
function multipart(res: TestResponse): Array<{ type: string | undefined; range: string; body: Buffer }> {
  const match = /^multipart\/byteranges; boundary=(\S+)$/.exec(String(res.headers['content-type']));
  expect(match).not.toBeNull();
  const boundary = Buffer.from(`\r\n--${(match as RegExpExecArray)[1]}`);
  expect(res.body.length).toBe(Number(res.headers['content-length']));
  const parts: Array<{ type: string | undefined; range: string; body: Buffer }> = [];
  let at = res.body.indexOf(boundary);
  expect(at).toBe(0);
  for (;;) {
    at += boundary.length;
    if (res.body.subarray(at, at + 2).toString() === '--') break;
    const headEnd = res.body.indexOf('\r\n\r\n', at);
    const fields = res.body.subarray(at + 2, headEnd).toString().split('\r\n');
    const next = res.body.indexOf(boundary, headEnd + 4);
    const field = (name: string): string | undefined => fields.find((f) => f.toLowerCase().startsWith(`${name}: `))?.slice(name.length + 2);
    parts.push({ type: field('content-type'), range: field('content-range') as string, body: res.body.subarray(headEnd + 4, next) });
    at = next;
  }
  return parts;
}

describe('a Range on a miss', () => {
  it('fetches the whole object once, without Range, answers 206 and stores it; later ranges are hits', async () => {
    const first = await get('/a', { range: 'bytes=100-199' });
    expectRange(first, 100, 199);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['cache-status']).toBe('edgecache; fwd=uri-miss; fwd-status=200; stored');
    expect(origin.count('/a')).toBe(1);
    const sent = origin.requests.find((r) => r.url === '/a');
    expect(sent?.headers.range).toBeUndefined();
    await proxy.edgecache.pipeline.idle();
    // Start, middle, end, suffix, open-ended: all from the cache now.
    for (const [range, start, end] of [
      ['bytes=0-0', 0, 0],
      ['bytes=400000-600123', 400_000, 600_123],
      ['bytes=999990-999999', 999_990, 999_999],
      ['bytes=-10', SIZE - 10, SIZE - 1],
      ['bytes=999000-', 999_000, SIZE - 1],
      ['bytes=10-99999999', 10, SIZE - 1],
    ] as const) {
      const hit = await get('/a', { range });
      expectRange(hit, start, end);
      expect(hit.headers['x-cache'], range).toBe('HIT');
    }
    const full = await get('/a');
    expect(full.status).toBe(200);
    expect(full.body.equals(BODY)).toBe(true);
    expect(origin.count('/a')).toBe(1);
  });

  it('answers ranges at the start, middle and end of a miss, each from the bytes as they arrive', async () => {
    for (const [name, start, end] of [
      ['/start', 0, 9],
      ['/middle', 499_000, 501_000],
      ['/end', SIZE - 1, SIZE - 1],
    ] as const) {
      const res = await get(name, { range: `bytes=${start}-${end}` });
      expectRange(res, start, end);
      expect(res.headers['x-cache']).toBe('MISS');
    }
  });

  it('collapses concurrent range misses into one origin fetch, each answered its own range', async () => {
    const wanted = [
      [0, 99],
      [SIZE / 2 - 50, SIZE / 2 + 50],
      [SIZE - 100, SIZE - 1],
    ] as const;
    const pending = wanted.map(([start, end]) => get('/slow/c', { range: `bytes=${start}-${end}` }));
    pending.push(get('/slow/c'));
    // Wait for the origin to have answered the fill's headers and half its body, then let the rest go.
    while (!gates.has('/slow/c')) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    gates.get('/slow/c')?.();
    const answers = await Promise.all(pending);
    wanted.forEach(([start, end], i) => expectRange(answers[i] as TestResponse, start, end));
    expect((answers[3] as TestResponse).status).toBe(200);
    expect((answers[3] as TestResponse).body.equals(BODY)).toBe(true);
    expect(origin.count('/slow/c')).toBe(1);
    expect(answers.filter((a) => a.headers['cache-status']?.toString().includes('collapsed')).length).toBe(3);
  });

  it('416 when no range is satisfiable, with the length, on a miss and on a hit', async () => {
    for (const xcache of ['MISS', 'HIT']) {
      const res = await get('/unsat', { range: `bytes=${SIZE}-` });
      expect(res.status).toBe(416);
      expect(res.headers['content-range']).toBe(`bytes */${SIZE}`);
      expect(res.body.length).toBe(0);
      expect(res.headers['x-cache']).toBe(xcache);
      await proxy.edgecache.pipeline.idle();
    }
    expect(origin.count('/unsat')).toBe(1);
    expect((await get('/unsat', { range: 'bytes=-0' })).status).toBe(416);
  });

  it('If-Range: a matching strong ETag or date gets the range; anything else the whole 200, on a miss and a hit', async () => {
    const mismatch = await get('/ifr', { range: 'bytes=0-9', 'if-range': '"v0"' });
    expect(mismatch.status).toBe(200);
    expect(mismatch.body.equals(BODY)).toBe(true);
    await proxy.edgecache.pipeline.idle();
    expectRange(await get('/ifr', { range: 'bytes=0-9', 'if-range': '"v1"' }), 0, 9);
    expect((await get('/ifr', { range: 'bytes=0-9', 'if-range': 'W/"v1"' })).status).toBe(200);
    expect((await get('/ifr', { range: 'bytes=0-9', 'if-range': '"v0"' })).status).toBe(200);
    // Last-Modified is a strong validator here (long before Date): the date matches.
    expectRange(await get('/ifr', { range: 'bytes=5-9', 'if-range': LAST_MODIFIED }), 5, 9);
    expect((await get('/ifr', { range: 'bytes=5-9', 'if-range': 'Wed, 03 Jan 2024 00:00:00 GMT' })).status).toBe(200);
    const onMiss = await get('/ifr-miss', { range: 'bytes=0-9', 'if-range': '"v1"' });
    expectRange(onMiss, 0, 9);
    expect(origin.requests.find((r) => r.url === '/ifr-miss')?.headers['if-range']).toBeUndefined();
  });

  it('several ranges: multipart/byteranges, sorted and merged, on a miss and on a hit', async () => {
    for (const xcache of ['MISS', 'HIT']) {
      const res = await get('/multi', { range: 'bytes=500000-500009, 0-4, 3-9, -5' });
      expect(res.status).toBe(206);
      expect(res.headers['x-cache']).toBe(xcache);
      expect(res.headers['content-range']).toBeUndefined();
      const parts = multipart(res);
      expect(parts.map((p) => p.range)).toEqual(['bytes 0-9/1000000', 'bytes 500000-500009/1000000', 'bytes 999995-999999/1000000']);
      expect(parts.every((p) => p.type === 'application/octet-stream')).toBe(true);
      expect(parts[0]?.body.equals(BODY.subarray(0, 10))).toBe(true);
      expect(parts[1]?.body.equals(BODY.subarray(500_000, 500_010))).toBe(true);
      expect(parts[2]?.body.equals(BODY.subarray(SIZE - 5))).toBe(true);
      await proxy.edgecache.pipeline.idle();
    }
    expect(origin.count('/multi')).toBe(1);
  });

  it('ignores Range on HEAD and for a malformed header: the whole response', async () => {
    const head = await request(`${proxy.url}/a`, { method: 'HEAD', headers: { range: 'bytes=0-9' } });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(SIZE));
    for (const range of ['bytes=9-3', 'items=0-1', 'bytes=x-y']) {
      const res = await get('/a', { range });
      expect(res.status, range).toBe(200);
      expect(res.body.length).toBe(SIZE);
    }
  });

  it('a response of unknown length (chunked): held to its end, then 206; past 1 MiB it goes out whole', async () => {
    const first = await get('/chunked', { range: 'bytes=0-9, 4990-' });
    expect(first.headers['x-cache']).toBe('MISS');
    const parts = multipart(first);
    expect(parts.map((p) => p.range)).toEqual(['bytes 0-9/5000', 'bytes 4990-4999/5000']);
    expect(Buffer.concat(parts.map((p) => p.body)).equals(Buffer.concat([BODY.subarray(0, 10), BODY.subarray(4990, 5000)]))).toBe(true);
    expect((await get('/chunked-2', { range: 'bytes=5000-' })).status).toBe(416);
    const one = await get('/chunked-3', { range: 'bytes=10-19' });
    expect([one.status, one.headers['content-range'], one.headers['content-length']]).toEqual([206, 'bytes 10-19/5000', '10']);
    expect(one.body.equals(BODY.subarray(10, 20))).toBe(true);
    const long = await get('/chunked-long', { range: 'bytes=10-19' });
    expect(long.status).toBe(200);
    expect(long.body.equals(Buffer.concat([BODY, BODY]))).toBe(true);
    await proxy.edgecache.pipeline.idle();
    const hit = await get('/chunked-long', { range: `bytes=${SIZE + 10}-${SIZE + 19}` });
    expect([hit.status, hit.headers['content-range'], hit.headers['x-cache']]).toEqual([206, `bytes ${SIZE + 10}-${SIZE + 19}/${2 * SIZE}`, 'HIT']);
    expect(hit.body.equals(BODY.subarray(10, 20))).toBe(true);
  });

  it('an origin that answers 206 itself: relayed as it is, not stored as the whole', async () => {
    const res = await get('/always-206', { range: 'bytes=0-9' });
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes 0-9/${SIZE}`);
    expect(res.body.equals(BODY.subarray(0, 10))).toBe(true);
    await proxy.edgecache.pipeline.idle();
    const again = await get('/always-206');
    expect(again.headers['x-cache']).toBe('MISS');
  });

  it('a URL whose answer cannot be stored: the range is cut from the response, and then forwarded as a Range', async () => {
    const first = await get('/private', { range: 'bytes=10-19' });
    expectRange(first, 10, 19);
    await proxy.edgecache.pipeline.idle();
    // Hit-for-miss now knows the URL: the Range goes to the origin (which ignores it here), relayed as BYPASS.
    const second = await get('/private', { range: 'bytes=10-19' });
    expect(second.headers['x-cache']).toBe('BYPASS');
    expect(origin.requests.filter((r) => r.url === '/private').at(-1)?.headers.range).toBe('bytes=10-19');
    expect(second.status).toBe(200);
  });
});

describe('ranges from the disk tier', () => {
  it('are byte-equal across a restart (start, middle, end, multipart), read from the stored chunks', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-ranges-'));
    try {
      // (The cache key holds the Host, which names the proxy's port unless the client sends its own.)
      const host = { host: 'ranges.test' };
      let disk = await startProxy(origin.url, { dataDir });
      expect((await get('/disk', host, disk)).body.equals(BODY)).toBe(true);
      await disk.edgecache.pipeline.idle();
      await disk.close();
      disk = await startProxy(origin.url, { dataDir });
      try {
        for (const [start, end] of [
          [0, 99],
          [262_100, 262_200], // across a chunk boundary
          [SIZE - 1000, SIZE - 1],
        ] as const) {
          const res = await get('/disk', { ...host, range: `bytes=${start}-${end}` }, disk);
          expectRange(res, start, end);
          expect(res.headers['x-cache'], String(res.headers['cache-status'])).toBe('HIT');
        }
        const parts = multipart(await get('/disk', { ...host, range: 'bytes=0-1,600000-600001' }, disk));
        expect(parts.map((p) => p.body.toString('hex'))).toEqual([BODY.subarray(0, 2).toString('hex'), BODY.subarray(600_000, 600_002).toString('hex')]);
        expect(origin.count('/disk')).toBe(1);
      } finally {
        await disk.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
