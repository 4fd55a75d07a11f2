/**
 * What the proxy keeps per distinct URL stays bounded and costs what the memory tier charges for it (issue 11,
 * "memory under mixed load"): stored bodies own exactly their bytes (not a slice of the socket read or of Node's
 * buffer pool), stored metadata shares one hidden class, the hit-for-miss map has a cap, and the memory tier's
 * charge per entry is close to the memory the entry really holds.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CacheEntry } from '../../cache-store/entry.js';
import { MAX_HIT_FOR_MISS_KEYS } from '../../proxy/pipeline/hit-for-miss.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

/** The body the origin sends for a path: `size` bytes that spell the path over and over. */
function bodyFor(path: string, size: number): Buffer {
  return Buffer.from(path.repeat(Math.ceil(size / path.length)).slice(0, size));
}

/** GETs over a few keep-alive connections (thousands of requests without thousands of sockets). */
function client(base: string): { get(path: string): Promise<number>; close(): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  return {
    get: (path) =>
      new Promise((resolve, reject) => {
        http
          .get(`${base}${path}`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
            res.on('error', reject);
          })
          .on('error', reject);
      }),
    close: () => agent.destroy(),
  };
}

async function getAll(get: (path: string) => Promise<number>, paths: string[], concurrency = 16): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) await get(paths[next++] as string);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

