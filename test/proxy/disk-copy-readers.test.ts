/**
 * A body larger than the memory tier goes to disk as it streams, and a client slower than the origin reads it
 * back from there. When the body turns out not to be stored after all (it outgrows --max-object-size, or the
 * disk fills up), that client must still get every byte: the copy it reads is kept until it has caught up, the
 * origin waits meanwhile, and the rest comes straight from the origin. (It used to be cut off mid-body.)
 * The full-disk case mounts a small tmpfs, which needs root: elsewhere it is skipped, with one line saying so.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { canMountTmpfs, mountTmpfs, skipWithoutTmpfs, type Tmpfs } from '../helpers/tmpfs.js';

const MiB = 1024 * 1024;
const SIZE = 40 * MiB;
const BODY = Buffer.allocUnsafe(SIZE);
for (let i = 0; i * 64 < SIZE; i++) createHash('sha512').update(String(i)).digest().copy(BODY, i * 64);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

skipWithoutTmpfs('the full-disk reader test');

let origin: TestOrigin;

beforeAll(async () => {
  origin = await startOrigin(async (req, res) => {
    const headers: Record<string, string> = { 'content-type': 'video/mp4', 'cache-control': 'public, max-age=600' };
    // Without a length (so the size limit is found out as it streams), or with one (so it goes to disk at once).
    if (!req.url?.startsWith('/chunked')) headers['content-length'] = String(SIZE);
    res.writeHead(200, headers);
    for (let at = 0; at < SIZE; at += MiB) {
      if (!res.write(BODY.subarray(at, at + MiB))) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  });
});

afterAll(async () => {
  await origin?.close();
});

/** GETs `url` with a client that reads nothing for `stallMs` (so it falls behind), then reads to the end. */
function slowGet(url: string, stallMs: number): Promise<{ status: number; xcache: string; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.pause();
        setTimeout(() => res.resume(), stallMs);
        res.on('data', (c: Buffer) => chunks.push(c));
        const done = (): void => resolve({ status: res.statusCode ?? 0, xcache: String(res.headers['x-cache']), body: Buffer.concat(chunks), complete: res.complete });
        res.on('end', done);
        res.on('aborted', done);
        res.on('error', done);
      })
      .on('error', reject);
  });
}

describe('a client reading a streamed body back from disk', () => {
  let proxy: TestProxy;
  afterAll(async () => {
    await proxy?.close();
  });

  it('gets every byte when the body outgrows --max-object-size as it streams; the next request fetches again', async () => {
    proxy = await startProxy(origin.url, { memoryMax: 16 * MiB, maxObjectSize: 24 * MiB });
    const [slow, fast] = await Promise.all([slowGet(`${proxy.url}/chunked/a`, 400), slowGet(`${proxy.url}/chunked/a`, 0)]);
    expect([slow.status, slow.complete, slow.body.length, sha(slow.body)]).toEqual([200, true, SIZE, sha(BODY)]);
    expect([fast.status, fast.complete, sha(fast.body)]).toEqual([200, true, sha(BODY)]);
    await proxy.edgecache.pipeline.idle();
    const again = await slowGet(`${proxy.url}/chunked/a`, 0);
    expect([again.xcache, sha(again.body)]).toEqual(['MISS', sha(BODY)]);
    // Nothing of the unstored copy is left on disk.
    await proxy.edgecache.store.flush();
    expect(proxy.edgecache.store.stats()[1]?.entries).toBe(0);
  });
});

describe.runIf(canMountTmpfs)('a client reading a streamed body back from a disk that fills up', () => {
  let tmpfs: Tmpfs | undefined;
  let proxy: TestProxy;
  beforeAll(() => {
    tmpfs = mountTmpfs('24m');
  });
  afterAll(async () => {
    await proxy?.close();
    tmpfs?.unmount();
  });

  it('gets every byte from the origin once the copy it read is used up; so do clients keeping up', async () => {
    proxy = await startProxy(origin.url, { memoryMax: 16 * MiB, maxObjectSize: 64 * MiB, dataDir: path.join((tmpfs as Tmpfs).path, 'data') });
    const results = await Promise.all([slowGet(`${proxy.url}/full/a`, 400), slowGet(`${proxy.url}/full/a`, 0), slowGet(`${proxy.url}/full/a`, 1000)]);
    for (const res of results) expect([res.status, res.complete, res.body.length, sha(res.body)]).toEqual([200, true, SIZE, sha(BODY)]);
    expect(origin.count('/full/a')).toBe(1);
    await proxy.edgecache.pipeline.idle();
    expect(proxy.edgecache.store.stats()[1]?.entries).toBe(0);
  });
});
