/**
 * Sliced fills (--slice-size): a large object is asked for in slices with Range, each stored as a record of its
 * own. A real origin on loopback honours Range and If-Range (or ignores them, per path) and records every request
 * with its Range; bodies are compared byte for byte.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';
import { h2Close, h2Connect, h2Request } from '../helpers/tls.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SLICE = 256 * KiB;
const SIZE = 3 * MiB + 12_345; // 13 slices, the last one short
const SLICES = Math.ceil(SIZE / SLICE);
const TOKEN = 'slices-token';

/** Deterministic bytes: sha512 blocks of (seed, block index). */
function body(size: number, seed: string): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i * 64 < size; i++) createHash('sha512').update(`${seed}:${i}`).digest().copy(out, i * 64);
  return out;
}

/** The version of each path's object (bumped by a test to change it under the cache). */
const versions = new Map<string, number>();
const made = new Map<string, Buffer>();
const objectOf = (path: string): { bytes: Buffer; etag: string } => {
  const v = versions.get(path) ?? 1;
  const seed = `${path}#${v}`;
  let bytes = made.get(seed);
  if (bytes === undefined) made.set(seed, (bytes = body(path.startsWith('/small') ? 100 * KiB : SIZE, seed)));
  return { bytes, etag: `"${path.length}-${v}"` };
};

/** Paths the origin answers with 503. */
const down = new Set<string>();
/** Paths whose slices from the fourth on break off halfway (and whose first slice fails, for /…first…). */
const breaking = new Set<string>();

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const { bytes, etag } = objectOf(path);
    if (path.includes('slow')) await new Promise((r) => setTimeout(r, 100));
    const headers: Record<string, string> = { 'content-type': path.startsWith('/text') ? 'text/plain' : 'video/mp4', 'cache-control': 'public, max-age=600, stale-if-error=6000' };
    if (!path.startsWith('/noetag')) headers.etag = etag;
    if (down.has(path)) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down');
      return;
    }
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
    const ifRange = req.headers['if-range'];
    // /ignores: Range is not understood; a changed object (If-Range no longer matching) comes back whole.
    if (range === null || path.startsWith('/ignores') || (ifRange !== undefined && ifRange !== etag)) {
      res.writeHead(200, { ...headers, 'content-length': String(bytes.length) });
      res.end(bytes);
      return;
    }
    const start = Number(range[1]);
    const end = Math.min(Number(range[2]), bytes.length - 1);
    if (breaking.has(path) && start >= 3 * SLICE) {
      // Half the slice, then the connection drops.
      res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${bytes.length}`, 'content-length': String(end - start + 1) });
      res.write(bytes.subarray(start, start + (end - start + 1) / 2));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    if (breaking.has(path) && path.includes('first')) {
      res.destroy();
      return;
    }
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${bytes.length}`, 'content-length': String(end - start + 1) });
    res.end(bytes.subarray(start, end + 1));
  });
  proxy = await startProxy(origin.url, { sliceSize: SLICE, adminToken: TOKEN });
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** The Range header of each origin request for a path, in order. */
const ranges = (path: string): string[] => origin.requests.filter((r) => r.url === path).map((r) => String(r.headers.range ?? 'none'));
const sliceRange = (i: number): string => `bytes=${i * SLICE}-${Math.min((i + 1) * SLICE, SIZE) - 1}`;

async function adminPurge(selector: unknown): Promise<void> {
  const res = await request(`${proxy.adminUrl}/purge`, {
    method: 'POST',
    body: JSON.stringify(selector),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
  });
  expect(res.status).toBe(200);
}

