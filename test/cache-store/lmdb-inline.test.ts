/**
 * The disk tier's read path for small bodies: bodies stored inside the meta record (one LMDB read per hit),
 * private copies, bodies leased to the hit path (reusable buffers handed back on 'finish'), and access times
 * written in bounded transactions.
 */
import { performance } from 'node:perf_hooks';
import { ProxyMetrics } from '../../proxy/admin/metrics.js';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { isChunked } from '../../cache-store/body.js';
import { CacheStore } from '../../cache-store/cache-store.js';
import { recordSize, type CacheEntry } from '../../cache-store/entry.js';
import { decodeRecord, finishRecord, FORMAT_VERSION, INLINE_LIMIT, prepareRecord } from '../../cache-store/record-codec.js';
import { DB, INFO, storageKey } from '../../cache-store/lmdb/layout.js';
import { ATIME_BATCH } from '../../cache-store/lmdb/options.js';
import type { LmdbTier, LmdbTierOptions } from '../../cache-store/lmdb/lmdb-tier.js';
import { MemoryTier } from '../../cache-store/memory/memory-tier.js';
import { createHitPath } from '../../proxy/http/hit-path.js';
import { ProxyStats } from '../../proxy/admin/stats.js';
import { OutcomeRecorder } from '../../proxy/pipeline/outcome.js';
import { digest, Fixtures, TestClock } from './fixtures.js';
import { lmdbHarness, type LmdbHarness } from './lmdb-harness.js';

const MiB = 1024 * 1024;
const clock = new TestClock();
const fx = new Fixtures(clock);
const harnesses: LmdbHarness[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

async function harness(overrides: Partial<LmdbTierOptions> = {}, maxBytes = 64 * MiB): Promise<LmdbHarness> {
  const h = await lmdbHarness({ maxBytes, now: clock.now }, overrides);
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  for (const h of harnesses.splice(0)) await h.dispose();
});

function entryOf(tier: LmdbTier, key: string): CacheEntry {
  const record = tier.get(key);
  expect(record?.kind, key).toBe('entry');
  return record as CacheEntry;
}

