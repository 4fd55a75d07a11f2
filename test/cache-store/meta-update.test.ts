/**
 * Rewriting an entry's metadata without its body (CacheTier.updateMeta): a soft purge and a 304 refresh change
 * lifetimes and headers, never the body, so the disk tier rewrites the meta value and keeps the body's chunks,
 * and the Redis tier (test/cache-store/redis-tier.test.ts) rewrites the meta key only. What shows it here: the
 * chunk rows of the body are the same rows with the same bytes afterwards, and no new body id is taken (every
 * whole write takes one).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CacheStore } from '../../cache-store/cache-store.js';
import type { CacheEntry, EntryMeta } from '../../cache-store/entry.js';
import { MemoryTier } from '../../cache-store/memory/memory-tier.js';
import { decodeRecord } from '../../cache-store/record-codec.js';
import { freshUntil } from '../../policies/http/freshness.js';
import { INFO, storageKey } from '../../cache-store/lmdb/layout.js';
import { digest, Fixtures, partsBody, TestClock } from './fixtures.js';
import { lmdbHarness, openRaw, type LmdbHarness } from './lmdb-harness.js';
import { request } from '../helpers/http.js';
import { startOrigin } from '../helpers/origin.js';
import { startProxy } from '../helpers/proxy.js';

const MiB = 1024 * 1024;
const clock = new TestClock();
const fx = new Fixtures(clock);
const harnesses: LmdbHarness[] = [];

async function harness(): Promise<LmdbHarness> {
  const h = await lmdbHarness({ maxBytes: 64 * MiB, now: clock.now });
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.dispose();
});

/** What the environment holds for a key's body: the next body id, the record's body id, and its chunk rows. */
function bodyRows(path: string, key: string): { nextBodyId: number; bodyId: number; chunks: Array<[unknown, string]> } {
  const raw = openRaw(path);
  try {
    const value = raw.meta.getBinary(storageKey(key));
    if (value === undefined) throw new Error(`${key} is not stored`);
    const decoded = decodeRecord(value);
    if (decoded.kind !== 'entry') throw new Error(`${key} is not an entry`);
    const id = decoded.body.bodyId;
    const chunks = [...raw.bodies.getRange({ start: [id, 0], end: [id + 1, 0] })].map(({ key: row, value: bytes }) => [row, digest(Buffer.from(bytes))] as [unknown, string]);
    return { nextBodyId: raw.info.get(INFO.nextBodyId) as number, bodyId: id, chunks };
  } finally {
    void raw.env.close();
  }
}

function withMeta(entry: CacheEntry, meta: Partial<EntryMeta>): CacheEntry {
  return { ...entry, meta: { ...entry.meta, ...meta } };
}