describe('a large object filled in slices', () => {
  it('a Range near the end of a cold object costs the first and the last slice, not the whole object', async () => {
    const path = '/obj/seek';
    const { bytes } = objectOf(path);
    const res = await request(`${proxy.url}${path}`, { headers: { range: `bytes=${SIZE - 1000}-${SIZE - 1}` } });
    expect([res.status, res.headers['content-range'], res.headers['x-cache']]).toEqual([206, `bytes ${SIZE - 1000}-${SIZE - 1}/${SIZE}`, 'MISS']);
    expect(res.body.equals(bytes.subarray(SIZE - 1000))).toBe(true);
    expect(ranges(path)).toEqual([sliceRange(0), sliceRange(SLICES - 1)]);
    // Later slices are asked for with If-Range, so that a changed object comes back whole.
    expect(origin.requests.filter((r) => r.url === path).at(-1)?.headers['if-range']).toBe(objectOf(path).etag);

    // A full GET fetches only the missing slices, in order, and the whole body is the origin's.
    const full = await request(`${proxy.url}${path}`);
    expect([full.status, full.headers['content-length'], full.headers['x-cache'], full.headers['content-range']]).toEqual([200, String(SIZE), 'MISS', undefined]);
    expect(sha(full.body)).toBe(sha(bytes));
    expect(ranges(path).slice(2)).toEqual(Array.from({ length: SLICES - 2 }, (_, i) => sliceRange(i + 1)));

    // Then everything is stored: a HIT without an origin request, full or ranges (several, across slices).
    const before = origin.count(path);
    const hit = await request(`${proxy.url}${path}`);
    expect([hit.status, hit.headers['x-cache'], sha(hit.body)]).toEqual([200, 'HIT', sha(bytes)]);
    const across = await request(`${proxy.url}${path}`, { headers: { range: `bytes=${SLICE - 10}-${SLICE + 9}` } });
    expect([across.status, across.headers['x-cache']]).toEqual([206, 'HIT']);
    expect(across.body.equals(bytes.subarray(SLICE - 10, SLICE + 10))).toBe(true);
    const multi = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=0-9,-10' } });
    expect(multi.status).toBe(206);
    expect(String(multi.headers['content-type'])).toMatch(/^multipart\/byteranges; boundary=/);
    expect(multi.body.includes(bytes.subarray(SIZE - 10))).toBe(true);
    const unsatisfiable = await request(`${proxy.url}${path}`, { headers: { range: `bytes=${SIZE}-` } });
    expect([unsatisfiable.status, unsatisfiable.headers['content-range']]).toEqual([416, `bytes */${SIZE}`]);
    const notModified = await request(`${proxy.url}${path}`, { headers: { 'if-none-match': objectOf(path).etag } });
    expect(notModified.status).toBe(304);
    const head = await request(`${proxy.url}${path}`, { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([200, String(SIZE), 0]);
    expect(origin.count(path)).toBe(before);
  });

  it('only-if-cached is answered from the stored slices when they hold every byte it needs, else 504, never from the origin', async () => {
    const path = '/obj/cached-only';
    const { bytes } = objectOf(path);
    const cachedOnly = (range?: string) => request(`${proxy.url}${path}`, { headers: { 'cache-control': 'only-if-cached', ...(range && { range }) } });
    expect((await cachedOnly()).status).toBe(504);
    expect(origin.count(path)).toBe(0);
    // The first and the last slice are stored now.
    await request(`${proxy.url}${path}`, { headers: { range: `bytes=${SIZE - 100}-` } });
    const fetched = origin.count(path);
    const last = await cachedOnly(`bytes=${SIZE - 50}-`);
    expect([last.status, last.headers['x-cache'], last.body.equals(bytes.subarray(SIZE - 50))]).toEqual([206, 'HIT', true]);
    const head = await request(`${proxy.url}${path}`, { method: 'HEAD', headers: { 'cache-control': 'only-if-cached' } });
    expect([head.status, head.headers['content-length']]).toEqual([200, String(SIZE)]);
    // A range in a slice not stored, and the whole object: 504.
    const [middle, whole] = [await cachedOnly(`bytes=${SLICE * 5}-${SLICE * 5 + 9}`), await cachedOnly()];
    expect([middle.status, whole.status, whole.headers['cache-status']]).toEqual([504, 504, 'edgecache; detail=only-if-cached']);
    expect(origin.count(path)).toBe(fetched);
    // Once every slice is stored, the whole object too.
    await request(`${proxy.url}${path}`);
    const all = await cachedOnly();
    expect([all.status, all.headers['x-cache'], sha(all.body)]).toEqual([200, 'HIT', sha(bytes)]);
  });

  it('concurrent requests for one cold slice make one origin request for it', async () => {
    const path = '/slow/concurrent';
    const { bytes } = objectOf(path);
    const all = await Promise.all(Array.from({ length: 6 }, () => request(`${proxy.url}${path}`, { headers: { range: `bytes=-5000` } })));
    for (const res of all) expect([res.status, res.body.equals(bytes.subarray(SIZE - 5000))]).toEqual([206, true]);
    expect(ranges(path)).toEqual([sliceRange(0), sliceRange(SLICES - 1)]);
  });

  it('an object no larger than one slice is stored whole, as without slicing', async () => {
    const path = '/small/one';
    const { bytes } = objectOf(path);
    const miss = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=10-19' } });
    expect([miss.status, miss.body.equals(bytes.subarray(10, 20))]).toEqual([206, true]);
    const hit = await request(`${proxy.url}${path}`);
    expect([hit.status, hit.headers['x-cache'], hit.headers['content-range'], sha(hit.body)]).toEqual([200, 'HIT', undefined, sha(bytes)]);
    expect(origin.count(path)).toBe(1);
  });

  it('an origin that ignores Range gets the whole-object fill, from the one answer it gave', async () => {
    const path = '/ignores/range';
    const { bytes } = objectOf(path);
    const miss = await request(`${proxy.url}${path}`, { headers: { range: `bytes=${SIZE - 100}-` } });
    expect([miss.status, miss.headers['x-cache'], miss.body.equals(bytes.subarray(SIZE - 100))]).toEqual([206, 'MISS', true]);
    const hit = await request(`${proxy.url}${path}`);
    expect([hit.status, hit.headers['x-cache'], sha(hit.body)]).toEqual([200, 'HIT', sha(bytes)]);
    expect(ranges(path)).toEqual([sliceRange(0)]);

    // Concurrent requests share that one answer: one origin request for all of them.
    const slow = '/ignores/slow';
    const all = await Promise.all(Array.from({ length: 5 }, (_, i) => request(`${proxy.url}${slow}`, { headers: i % 2 ? { range: 'bytes=-10' } : {} })));
    for (const [i, res] of all.entries()) expect(sha(res.body)).toBe(sha(i % 2 ? objectOf(slow).bytes.subarray(SIZE - 10) : objectOf(slow).bytes));
    expect(ranges(slow)).toEqual([sliceRange(0)]);
  });

  it('a first slice without a strong validator is not sliced: the object is fetched whole', async () => {
    const path = '/noetag/object';
    const { bytes } = objectOf(path);
    const miss = await request(`${proxy.url}${path}`);
    expect([miss.status, sha(miss.body)]).toEqual([200, sha(bytes)]);
    expect(ranges(path)).toEqual([sliceRange(0), 'none']);
    const hit = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    expect([hit.status, hit.headers['x-cache'], hit.body.equals(bytes.subarray(SIZE - 10))]).toEqual([206, 'HIT', true]);
    expect(origin.count(path)).toBe(2);
  });
});

describe('the first slice', () => {
  it('gives the object its freshness: once it is stale it is revalidated, and the other slices stay while its validator is the same', async () => {
    const path = '/obj/stale';
    const { bytes, etag } = objectOf(path);
    await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    proxy.advance(601_000);
    const before = origin.count(path);
    const res = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    expect([res.status, res.headers['x-cache'], res.body.equals(bytes.subarray(SIZE - 10))]).toEqual([206, 'REVALIDATED', true]);
    // One conditional request for the first slice (a 304), none for the last.
    expect(ranges(path).slice(before)).toEqual([sliceRange(0)]);
    expect(origin.requests.at(-1)?.headers['if-none-match']).toBe(etag);
    const hit = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(origin.count(path)).toBe(before + 1);
  });

  it('stale, stands in for an origin that fails (stale-if-error), with the slices of its validator', async () => {
    const path = '/obj/stale-if-error';
    const { bytes } = objectOf(path);
    await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    proxy.advance(601_000);
    down.add(path);
    try {
      const res = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
      expect([res.status, res.headers['x-cache'], res.body.equals(bytes.subarray(SIZE - 10))]).toEqual([206, 'STALE', true]);
      // A slice that is not stored cannot be had: 502, never bytes of another version.
      const missing = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=300000-300009' } });
      expect(missing.status).toBe(502);
    } finally {
      down.delete(path);
    }
  });

  it('of a compressible type is not sliced (compressed forms are made of whole objects)', async () => {
    const path = '/text/file';
    const { bytes } = objectOf(path);
    const miss = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10', 'accept-encoding': 'identity' } });
    expect([miss.status, miss.body.equals(bytes.subarray(SIZE - 10))]).toEqual([206, true]);
    expect(ranges(path)).toEqual([sliceRange(0), 'none']);
    // Not tried in slices again for a while: after a purge, straight to the whole object.
    await adminPurge({ urls: [path] });
    await request(`${proxy.url}${path}`, { headers: { 'accept-encoding': 'identity' } });
    expect(ranges(path)).toEqual([sliceRange(0), 'none', 'none']);
  });
});

describe('an object that changes between slices', () => {
  it('is never spliced: a response under way is aborted, the stored slices are dropped, the next one is all new', async () => {
    const path = '/changing/full';
    const old = objectOf(path).bytes;
    await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    versions.set(path, 2);
    const fresh = objectOf(path).bytes;
    // The first slice (stored, old) went out with the headers; slice 1 comes back as a 200 of the new object.
    const spliced = await request(`${proxy.url}${path}`).then(
      (res) => res.body,
      () => undefined,
    );
    if (spliced !== undefined) expect(sha(spliced)).toBe(sha(old)); // only a whole old body would do (it cannot be)
    expect(spliced).toBeUndefined();
    const before = origin.count(path);
    const full = await request(`${proxy.url}${path}`);
    expect([full.status, sha(full.body)]).toEqual([200, sha(fresh)]);
    // Every slice was fetched again: none of the old ones was kept.
    expect(origin.count(path) - before).toBe(SLICES);
    const hit = await request(`${proxy.url}${path}`);
    expect([hit.headers['x-cache'], sha(hit.body)]).toEqual(['HIT', sha(fresh)]);
  });

  it('starts the response again when none of it was sent yet', async () => {
    const path = '/changing/range';
    await request(`${proxy.url}${path}`, { headers: { range: 'bytes=0-9' } });
    versions.set(path, 2);
    const fresh = objectOf(path).bytes;
    // Slice 1 is the first this range needs: its 200 says the object changed before anything went out.
    const res = await request(`${proxy.url}${path}`, { headers: { range: `bytes=${SLICE + 5}-${SLICE + 104}` } });
    expect([res.status, res.body.equals(fresh.subarray(SLICE + 5, SLICE + 105))]).toEqual([206, true]);
    const start = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=0-9' } });
    expect(start.body.equals(fresh.subarray(0, 10))).toBe(true);
  });
});

describe('an origin that fails', () => {
  it('mid-response: the client is aborted, the broken slice is not stored, the next request completes the object', async () => {
    const path = '/obj/breaks';
    const { bytes } = objectOf(path);
    breaking.add(path);
    const broken = await request(`${proxy.url}${path}`).then(
      () => 'complete',
      () => 'aborted',
    );
    expect(broken).toBe('aborted');
    breaking.delete(path);
    const before = origin.count(path);
    const full = await request(`${proxy.url}${path}`);
    expect([full.status, sha(full.body)]).toEqual([200, sha(bytes)]);
    // Slices 0-2 were stored; the broken one and those after it were not.
    expect(ranges(path).slice(before)).toEqual(Array.from({ length: SLICES - 3 }, (_, i) => sliceRange(i + 3)));
  });

  it('before anything was sent: 502, nothing stored', async () => {
    const path = '/obj/first-fails';
    breaking.add(path);
    const res = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    expect(res.status).toBe(502);
    breaking.delete(path);
    const again = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    expect([again.status, again.body.equals(objectOf(path).bytes.subarray(SIZE - 10))]).toEqual([206, true]);
  });
});

describe('purges reach the slices', () => {
  it('a URL purge and a prefix purge remove them: the next request goes to the origin', async () => {
    const path = '/obj/purged';
    await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    expect((await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } })).headers['x-cache']).toBe('HIT');
    let before = origin.count(path);
    // An absolute URL: the URL's own entries, and what is kept beside them (found by the URL's tag).
    await adminPurge({ urls: [`${proxy.url}${path}`] });
    const afterUrl = await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } });
    expect(afterUrl.headers['x-cache']).toBe('MISS');
    expect(origin.count(path) - before).toBe(2);
    expect((await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } })).headers['x-cache']).toBe('HIT');
    before = origin.count(path);
    await adminPurge({ prefixes: ['/obj/pur'] });
    const afterPrefix = await request(`${proxy.url}${path}`, { headers: { range: `bytes=${SLICE * 5}-${SLICE * 5 + 9}` } });
    expect(afterPrefix.headers['x-cache']).toBe('MISS');
    // The first slice and slice 5: the last slice stored before the purge is gone too.
    expect(ranges(path).slice(-2)).toEqual([sliceRange(0), sliceRange(5)]);
    expect(origin.count(path) - before).toBe(2);
    expect((await request(`${proxy.url}${path}`, { headers: { range: 'bytes=-10' } })).headers['x-cache']).toBe('MISS');
  });
});