function leased(tier: LmdbTier, key: string): Buffer {
  const record = tier.lease(key);
  expect(record?.kind, key).toBe('entry');
  const body = (record as CacheEntry).body;
  expect(Buffer.isBuffer(body)).toBe(true);
  return body as Buffer;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('LmdbTier: bodies stored inline', () => {
  it('stores bodies up to the inline limit inside the meta record, larger ones in chunks, and reads both back', async () => {
    const h = await harness({ chunkSize: 128 * 1024 });
    const sizes = [0, 1, 3_000, 16 * 1024, INLINE_LIMIT, INLINE_LIMIT + 1, 128 * 1024, 300_000];
    const stored = new Map<string, CacheEntry>();
    for (const size of sizes) {
      const key = `inline.test/${size}`;
      const e = fx.entry(key, { body: size, tags: ['inline'] });
      stored.set(key, e);
      h.tier.set(key, e);
    }
    await h.settle();
    for (const [key, e] of stored) {
      const got = entryOf(h.tier, key);
      expect(got.meta).toEqual(e.meta);
      expect(digest(got.body), key).toBe(digest(e.body));
      expect(isChunked(got.body), key).toBe(e.body.length > 128 * 1024);
    }
    expect(h.tier.checkIntegrity().problems).toEqual([]);
    expect(h.tier.stats().bytes).toBe([...stored.values()].reduce((n, e) => n + recordSize(e), 0));
    await h.withRaw((raw) => {
      for (const size of sizes) {
        const decoded = decodeRecord(raw.meta.getBinary(storageKey(`inline.test/${size}`)) as Buffer);
        if (decoded.kind !== 'entry') throw new Error('not an entry');
        const inline = size <= INLINE_LIMIT;
        expect(decoded.body.inlineAt >= 0, `${size}`).toBe(inline);
        expect(decoded.body.chunkCount, `${size}`).toBe(inline ? 0 : Math.ceil(size / (128 * 1024)));
        const chunks = [...raw.bodies.getKeys({ start: [decoded.body.bodyId, 0], end: [decoded.body.bodyId + 1, 0] })];
        expect(chunks.length, `${size}`).toBe(decoded.body.chunkCount);
      }
    });
    // Reopened (a new decoding) and overwritten in place (small to large and back), still consistent.
    const small = fx.entry('inline.test/1', { body: 400_000 });
    const large = fx.entry('inline.test/300000', { body: 5_000 });
    h.tier.set('inline.test/1', small);
    h.tier.set('inline.test/300000', large);
    await h.settle();
    expect(digest(entryOf(h.tier, 'inline.test/1').body)).toBe(digest(small.body));
    expect(digest(entryOf(h.tier, 'inline.test/300000').body)).toBe(digest(large.body));
    h.tier.delete('inline.test/16384');
    await h.settle();
    expect(h.tier.get('inline.test/16384')).toBeUndefined();
    expect(h.tier.keysForTag('inline').length).toBe(sizes.length - 3); // two overwritten without tags, one deleted
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('never inlines more than one chunk: with small chunks, the chunk size is the limit', async () => {
    const h = await harness({ chunkSize: 4 * 1024 });
    for (const size of [4 * 1024, 4 * 1024 + 1, 40_000]) h.tier.set(`small-chunks.test/${size}`, fx.entry(`small-chunks.test/${size}`, { body: size }));
    await h.settle();
    expect(Buffer.isBuffer(entryOf(h.tier, 'small-chunks.test/4096').body)).toBe(true);
    expect(isChunked(entryOf(h.tier, 'small-chunks.test/4097').body)).toBe(true);
    expect(isChunked(entryOf(h.tier, 'small-chunks.test/40000').body)).toBe(true);
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('returns a private copy: later reads and writes never change bytes a reader holds', async () => {
    const h = await harness();
    const first = fx.entry('copy.test/a', { body: 16 * 1024 });
    h.tier.set('copy.test/a', first);
    h.tier.set('copy.test/b', fx.entry('copy.test/b', { body: 16 * 1024 }));
    await h.settle();
    const held = entryOf(h.tier, 'copy.test/a').body as Buffer;
    const heldLeased = leased(h.tier, 'copy.test/a');
    const before = sha256(held);
    expect(before).toBe(digest(first.body));
    // Other reads reuse lmdb-js's read buffer; a write replaces the record (new body id, same size).
    for (let i = 0; i < 10; i++) {
      entryOf(h.tier, 'copy.test/b');
      leased(h.tier, 'copy.test/b');
    }
    h.tier.set('copy.test/a', fx.entry('copy.test/a', { body: 16 * 1024 }));
    await h.settle();
    entryOf(h.tier, 'copy.test/a');
    leased(h.tier, 'copy.test/a');
    expect(sha256(held)).toBe(before);
    expect(sha256(heldLeased)).toBe(before);
    // Two reads do not share memory.
    const x = entryOf(h.tier, 'copy.test/b').body as Buffer;
    const y = entryOf(h.tier, 'copy.test/b').body as Buffer;
    x[0] = (x[0] as number) ^ 0xff;
    expect(y[0]).not.toBe(x[0]);
  });

  it('a damaged inline record is corrupt: checksum, and lengths that do not add up', async () => {
    const h = await harness();
    h.tier.set('damage.test/body', fx.entry('damage.test/body', { body: 20_000 }));
    h.tier.set('damage.test/short', fx.entry('damage.test/short', { body: 20_000 }));
    h.tier.set('damage.test/fine', fx.entry('damage.test/fine', { body: 20_000 }));
    await h.settle();
    await h.withRaw((raw) => {
      raw.env.transactionSync(() => {
        const body = Buffer.from(raw.meta.getBinary(storageKey('damage.test/body')) as Buffer);
        body[body.length - 10_000] = (body[body.length - 10_000] as number) ^ 1; // a flipped bit in the body
        raw.meta.putSync(storageKey('damage.test/body'), body);
        const short = raw.meta.getBinary(storageKey('damage.test/short')) as Buffer;
        raw.meta.putSync(storageKey('damage.test/short'), short.subarray(0, short.length - 1));
      });
    });
    expect(h.tier.get('damage.test/body')).toBeUndefined();
    expect(h.tier.get('damage.test/short')).toBeUndefined();
    expect(h.tier.get('damage.test/fine')?.kind).toBe('entry');
    expect(h.tier.stats().corruptRecords).toBe(2);
    await h.settle();
    expect(h.tier.checkIntegrity().problems).toEqual([]);
    expect(h.tier.stats().entries).toBe(1);
  });

  it('decodeRecord checks the JSON length and the inline body length against the value', () => {
    const e = fx.entry('codec.test/a', { body: 1_000 });
    const prepared = prepareRecord('codec.test/a', e, recordSize(e), 256 * 1024);
    expect(prepared).toMatchObject({ inlineBytes: 1_000, chunkCount: 0 });
    const value = finishRecord(prepared, 7, [e.body as Buffer]);
    const decoded = decodeRecord(value);
    expect(decoded.kind === 'entry' && decoded.body).toMatchObject({ bodyId: 7, length: 1_000, chunkCount: 0, inlineAt: value.length - 1_000 });
    expect(value.subarray(value.length - 1_000).equals(e.body as Buffer)).toBe(true);
    // A JSON length that points past the value, or leaves bytes over, with a valid checksum.
    for (const delta of [5_000, -1]) {
      const bad = Buffer.from(value);
      bad.writeUInt32LE(bad.readUInt32LE(16) + delta, 16);
      bad.writeUInt32LE(crc32(bad.subarray(8)), 4);
      expect(() => decodeRecord(bad)).toThrow(/corrupt/);
    }
    expect(() => finishRecord(prepared, 8, [Buffer.alloc(999)])).toThrow(/expected 1000/);
    expect(() => finishRecord(prepared, 8, [Buffer.alloc(1_001)])).toThrow(/more than 1000/);
  });

  it('an environment of the previous format (1: small bodies in chunks) is cleared on open', async () => {
    const h = await harness();
    h.tier.set('old.test/a', fx.entry('old.test/a', { body: 2_000 }));
    await h.settle();
    await h.withRaw((raw) => {
      raw.env.transactionSync(() => {
        raw.info.putSync(INFO.format, 1);
        const header = Buffer.alloc(16);
        header.write('EC', 0, 'latin1');
        header[2] = 1;
        header[3] = 1;
        raw.meta.putSync(storageKey('old.test/b'), Buffer.concat([header, Buffer.from('{"k":"old.test/b"}')]));
        raw.bodies.putSync([999, 0], Buffer.alloc(2_000));
      });
    });
    expect(FORMAT_VERSION).toBe(4);
    expect(h.tier.stats()).toMatchObject({ entries: 0, bytes: 0 });
    expect(h.tier.get('old.test/a')).toBeUndefined();
    expect(h.tier.get('old.test/b')).toBeUndefined();
    expect(h.tier.keys('')).toEqual([]);
    expect(h.log.lines.some((l) => l.level === 'warn' && l.msg.includes('format version'))).toBe(true);
    expect(h.tier.checkIntegrity()).toMatchObject({ entries: 0, problems: [] });
    await h.withRaw((raw) => {
      expect(raw.info.get(INFO.format)).toBe(FORMAT_VERSION);
      expect(raw.bodies.getKeysCount()).toBe(0);
      expect(raw.env.openDB(DB.atime, {}).getKeysCount()).toBe(0);
    });
  });
});

describe('LmdbTier: leased bodies', () => {
  it('lease reads like get, into buffers that are reused only once released', async () => {
    const h = await harness();
    for (const key of ['lease.test/a', 'lease.test/b', 'lease.test/c']) h.tier.set(key, fx.entry(key, { body: 16 * 1024 }));
    h.tier.set('lease.test/chunked', fx.entry('lease.test/chunked', { body: 600_000 }));
    h.tier.set('lease.test/one-chunk', fx.entry('lease.test/one-chunk', { body: 200_000 }));
    await h.settle();
    const a = leased(h.tier, 'lease.test/a');
    expect(digest(a)).toBe(digest(entryOf(h.tier, 'lease.test/a').body));
    expect(h.tier.isLeased(a)).toBe(true);
    expect(h.tier.isLeased(entryOf(h.tier, 'lease.test/a').body as Buffer)).toBe(false);
    const memoryOfA = a.buffer;
    const aBytes = sha256(a);

    // Not released: never reused, its bytes stay.
    const b = leased(h.tier, 'lease.test/b');
    expect(b.buffer).not.toBe(memoryOfA);
    expect(sha256(a)).toBe(aBytes);

    // Released: the next lease of that size may reuse it.
    h.tier.release(a);
    expect(h.tier.isLeased(a)).toBe(false);
    const c = leased(h.tier, 'lease.test/c');
    expect(c.buffer).toBe(memoryOfA);
    expect(digest(c)).toBe(digest(entryOf(h.tier, 'lease.test/c').body));

    // A second release, and releasing a buffer the tier did not lease, are ignored.
    h.tier.release(b);
    h.tier.release(b);
    h.tier.release(entryOf(h.tier, 'lease.test/a').body as Buffer);
    const d = leased(h.tier, 'lease.test/a');
    const e = leased(h.tier, 'lease.test/b');
    expect(d.buffer).not.toBe(e.buffer);
    expect(digest(d)).toBe(digest(entryOf(h.tier, 'lease.test/a').body));
    expect(digest(e)).toBe(digest(entryOf(h.tier, 'lease.test/b').body));

    // A single chunk is leased too; a larger body is read lazily, as with get.
    const one = leased(h.tier, 'lease.test/one-chunk');
    expect(h.tier.isLeased(one)).toBe(true);
    expect(digest(one)).toBe(digest(entryOf(h.tier, 'lease.test/one-chunk').body));
    expect(isChunked((h.tier.lease('lease.test/chunked') as CacheEntry).body)).toBe(true);
  });

  it('CacheStore.peek leases disk hits and promotes a copy, never the lease, into memory', async () => {
    const h = await harness();
    const memory = new MemoryTier({ maxBytes: 64 * MiB, now: clock.now, policy: 'tinylfu' });
    const store = new CacheStore({ memory, lower: [h.tier], maxVariants: 4 });
    for (const key of ['peek.test/a', 'peek.test/b']) h.tier.set(key, fx.entry(key, { body: 16 * 1024 }));
    await h.settle();
    const disk = store.peek('peek.test/a', {}) as CacheEntry;
    expect(store.isLeased(disk.body)).toBe(true);
    const inMemory = memory.get('peek.test/a') as CacheEntry;
    expect(inMemory.body).not.toBe(disk.body);
    expect(digest(inMemory.body)).toBe(digest(disk.body));
    const promotedBytes = digest(inMemory.body);
    // The lease goes back and is reused for the next disk hit: the memory tier's copy is untouched.
    store.release(disk.body);
    const next = store.peek('peek.test/b', {}) as CacheEntry;
    expect((next.body as Buffer).buffer).toBe((disk.body as Buffer).buffer);
    expect(digest((memory.get('peek.test/a') as CacheEntry).body)).toBe(promotedBytes);
    // A memory hit is not leased; releasing it is a no-op.
    const hot = store.peek('peek.test/a', {}) as CacheEntry;
    expect(hot.body).toBe(inMemory.body);
    expect(store.isLeased(hot.body)).toBe(false);
    store.release(hot.body);
    expect(digest(hot.body)).toBe(promotedBytes);
  });

  it('the hit path hands a leased body back only once the response has finished, even for a client that reads late', async () => {
    const h = await harness({}, 256 * MiB);
    // A memory tier too small for these bodies: every hit is a disk hit.
    const store = new CacheStore({ memory: new MemoryTier({ maxBytes: 32 * 1024, now: clock.now, policy: 'tinylfu' }), lower: [h.tier], maxVariants: 4 });
    const keys = Array.from({ length: 48 }, (_, i) => `hit.test/obj/${i}`);
    const expected = new Map<string, string>();
    for (const key of keys) {
      const e = fx.entry(key, { body: INLINE_LIMIT - (key.length % 7) });
      expected.set(`/${key.slice('hit.test/'.length)}`, digest(e.body));
      h.tier.set(key, e);
    }
    await h.settle();
    const stats = new ProxyStats();
    const hit = createHitPath(store, new OutcomeRecorder(stats, new ProxyMetrics(stats, store), undefined), clock.now);
    const server = http.createServer((req, res) => {
      if (!hit(req, res, performance.now())) {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as net.AddressInfo;
    const paths = [...expected.keys()];

    // A client that pipelines many requests and does not read: the responses pile up in the socket buffers
    // and in Node's, each holding a leased body, while other clients take and hand back leases.
    const slow = net.connect(port, '127.0.0.1');
    cleanups.push(() => void slow.destroy());
    slow.pause();
    await new Promise<void>((resolve) => slow.once('connect', resolve));
    const slowPaths = Array.from({ length: 120 }, (_, i) => paths[i % paths.length] as string);
    slow.write(slowPaths.map((p) => `GET ${p} HTTP/1.1\r\nHost: hit.test\r\n\r\n`).join(''));
    await new Promise((resolve) => setTimeout(resolve, 100));

    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    cleanups.push(() => agent.destroy());
    const get = (path: string): Promise<{ status: number; sha: string }> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path, agent, headers: { host: 'hit.test' } }, (res) => {
            const parts: Buffer[] = [];
            res.on('data', (d: Buffer) => parts.push(d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, sha: sha256(Buffer.concat(parts)) }));
          })
          .on('error', reject);
      });
    const fast = await Promise.all(Array.from({ length: 400 }, (_, i) => get(paths[(i * 7) % paths.length] as string).then((r) => ({ ...r, i }))));
    for (const r of fast) {
      expect(r.status).toBe(200);
      expect(r.sha).toBe(expected.get(paths[(r.i * 7) % paths.length] as string));
    }

    // Now read the slow client's responses: every body must be the one it was sent with.
    const shas: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${shas.length} slow responses arrived`)), 10_000);
      let pending = Buffer.alloc(0);
      slow.on('data', (data: Buffer) => {
        pending = Buffer.concat([pending, data]);
        for (;;) {
          const end = pending.indexOf('\r\n\r\n');
          if (end === -1) break;
          const length = Number(/content-length: (\d+)/i.exec(pending.subarray(0, end).toString('latin1'))?.[1]);
          if (pending.length < end + 4 + length) break;
          shas.push(sha256(pending.subarray(end + 4, end + 4 + length)));
          pending = pending.subarray(end + 4 + length);
        }
        if (shas.length === slowPaths.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      slow.resume();
    });
    expect(shas).toEqual(slowPaths.map((p) => expected.get(p)));
    expect(stats.hits).toBe(fast.length + slowPaths.length);
  });
});

describe('LmdbTier: access times', () => {
  it(`writes a large flush of access times in transactions of ${ATIME_BATCH}, and every one of them lands`, async () => {
    const count = ATIME_BATCH * 3 + 17;
    const maxBytes = 8 * MiB;
    const h = await harness({}, maxBytes);
    for (let i = 0; i < count; i++) h.tier.set(`atime.test/${i}`, fx.entry(`atime.test/${i}`, { body: 1_000 }));
    await h.settle();
    clock.advance(60_000);
    // Touch the first half; the second half keeps its write time.
    const touched = Math.ceil(count / 2);
    for (let i = 0; i < touched; i++) entryOf(h.tier, `atime.test/${i}`);
    await h.settle();
    expect(h.tier.checkIntegrity().problems).toEqual([]);
    expect(h.tier.stats().evictions).toBe(0);
    // Writes that make the tier evict over a fifth of the entries: least recently used first, so none of the
    // touched half goes (it would, had any batch of access times been lost).
    for (let n = 0; h.tier.stats().evictions <= count / 5; n++) {
      expect(n, 'writes before enough evictions').toBeLessThan(4 * count);
      for (let i = 0; i < 20; i++) h.tier.set(`atime.test/new/${n * 20 + i}`, fx.entry(`atime.test/new/${n * 20 + i}`, { body: 1_000 }));
      await h.settle();
    }
    const left = new Set(h.tier.keys('atime.test/'));
    for (let i = 0; i < touched; i++) expect(left.has(`atime.test/${i}`), `atime.test/${i}`).toBe(true);
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });
});