describe('LmdbTier.updateMeta', () => {
  it('rewrites the metadata of a chunked entry and an inline one, keeping the stored body: same chunk rows, no new body id', async () => {
    const h = await harness();
    h.tier.set('meta.test/big', fx.entry('meta.test/big', { body: partsBody(MiB + 12_345), tags: ['a'] }));
    h.tier.set('meta.test/small', fx.entry('meta.test/small', { body: 2_000 }));
    await h.settle();
    const before = bodyRows(h.path, 'meta.test/big');
    expect(before.chunks).toHaveLength(5);
    const bytesBefore = h.tier.stats().bytes;
    for (const key of ['meta.test/big', 'meta.test/small']) {
      const stored = h.tier.get(key) as CacheEntry;
      const updated = withMeta(stored, { headers: { ...stored.meta.headers, 'x-revalidated': 'yes' }, lifetime: clock.now() + 5 - stored.meta.ageBase, tags: ['b'] });
      expect(h.tier.updateMeta(key, updated, stored.meta)).toBe(true);
    }
    await h.settle();
    const after = bodyRows(h.path, 'meta.test/big');
    expect(after).toEqual(before);
    expect(bodyRows(h.path, 'meta.test/small').nextBodyId).toBe(before.nextBodyId);
    for (const key of ['meta.test/big', 'meta.test/small']) {
      const read = h.tier.get(key) as CacheEntry;
      expect([read.meta.headers['x-revalidated'], freshUntil(read.meta), read.meta.tags]).toEqual(['yes', clock.now() + 5, ['b']]);
      expect(read.meta.headers['x-body-sha256']).toBe(digest(read.body));
    }
    expect(h.tier.keysForTag('a')).toEqual([]);
    expect(h.tier.keysForTag('b').sort()).toEqual(['meta.test/big', 'meta.test/small']);
    // Each record is charged its new header text: 'x-revalidated: yes' and its 4 bytes of framing, twice.
    expect(h.tier.stats().bytes).toBe(bytesBefore + 2 * ('x-revalidated'.length + 4 + 'yes'.length));
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('writes the whole entry when the key no longer holds that body (replaced since it was read)', async () => {
    const h = await harness();
    // (One chunk: read back as a Buffer of its own, so it can still be written once its chunk is gone.)
    h.tier.set('meta.test/x', fx.entry('meta.test/x', { body: 100_000 }));
    await h.settle();
    const old = h.tier.get('meta.test/x') as CacheEntry;
    const replacement = fx.entry('meta.test/x', { body: 80_000 });
    h.tier.set('meta.test/x', replacement);
    await h.settle();
    const between = bodyRows(h.path, 'meta.test/x');
    // The old entry, softened, written back as a soft purge would: its own body goes with it, whole.
    expect(h.tier.updateMeta('meta.test/x', withMeta(old, { lifetime: clock.now() - old.meta.ageBase }), old.meta)).toBe(true);
    await h.settle();
    const after = bodyRows(h.path, 'meta.test/x');
    expect(after.nextBodyId).toBe(between.nextBodyId + 1);
    expect(after.bodyId).not.toBe(between.bodyId);
    const read = h.tier.get('meta.test/x') as CacheEntry;
    expect([read.body.length, digest(read.body)]).toEqual([100_000, digest(old.body)]);
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });
});

describe('CacheStore over memory and LMDB', () => {
  async function store(): Promise<{ store: CacheStore; h: LmdbHarness }> {
    const h = await harness();
    const memory = new MemoryTier({ maxBytes: 64 * MiB, now: clock.now, policy: 'lru' });
    return { store: new CacheStore({ memory, lower: [h.tier], maxVariants: 4 }), h };
  }

  it('a soft purge rewrites the metadata on disk, not the bodies', async () => {
    const { store: s, h } = await store();
    const keys = Array.from({ length: 6 }, (_, i) => `soft.test/p/${i}`);
    for (const key of keys) await s.put(fx.entry(key, { body: partsBody(700_000), etag: `"${key}"` }));
    await s.flush();
    const before = keys.map((key) => bodyRows(h.path, key));
    expect(await s.purge({ keyPrefixes: ['soft.test/p/'] }, { soft: true, now: clock.now() })).toBe(keys.length);
    await s.flush();
    expect(keys.map((key) => bodyRows(h.path, key))).toEqual(before);
    for (const key of keys) {
      const stale = h.tier.get(key) as CacheEntry;
      expect(freshUntil(stale.meta)).toBeLessThanOrEqual(clock.now());
      expect(fx.freshness.evaluate(stale.meta, {}, clock.now())).toBe('revalidate');
    }
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('a 304 refresh (replace) rewrites the metadata on disk, not the body', async () => {
    const { store: s, h } = await store();
    const entry = fx.entry('refresh.test/big', { body: partsBody(2 * MiB), etag: '"v1"' });
    await s.put(entry);
    await s.flush();
    const before = bodyRows(h.path, 'refresh.test/big');
    clock.advance(10_000);
    const refreshed = withMeta(entry, { headers: { ...entry.meta.headers, date: new Date(clock.now()).toUTCString() }, ageBase: clock.now(), lifetime: 3_600_000 });
    expect(await s.replace(refreshed, entry.meta)).toBe('stored');
    await s.flush();
    expect(bodyRows(h.path, 'refresh.test/big')).toEqual(before);
    const onDisk = h.tier.get('refresh.test/big') as CacheEntry;
    expect([freshUntil(onDisk.meta), onDisk.meta.headers.date]).toEqual([clock.now() + 3_600_000, new Date(clock.now()).toUTCString()]);
    expect(digest(onDisk.body)).toBe(digest(entry.body));
  });
});

describe('through the proxy', () => {
  it('a 304 refresh of a large stored response rewrites its metadata on disk, not its body', async () => {
    const body = Buffer.alloc(3 * MiB, 'b');
    const origin = await startOrigin((req, res) => {
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=1', 'x-refreshed': 'yes' });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=1', 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    });
    const dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-meta-'));
    const proxy = await startProxy(origin.url, { dataDir });
    try {
      expect((await request(`${proxy.url}/big`)).headers['x-cache']).toBe('MISS');
      await proxy.edgecache.store.flush();
      const key = `127.0.0.1:${proxy.port}/big`;
      const lmdbPath = path.join(dataDir, 'lmdb');
      const before = bodyRows(lmdbPath, key);
      proxy.advance(5_000);
      const revalidated = await request(`${proxy.url}/big`);
      expect([revalidated.headers['x-cache'], revalidated.headers['x-refreshed'], revalidated.body.equals(body)]).toEqual(['REVALIDATED', 'yes', true]);
      await proxy.edgecache.pipeline.idle();
      await proxy.edgecache.store.flush();
      expect(bodyRows(lmdbPath, key)).toEqual(before);
      expect(origin.count('/big')).toBe(2);
    } finally {
      await proxy.close();
      await origin.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