describe('slices larger than the memory tier takes', () => {
  it('are kept on the disk tier and served from there', async () => {
    const small = await startProxy(origin.url, { sliceSize: 2 * MiB, memoryMax: 4 * MiB, maxObjectSize: 8 * MiB });
    try {
      const path = '/obj/on-disk';
      const { bytes } = objectOf(path);
      const miss = await request(`${small.url}${path}`);
      expect([miss.status, miss.headers['x-cache'], sha(miss.body)]).toEqual([200, 'MISS', sha(bytes)]);
      expect(ranges(path)).toEqual(['bytes=0-2097151', `bytes=2097152-${SIZE - 1}`]);
      const hit = await request(`${small.url}${path}`);
      expect([hit.status, hit.headers['x-cache'], sha(hit.body)]).toEqual([200, 'HIT', sha(bytes)]);
      expect(String(hit.headers['cache-status'])).toContain('hit');
      expect(origin.count(path)).toBe(2);
      // Neither slice is in memory: each is over the memory tier's per-object limit (1 MiB here).
      expect(small.edgecache.store.memory.stats().bytes).toBeLessThan(MiB);
    } finally {
      await small.close();
    }
  });
});

describe('over HTTP/2', () => {
  it('a sliced miss and hit, whole and a range, as over HTTP/1.1', async () => {
    const h2 = await startProxy(origin.url, { sliceSize: SLICE, h2c: true });
    const session = h2Connect(h2.url);
    try {
      const path = '/obj/h2';
      const { bytes } = objectOf(path);
      const seek = await h2Request(session, { ':path': path, range: 'bytes=-100' });
      expect([seek.status, seek.headers['x-cache'], seek.body.equals(bytes.subarray(SIZE - 100))]).toEqual([206, 'MISS', true]);
      const miss = await h2Request(session, { ':path': path });
      expect([miss.status, miss.headers['content-length'], sha(miss.body)]).toEqual([200, String(SIZE), sha(bytes)]);
      const hit = await h2Request(session, { ':path': path });
      expect([hit.status, hit.headers['x-cache'], sha(hit.body)]).toEqual([200, 'HIT', sha(bytes)]);
      expect(origin.count(path)).toBe(SLICES);
    } finally {
      await h2Close(session);
      await h2.close();
    }
  });
});
