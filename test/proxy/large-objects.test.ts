/**
 * Objects larger than the memory tier's per-object limit (an eighth of --memory-max with a disk tier): written to
 * the disk tier in chunks while they stream, visible once complete, served from disk in chunks; a late joiner
 * and a slow client read back from disk; chunks of a fill that never finished are removed.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

const MiB = 1024 * 1024;
const SIZE = 12 * MiB + 12345; // memory-max 16 MiB: limit 2 MiB (the floor is 1 MiB)

function block(seed: number): Buffer {
  return createHash('sha512').update(String(seed)).digest();
}
/** Deterministic body: sha512 blocks of the block index. */
function body(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i * 64 < size; i++) block(i).copy(out, i * 64);
  return out;
}
const BODY = body(SIZE);
/** The body as an origin that compresses itself sends it (hashes do not shrink: still far over the limit). */
const GZIPPED = gzipSync(BODY, { level: 1 });
const gates = new Map<string, () => void>();

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const headers: Record<string, string> = { 'content-type': 'video/mp4', 'cache-control': 'public, max-age=600', etag: '"big"' };
    if (url.pathname.startsWith('/text')) {
      // A compressible type (--compress is on by default): too large for memory, so stored as sent.
      headers['content-type'] = 'text/plain';
      if (url.pathname.startsWith('/text-chunked')) {
        res.writeHead(200, headers);
        for (let at = 0; at < SIZE; at += MiB) res.write(BODY.subarray(at, at + MiB));
        res.end();
        return;
      }
    }
    if (url.pathname.startsWith('/gzipped')) {
      res.writeHead(200, { ...headers, 'content-type': 'text/plain', 'content-encoding': 'gzip', vary: 'Accept-Encoding', 'content-length': String(GZIPPED.length) });
      res.end(GZIPPED);
      return;
    }
    if (url.pathname.startsWith('/chunked')) {
      res.writeHead(200, headers);
      for (let at = 0; at < SIZE; at += MiB) res.write(BODY.subarray(at, at + MiB));
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': String(SIZE) });
    if (url.pathname.startsWith('/slow')) {
      res.write(BODY.subarray(0, 5 * MiB));
      gates.set(url.pathname, () => res.end(BODY.subarray(5 * MiB)));
      return;
    }
    res.end(BODY);
  });
  proxy = await startProxy(origin.url, { memoryMax: 16 * MiB, maxObjectSize: 64 * MiB });
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('an object larger than the memory tier takes', () => {
  it('is stored on disk while it streams, served from disk (full and ranges), never in memory', async () => {
    const miss = await request(`${proxy.url}/big`);
    expect([miss.status, miss.headers['x-cache'], sha(miss.body)]).toEqual([200, 'MISS', sha(BODY)]);
    await proxy.edgecache.pipeline.idle();
    await proxy.edgecache.store.flush();
    const [memory, disk] = proxy.edgecache.store.stats();
    expect(memory?.entries).toBe(0);
    expect(disk?.entries).toBe(1);
    const hit = await request(`${proxy.url}/big`);
    expect([hit.status, hit.headers['x-cache'], sha(hit.body)]).toEqual([200, 'HIT', sha(BODY)]);
    const range = await request(`${proxy.url}/big`, { headers: { range: `bytes=${SIZE - 100}-` } });
    expect([range.status, range.headers['x-cache']]).toEqual([206, 'HIT']);
    expect(range.body.equals(BODY.subarray(SIZE - 100))).toBe(true);
    expect(proxy.edgecache.store.stats()[0]?.entries).toBe(0);
    expect(origin.count('/big')).toBe(1);
  });

  it('a body of unknown length goes to disk once it outgrows the limit', async () => {
    const miss = await request(`${proxy.url}/chunked`);
    expect(sha(miss.body)).toBe(sha(BODY));
    await proxy.edgecache.pipeline.idle();
    const hit = await request(`${proxy.url}/chunked`, { headers: { range: 'bytes=3000000-3000099' } });
    expect([hit.status, hit.headers['x-cache']]).toEqual([206, 'HIT']);
    expect(hit.body.equals(BODY.subarray(3_000_000, 3_000_100))).toBe(true);
  });

  it('late joiners read what went by back from disk; a client that does not read does not hold the fill back', async () => {
    const first = request(`${proxy.url}/slow/a`);
    while (!gates.has('/slow/a')) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 100));
    // A client that reads nothing: its socket fills, and the fill must go on without it.
    const stalled = http.get(`${proxy.url}/slow/a`, { agent: false }, (res) => res.pause());
    const late = request(`${proxy.url}/slow/a`, { headers: { range: `bytes=100-${4 * MiB}` } });
    await new Promise((r) => setTimeout(r, 100));
    gates.get('/slow/a')?.();
    const [a, b] = await Promise.all([first, late]);
    expect(sha(a.body)).toBe(sha(BODY));
    expect(b.status).toBe(206);
    expect(b.body.equals(BODY.subarray(100, 4 * MiB + 1))).toBe(true);
    await proxy.edgecache.pipeline.idle();
    expect((await request(`${proxy.url}/slow/a`)).headers['x-cache']).toBe('HIT');
    stalled.destroy();
    expect(origin.count('/slow/a')).toBe(1);
  });

  it('a compressible one is stored and served as sent, never compressed (known length or not)', async () => {
    for (const p of ['/text', '/text-chunked']) {
      const miss = await request(`${proxy.url}${p}`, { headers: { 'accept-encoding': 'br, gzip' } });
      expect([miss.status, miss.headers['content-encoding'], sha(miss.body)]).toEqual([200, undefined, sha(BODY)]);
      await proxy.edgecache.pipeline.idle();
      await proxy.edgecache.compressor.idle();
      const hit = await request(`${proxy.url}${p}`, { headers: { 'accept-encoding': 'br, gzip' } });
      expect([hit.status, hit.headers['x-cache'], hit.headers['content-encoding'], sha(hit.body)]).toEqual([200, 'HIT', undefined, sha(BODY)]);
      // One form only: the stored response does not vary on Accept-Encoding.
      expect(hit.headers.vary).toBeUndefined();
      expect(origin.count(p)).toBe(1);
    }
    expect(proxy.edgecache.store.stats()[0]?.entries).toBe(0);
    expect(proxy.edgecache.compressor.stats.compressed).toEqual({ br: 0, gzip: 0 });
  });

  it('an origin-compressed one is stored as sent and decoded on the fly, from disk, for a client that refuses its coding', async () => {
    const miss = await request(`${proxy.url}/gzipped`, { headers: { 'accept-encoding': 'gzip' } });
    expect([miss.status, miss.headers['content-encoding'], sha(miss.body)]).toEqual([200, 'gzip', sha(GZIPPED)]);
    await proxy.edgecache.pipeline.idle();
    await proxy.edgecache.store.flush();
    expect(proxy.edgecache.store.stats()[0]?.entries).toBe(0);
    const gzip = await request(`${proxy.url}/gzipped`, { headers: { 'accept-encoding': 'gzip' } });
    expect([gzip.headers['x-cache'], gzip.headers['content-encoding'], gzip.headers['content-length'], sha(gzip.body)]).toEqual(['HIT', 'gzip', String(GZIPPED.length), sha(GZIPPED)]);
    const plain = await request(`${proxy.url}/gzipped`);
    expect([plain.status, plain.headers['x-cache'], plain.headers['content-encoding'], plain.headers['content-length']]).toEqual([200, 'HIT', undefined, undefined]);
    expect(plain.headers.etag).toBe('"big-identity"');
    expect(sha(plain.body)).toBe(sha(BODY));
    expect(gunzipSync(gzip.body).equals(plain.body)).toBe(true);
    expect(origin.count('/gzipped')).toBe(1);
  });
});