describe('memory per distinct URL', () => {
  // Not test/helpers/origin.ts: it records every request, which would count in the memory measured here.
  let origin: http.Server;
  let originUrl: string;
  let proxy: TestProxy;

  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      const url = req.url ?? '/';
      if (url.startsWith('/private/')) {
        res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
        res.end('not here\n');
        return;
      }
      const size = url.startsWith('/chunked/') ? 3000 : 1024;
      const body = bodyFor(url, size);
      const headers = { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=3600', etag: `"${url.length}"` };
      if (url.startsWith('/chunked/')) {
        // Three writes, chunked: the fill collects several chunks.
        res.writeHead(200, headers);
        res.write(body.subarray(0, 1000));
        setImmediate(() => {
          res.write(body.subarray(1000, 2000));
          setImmediate(() => res.end(body.subarray(2000)));
        });
        return;
      }
      res.writeHead(200, { ...headers, 'content-length': String(body.length) });
      res.end(body);
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    origin.closeAllConnections();
    await new Promise((resolve) => origin.close(resolve));
  });

  afterEach(async () => {
    await proxy?.close();
  });

  function stored(key: string): CacheEntry {
    const record = proxy.edgecache.store.memory.get(key);
    expect(record?.kind).toBe('entry');
    return record as CacheEntry;
  }

  /**
   * Whether a stored Buffer pins no memory but its own or the memory tier's: the whole of an ArrayBuffer, or a view
   * of one of the tier's slabs of packed small entries (never of a socket read, Node's pool or a Redis reply).
   */
  function ownsItsBytes(body: CacheEntry['body']): boolean {
    if (!Buffer.isBuffer(body)) return false;
    const memory = proxy.edgecache.store.memory as unknown as { holdsInSlab?: (b: Uint8Array) => boolean };
    return (body.byteOffset === 0 && body.buffer.byteLength === body.length) || memory.holdsInSlab?.(body) === true;
  }

  // First in the file: garbage that earlier tests leave behind would be collected during the measurement.
  it("charges each memory entry close to the memory it holds (so --memory-max bounds the tier's real size)", async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const used = (): number => {
      gc();
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    proxy = await startProxy(originUrl, { diskMax: 0 });
    const web = client(proxy.url);
    // Warm up: connections, code, the first allocations of every structure.
    await getAll(web.get, Array.from({ length: 300 }, (_, i) => `/warm/${i}`));
    await proxy.edgecache.pipeline.idle();
    const count = 4000;
    const before = used();
    const entriesBefore = proxy.edgecache.store.memory.stats().entries;
    const bytesBefore = proxy.edgecache.store.memory.stats().bytes;
    await getAll(web.get, Array.from({ length: count }, (_, i) => `/cost/${i}`));
    await proxy.edgecache.pipeline.idle();
    const real = (used() - before) / count;
    web.close();
    const stats = proxy.edgecache.store.memory.stats();
    expect(stats.entries - entriesBefore).toBe(count);
    const charged = (stats.bytes - bytesBefore) / count;
    // Before: ~1.5 KB charged for ~3.9 KB held. A 1 KiB body with its headers should now be charged at least
    // three quarters of what it holds, and not more than half as much again.
    expect(charged).toBeGreaterThan(0.75 * real);
    expect(charged).toBeLessThan(1.5 * real);
    // Served once (a fresh hit each), an entry is decoded: it also keeps its objects, its prepared hit fields and
    // its body's view, which the tier charges as decoded entries (within the same budget): the two charges together
    // still cover most of it.
    const decodedBefore = Number(proxy.edgecache.store.memory.stats().decodedBytes);
    const reread = client(proxy.url);
    await getAll(reread.get, Array.from({ length: count }, (_, i) => `/cost/${i}`));
    reread.close();
    const served = (used() - before) / count;
    const after = proxy.edgecache.store.memory.stats();
    expect(after.entries - entriesBefore).toBe(count);
    expect(served).toBeGreaterThan(real);
    const chargedServed = charged + (Number(after.decodedBytes) - decodedBefore) / count;
    expect(chargedServed).toBeGreaterThan(0.75 * served);
    expect(chargedServed).toBeLessThan(1.5 * served);
  }, 60_000);

  it('a stored body owns exactly its bytes: not the socket read it came in, nor a slice of the buffer pool', async () => {
    proxy = await startProxy(originUrl, { diskMax: 0 });
    const web = client(proxy.url);
    await web.get('/one/a');
    await web.get('/chunked/b');
    web.close();
    await proxy.edgecache.pipeline.idle();
    const host = new URL(proxy.url).host;
    for (const path of ['/one/a', '/chunked/b']) {
      const entry = stored(`${host}${path}`);
      expect(entry.body.length).toBe(path === '/one/a' ? 1024 : 3000);
      expect(ownsItsBytes(entry.body)).toBe(true);
    }
  });

  it('a disk hit promoted into memory keeps a copy that owns exactly its bytes', async () => {
    proxy = await startProxy(originUrl);
    const web = client(proxy.url);
    await web.get('/disk/a');
    await proxy.edgecache.pipeline.idle();
    await proxy.edgecache.store.flush();
    const key = `${new URL(proxy.url).host}/disk/a`;
    proxy.edgecache.store.memory.delete(key);
    await web.get('/disk/a'); // served from disk by the hit path, promoted into memory
    web.close();
    const entry = stored(key);
    expect(Buffer.compare(entry.body as Buffer, bodyFor('/disk/a', 1024))).toBe(0);
    expect(ownsItsBytes(entry.body)).toBe(true);
  });

  it('stored metadata objects share one hidden class (no dictionary-mode object of its own per entry)', async () => {
    v8.setFlagsFromString('--allow-natives-syntax');
    const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    const fast = new Function('a', 'return %HasFastProperties(a)') as (a: object) => boolean;
    proxy = await startProxy(originUrl, { diskMax: 0 });
    const web = client(proxy.url);
    // Enough fills for the code that builds the metadata to be optimized: the shape it then makes is the one that
    // matters (the interpreter's differs).
    const paths = Array.from({ length: 3000 }, (_, i) => `/shape/${i}`);
    await getAll(web.get, paths);
    web.close();
    await proxy.edgecache.pipeline.idle();
    const host = new URL(proxy.url).host;
    const metas = paths.slice(-20).map((path) => stored(`${host}${path}`).meta);
    for (const meta of metas) {
      expect(fast(meta)).toBe(true);
      expect(sameMap(meta, metas[0] as object)).toBe(true);
    }
  }, 60_000);

  it('the disk tier keeps decoded metadata in objects of one shape, at most 4,096 of them', async () => {
    v8.setFlagsFromString('--allow-natives-syntax');
    const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    const fast = new Function('a', 'return %HasFastProperties(a)') as (a: object) => boolean;
    // A memory tier of 1 MiB holds a few hundred of these: the rest are disk hits, decoded once each.
    proxy = await startProxy(originUrl, { memoryMax: 1024 * 1024 });
    const web = client(proxy.url);
    const paths = Array.from({ length: 5000 }, (_, i) => `/decoded/${i}`);
    await getAll(web.get, paths);
    await proxy.edgecache.pipeline.idle();
    await proxy.edgecache.store.flush();
    await getAll(web.get, paths);
    web.close();
    const disk = (proxy.edgecache.store as unknown as { tiers: Array<{ name: string; decodedCache?: Map<string, object> }> }).tiers.find((t) => t.name === 'disk');
    const decoded = [...(disk?.decodedCache?.values() ?? [])];
    expect(decoded.length).toBeGreaterThan(3000);
    expect(decoded.length).toBeLessThanOrEqual(4096);
    // Each kept object, and each object it holds, shares its hidden class with those of the other entries.
    const last = decoded[decoded.length - 1] as Record<string, unknown>;
    for (const one of decoded.slice(-20) as Array<Record<string, unknown>>) {
      expect(fast(one)).toBe(true);
      expect(sameMap(one, last)).toBe(true);
      for (const [name, value] of Object.entries(one)) {
        if (typeof value !== 'object' || value === null) continue;
        expect({ name, fast: fast(value), shared: sameMap(value, last[name] as object) }).toEqual({ name, fast: true, shared: true });
      }
    }
  }, 60_000);

  it(`remembers at most ${MAX_HIT_FOR_MISS_KEYS} keys for --hit-for-miss, however many distinct unshareable URLs come`, async () => {
    proxy = await startProxy(originUrl, { diskMax: 0 });
    const web = client(proxy.url);
    const paths = Array.from({ length: MAX_HIT_FOR_MISS_KEYS + 500 }, (_, i) => `/private/${i}`);
    await getAll(web.get, paths);
    web.close();
    await proxy.edgecache.pipeline.idle();
    const tracked = proxy.edgecache.pipeline.tracked();
    expect(tracked.hitForMiss).toBeGreaterThan(MAX_HIT_FOR_MISS_KEYS / 2);
    expect(tracked.hitForMiss).toBeLessThanOrEqual(MAX_HIT_FOR_MISS_KEYS);
    expect(tracked.fills).toBe(0);
  }, 60_000);
});
