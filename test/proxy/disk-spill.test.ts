/**
 * `--disk-write spill`: responses are stored in the memory tier only, and the disk tier gets what the memory tier
 * lets go. Small entries live packed in the memory tier's slabs (cache-store/memory/record-slabs.ts) and are handed to the
 * disk tier as they leave: every one must come back from disk byte for byte, its slab since compacted or not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

/** A body of its own for each path and size: its bytes spell the path. */
function bodyFor(path: string, size: number): Buffer {
  return Buffer.from(`${path};`.repeat(Math.ceil(size / (path.length + 1))).slice(0, size));
}

const COUNT = 400;
const sizeOf = (i: number): number => 100 + ((i * 37) % 1500);

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const path = req.url ?? '/';
    const i = Number(path.split('/').pop());
    const body = bodyFor(path, sizeOf(i));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=600', etag: `"${i}"`, 'content-length': String(body.length) });
    res.end(body);
  });
  // A memory tier of 128 KiB holds a few dozen of these entries: most of them are spilled to disk.
  proxy = await startProxy(origin.url, { memoryMax: 128 * 1024, diskWrite: 'spill' });
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
});

describe('--disk-write spill', () => {
  it('hands every small entry the memory tier lets go to the disk tier, bytes intact', async () => {
    const paths = Array.from({ length: COUNT }, (_, i) => `/spill/${i}`);
    for (const path of paths) {
      const res = await request(`${proxy.url}${path}`);
      expect(res.status).toBe(200);
      expect(Buffer.compare(res.body, bodyFor(path, sizeOf(Number(path.split('/').pop()))))).toBe(0);
    }
    await proxy.edgecache.pipeline.idle();
    await proxy.edgecache.store.flush();
    const [memory, disk] = proxy.edgecache.store.stats();
    expect(memory?.name).toBe('memory');
    // Let go: evicted, or not admitted by the policy (TinyLFU); both are spilled.
    expect(Number(memory?.evictions) + Number(memory?.rejections)).toBeGreaterThan(COUNT / 2);
    expect(disk?.name).toBe('disk');
    expect(disk?.entries).toBeGreaterThan(COUNT / 2);
    // Read back: every response a hit (from memory or from disk), the origin never asked again, the bytes its own.
    const fetched = origin.requests.length;
    for (const path of paths) {
      const res = await request(`${proxy.url}${path}`);
      expect(res.headers['x-cache'], path).toBe('HIT');
      expect(Buffer.compare(res.body, bodyFor(path, sizeOf(Number(path.split('/').pop())))), path).toBe(0);
    }
    expect(origin.requests.length).toBe(fetched);
  }, 60_000);
});
