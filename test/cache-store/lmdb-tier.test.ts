import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isChunked } from '../../cache-store/body.js';
import { recordSize, STALE_KEEP_MS, type CacheEntry } from '../../cache-store/entry.js';
import { MissingChunkError } from '../../cache-store/lmdb/body.js';
import { decodeRecord, FORMAT_VERSION, INLINE_LIMIT } from '../../cache-store/record-codec.js';
import { INFO, storageKey } from '../../cache-store/lmdb/layout.js';
import { LmdbTier, type LmdbTierOptions } from '../../cache-store/lmdb/lmdb-tier.js';
import { buildTierForChildren, type ChildBuild } from './child-build.js';
import { bodyBytes, digest, Fixtures, partsBody, recordingLogger, TestClock } from './fixtures.js';
import { lmdbHarness, tempDir, type LmdbHarness, type RawEnv } from './lmdb-harness.js';
import { runTierSuite } from './tier-suite.js';

runTierSuite('LmdbTier', (context) => lmdbHarness(context), { expires: true, recency: true, accounting: true });

const MiB = 1024 * 1024;
const clock = new TestClock();
const fx = new Fixtures(clock);
const harnesses: LmdbHarness[] = [];

async function harness(overrides: Partial<LmdbTierOptions> = {}, maxBytes = 64 * MiB): Promise<LmdbHarness> {
  const h = await lmdbHarness({ maxBytes, now: clock.now }, overrides);
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.dispose();
});

function entryOf(tier: LmdbTier, key: string): CacheEntry {
  const record = tier.get(key);
  expect(record?.kind, key).toBe('entry');
  return record as CacheEntry;
}

function bodyIdOf(raw: RawEnv, key: string): number {
  const decoded = decodeRecord(raw.meta.getBinary(storageKey(key)) as Buffer);
  if (decoded.kind !== 'entry') throw new Error('not an entry');
  return decoded.body.bodyId;
}

describe('LmdbTier: persistence and layout', () => {
  it('a streamed body larger than the write queue allows is stored even with other writes queued (only its record is queued)', async () => {
    const h = await harness({ maxPendingBytes: MiB });
    const bytes = bodyBytes(partsBody(3 * MiB));
    const writer = h.tier.openStream();
    if (writer === undefined) throw new Error('no stream');
    writer.append(bytes);
    await h.settle(); // (its chunks, while queued, count against the queue like any write)
    h.tier.set('stream.test/small', fx.entry('stream.test/small', { body: 500_000 }));
    expect(await h.tier.finishStream('stream.test/big', fx.entry('stream.test/big', { body: bytes }), writer)).toBe(true);
    expect(digest(entryOf(h.tier, 'stream.test/big').body)).toBe(digest(bytes));
    expect(h.tier.stats().writesDeclined).toBe(0);
  });

  it('a body written as it streams: read back while written, visible only with its final record; unfinished ones removed at open', async () => {
    const h = await harness();
    const bytes = bodyBytes(partsBody(700_000));
    const writer = h.tier.openStream();
    if (writer === undefined) throw new Error('no stream');
    for (let at = 0; at < bytes.length; at += 100_000) writer.append(bytes.subarray(at, at + 100_000));
    // Every byte received so far can be read back, committed or not.
    expect(Buffer.concat([writer.read(0), writer.read(262_144), writer.read(524_288)] as Buffer[]).equals(bytes)).toBe(true);
    expect(writer.read(700_000)).toBeUndefined();
    await h.settle();
    expect(h.tier.get('stream.test/a')).toBeUndefined();
    const entry = fx.entry('stream.test/a', { body: bytes });
    expect(await h.tier.finishStream('stream.test/a', entry, writer)).toBe(true);
    const got = entryOf(h.tier, 'stream.test/a');
    expect(isChunked(got.body)).toBe(true);
    expect(digest(got.body)).toBe(digest(bytes));

    // A fill that never finished (this process's, as after a crash and a restart with the same pid) and one of a
    // process that is gone: their chunks and markers go when the tier opens; the finished body stays.
    const unfinished = h.tier.openStream();
    unfinished?.append(bytes);
    await h.settle();
    const abandonedId = unfinished?.bodyId as number;
    expect(abandonedId).toBeGreaterThan(0);
    await h.withRaw(async (raw) => {
      expect([...raw.bodies.getKeys({ start: [abandonedId, 0], end: [abandonedId + 1, 0] })].length).toBe(2);
      await raw.info.put('fill:999999999', 2 ** 30);
      await raw.bodies.put([999_999_999, 0], Buffer.alloc(10));
    });
    const tier = await h.reopen();
    await tier.flushed();
    await h.withRaw((raw) => {
      for (const id of [abandonedId, 999_999_999]) expect([...raw.bodies.getKeys({ start: [id, 0], end: [id + 1, 0] })], String(id)).toEqual([]);
      expect([...raw.info.getKeys({ start: 'fill:', end: 'fill;' })]).toEqual([]);
    });
    expect(digest(entryOf(h.tier, 'stream.test/a').body)).toBe(digest(bytes));
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('keeps entries, their times, tags and accounting across close and reopen', async () => {
    const h = await harness();
    const small = fx.entry('persist.test/a', { body: 20_000, etag: '"a"', tags: ['t1', 'x'.repeat(3000)] });
    const big = fx.entry('persist.test/big', { body: partsBody(2 * MiB + 7), tags: ['t1'] });
    const long = 'persist.test/' + 'long/'.repeat(400);
    const vary = fx.vary('persist.test/v', ['accept-encoding'], ['gzip']);
    h.tier.set(small.meta.key, small);
    h.tier.set(big.meta.key, big);
    h.tier.set(long, fx.entry(long, { body: 5 }));
    h.tier.set('persist.test/v', vary);
    await h.settle();
    const before = h.tier.stats();
    expect(before.entries).toBe(4);

    clock.advance(60_000); // "downtime"
    const tier = await h.reopen();
    expect(tier.stats()).toMatchObject({ entries: before.entries, bytes: before.bytes });
    for (const original of [small, big]) {
      const got = entryOf(tier, original.meta.key);
      expect(got.meta).toEqual(original.meta);
      expect(digest(got.body)).toBe(digest(original.body));
      expect(got.meta.ageBase).toBe(original.meta.ageBase);
    }
    expect(isChunked(entryOf(tier, big.meta.key).body)).toBe(true);
    expect(entryOf(tier, long).meta.key).toBe(long);
    expect(tier.get('persist.test/v')).toEqual(vary);
    expect(tier.keysForTag('t1').sort()).toEqual([big.meta.key, small.meta.key].sort());
    expect(tier.keysForTag('x'.repeat(3000))).toEqual([small.meta.key]);
    expect(tier.checkIntegrity().problems).toEqual([]);
  });

  it('answers from its write queue until the write commits, and close() commits it', async () => {
    const h = await harness();
    const e = fx.entry('queue.test/1', { body: 1_000 });
    h.tier.set('queue.test/1', e);
    expect(h.tier.get('queue.test/1')).toBe(e);
    expect(h.tier.keys('queue.test/')).toEqual(['queue.test/1']);
    h.tier.delete('queue.test/1');
    expect(h.tier.get('queue.test/1')).toBeUndefined();
    h.tier.set('queue.test/2', fx.entry('queue.test/2'));
    const tier = await h.reopen(); // close() without waiting for flushed()
    expect(tier.get('queue.test/1')).toBeUndefined();
    expect(tier.get('queue.test/2')?.kind).toBe('entry');
  });

  it('deleteMany hides a key at once even while a write of it is still queued (a purge right after a promotion)', async () => {
    const h = await harness();
    const old = fx.entry('many.test/a', { body: 1_000 });
    h.tier.set('many.test/a', old);
    h.tier.set('many.test/b', fx.entry('many.test/b', { body: 10 }));
    // Both writes are still queued: the purge's deletes must win over them for this process's reads.
    const deleted = h.tier.deleteMany(['many.test/a', 'many.test/b']);
    expect(h.tier.get('many.test/a')).toBeUndefined();
    expect(h.tier.lease('many.test/a')).toBeUndefined();
    expect(h.tier.hasEntry('many.test/a')).toBe(false);
    expect(h.tier.keys('many.test/')).toEqual([]);
    await deleted;
    await h.tier.flushed();
    expect(h.tier.get('many.test/a')).toBeUndefined();
    expect(h.tier.get('many.test/b')).toBeUndefined();
    // A write queued after the delete wins again.
    const next = fx.entry('many.test/a', { body: 20 });
    h.tier.set('many.test/a', next);
    expect(h.tier.get('many.test/a')).toBe(next);
    await h.tier.flushed();
    expect(h.tier.get('many.test/a')?.kind).toBe('entry');
  });

  it('keeps queued operations in order around a clear', async () => {
    const h = await harness();
    h.tier.set('clear.test/old', fx.entry('clear.test/old'));
    await h.settle();
    h.tier.set('clear.test/before', fx.entry('clear.test/before'));
    h.tier.clear();
    h.tier.set('clear.test/after', fx.entry('clear.test/after'));
    expect(h.tier.get('clear.test/old')).toBeUndefined();
    expect(h.tier.get('clear.test/before')).toBeUndefined();
    expect(h.tier.get('clear.test/after')?.kind).toBe('entry');
    expect(h.tier.keys('clear.test/')).toEqual(['clear.test/after']);
    await h.settle();
    expect(h.tier.keys('clear.test/')).toEqual(['clear.test/after']);
    expect(h.tier.stats()).toMatchObject({ entries: 1, bytes: recordSize(entryOf(h.tier, 'clear.test/after')) });
  });

  it('declines writes beyond maxPendingBytes instead of queueing without bound', async () => {
    const h = await harness({ maxPendingBytes: MiB });
    expect(h.tier.set('pending.test/1', fx.entry('pending.test/1', { body: 600_000 }))).toBe(true);
    expect(h.tier.set('pending.test/2', fx.entry('pending.test/2', { body: 600_000 }))).toBe(false);
    expect(h.tier.set('pending.test/3', fx.entry('pending.test/3', { body: 600_000 }))).toBe(false);
    await h.settle();
    expect(h.tier.set('pending.test/4', fx.entry('pending.test/4', { body: 600_000 }))).toBe(true);
    await h.settle();
    expect(h.tier.stats()).toMatchObject({ entries: 2, writesDeclined: 2 });
    expect(h.log.lines.filter((l) => l.msg.includes('queue full') && l.level === 'warn')).toHaveLength(1);
  });

  it('maintains the tag index through overwrites and deletes', async () => {
    const h = await harness();
    h.tier.set('tag.test/1', fx.entry('tag.test/1', { tags: ['a', 'b'] }));
    h.tier.set('tag.test/2', fx.entry('tag.test/2', { tags: ['b'] }));
    await h.settle();
    expect(h.tier.keysForTag('b').sort()).toEqual(['tag.test/1', 'tag.test/2']);
    h.tier.set('tag.test/1', fx.entry('tag.test/1', { tags: ['c'] }));
    h.tier.delete('tag.test/2');
    await h.settle();
    expect(h.tier.keysForTag('a')).toEqual([]);
    expect(h.tier.keysForTag('b')).toEqual([]);
    expect(h.tier.keysForTag('c')).toEqual(['tag.test/1']);
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('an overwrite can re-store the body it replaces, even when the write has to evict', async () => {
    // (An overwrite takes room for both copies until it commits: the budget keeps twice the largest record free.)
    const h = await harness({}, 8 * MiB);
    h.tier.set('replace.test/big', fx.entry('replace.test/big', { body: partsBody(1_200_000) }));
    for (let i = 0; i < 14; i++) h.tier.set(`replace.test/${i}`, fx.entry(`replace.test/${i}`, { body: 250_000 }));
    await h.settle();
    const stored = entryOf(h.tier, 'replace.test/big');
    const original = digest(stored.body);
    // As after a 304: same body, updated headers, and 1.3 MB more to place than the budget leaves.
    const updated: CacheEntry = { ...stored, meta: { ...stored.meta, headers: { ...stored.meta.headers, 'x-revalidated': '1' } } };
    h.tier.set('replace.test/extra', fx.entry('replace.test/extra', { body: 1_300_000 }));
    expect(h.tier.set('replace.test/big', updated)).toBe(true);
    await h.settle();
    const again = entryOf(h.tier, 'replace.test/big');
    expect(again.meta.headers['x-revalidated']).toBe('1');
    expect(digest(again.body)).toBe(original);
    expect(h.tier.stats().bytes).toBeLessThanOrEqual(8 * MiB);
    expect(h.tier.stats().evictions).toBeGreaterThan(0);
    expect(h.tier.stats().writeFailures).toBe(0);
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('removes expired entries in batches with sweep(), and on a timer only where sweeper is on', async () => {
    const h = await harness();
    for (let i = 0; i < 1_200; i++) h.tier.set(`sweep.test/old/${i}`, fx.entry(`sweep.test/old/${i}`, { body: 10, maxAge: 10 }));
    for (let i = 0; i < 10; i++) h.tier.set(`sweep.test/live/${i}`, fx.entry(`sweep.test/live/${i}`, { body: 10, maxAge: 3600 }));
    await h.settle();
    clock.advance(STALE_KEEP_MS + 20_000);
    expect(await h.tier.sweep()).toBe(1_200);
    expect(h.tier.stats()).toMatchObject({ entries: 10, expired: 1_200 });
    expect(h.tier.checkIntegrity().problems).toEqual([]);

    for (const sweeper of [false, true]) {
      const tier = await h.reopen({ sweeper, sweepIntervalMs: 20 });
      for (let i = 0; i < 5; i++) tier.set(`sweep.test/t/${i}`, fx.entry(`sweep.test/t/${i}`, { body: 10, maxAge: 1 }));
      await tier.flushed();
      clock.advance(STALE_KEEP_MS + 5_000);
      const deadline = Date.now() + (sweeper ? 5_000 : 200);
      while (Date.now() < deadline && tier.stats().entries !== 10) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(tier.stats().entries).toBe(sweeper ? 10 : 15);
    }
  });

  it('does not write on a hit: access times are batched', async () => {
    const h = await harness();
    h.tier.set('atime.test/1', fx.entry('atime.test/1'));
    await h.settle();
    for (let i = 0; i < 100; i++) h.tier.get('atime.test/1');
    expect(h.tier.stats().pendingWrites).toBe(0);
    await h.tier.flushAccessTimes();
    expect(h.tier.stats().pendingWrites).toBe(0);
  });
});

describe('LmdbTier: byte budget on disk', () => {
  it('holds the budget and keeps the data file within it (plus 10 %) while 10× maxBytes pass through', async () => {
    const maxBytes = 4 * MiB;
    const h = await harness({ chunkSize: 128 * 1024 }, maxBytes);
    let written = 0;
    for (let i = 0; written < 10 * maxBytes; i++) {
      const size = 20_000 + ((i * 104_729) % 580_000);
      const entry = fx.entry(`disk.test/${i}`, { body: size });
      written += recordSize(entry);
      h.tier.set(`disk.test/${i}`, entry);
      clock.advance(1);
      if (i % 8 === 7) await h.settle();
    }
    await h.settle();
    const stats = h.tier.stats();
    const report = h.tier.checkIntegrity();
    expect(report.problems).toEqual([]);
    expect(stats.bytes).toBeLessThanOrEqual(maxBytes);
    expect(report.bytes).toBe(stats.bytes);
    expect(stats.writeFailures).toBe(0);
    const fileSize = statSync(join(h.path, 'data.mdb')).size;
    expect(fileSize).toBeLessThanOrEqual(1.1 * maxBytes); // lmdb/space.ts: FILE_MARGIN
    expect(stats.fileBytes).toBeLessThanOrEqual(fileSize);
  });

  it('treats mapSize as a starting size: lmdb-js grows the map, so a tiny one does not fail writes', async () => {
    const h = await harness({ mapSize: 64 * 1024 });
    for (let i = 0; i < 12; i++) h.tier.set(`map.test/${i}`, fx.entry(`map.test/${i}`, { body: 300_000 }));
    await h.settle();
    expect(h.tier.stats()).toMatchObject({ entries: 12, writeFailures: 0 });
  });
});

describe('LmdbTier: damaged data', () => {
  it('a record that does not decode, or lacks a chunk, is a miss: deleted, counted and logged', async () => {
    const h = await harness();
    const keys = ['bad.test/garbage', 'bad.test/truncated', 'bad.test/flipped', 'bad.test/version', 'bad.test/wrong-key', 'bad.test/no-chunk'];
    for (const key of [...keys, 'bad.test/fine']) h.tier.set(key, fx.entry(key, { body: key.endsWith('no-chunk') ? 600_000 : 3_000 }));
    await h.settle();
    await h.withRaw((raw) => {
      const value = (key: string): Buffer => raw.meta.getBinary(storageKey(key)) as Buffer;
      raw.env.transactionSync(() => {
        raw.meta.putSync(storageKey('bad.test/garbage'), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]));
        raw.meta.putSync(storageKey('bad.test/truncated'), value('bad.test/truncated').subarray(0, 40));
        const flipped = Buffer.from(value('bad.test/flipped'));
        flipped.writeUInt8(flipped.readUInt8(flipped.length - 5) ^ 0x20, flipped.length - 5);
        raw.meta.putSync(storageKey('bad.test/flipped'), flipped);
        const version = Buffer.from(value('bad.test/version'));
        version[2] = FORMAT_VERSION + 1;
        raw.meta.putSync(storageKey('bad.test/version'), version);
        raw.meta.putSync(storageKey('bad.test/wrong-key'), value('bad.test/fine'));
        raw.bodies.removeSync([bodyIdOf(raw, 'bad.test/no-chunk'), 2]);
      });
    });
    for (const key of keys) expect(h.tier.get(key), key).toBeUndefined();
    expect(h.tier.get('bad.test/fine')?.kind).toBe('entry');
    expect(h.tier.stats().corruptRecords).toBe(keys.length);
    await h.settle();
    expect(h.tier.keys('bad.test/')).toEqual(['bad.test/fine']);
    expect(h.tier.stats().entries).toBe(1);
    expect(h.log.lines.filter((l) => l.level === 'warn' && l.msg.includes('unreadable record'))).toHaveLength(keys.length);
    // Housekeeping was intact, so the removals left the accounting exact.
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('a byte range reads only the chunks it covers; a chunk lost later fails the read and the record', async () => {
    const h = await harness({ chunkSize: 256 * 1024 });
    const source = partsBody(5 * MiB);
    const whole = bodyBytes(source);
    h.tier.set('range.test/file', fx.entry('range.test/file', { body: source }));
    await h.settle();
    await h.withRaw((raw) => {
      raw.bodies.removeSync([bodyIdOf(raw, 'range.test/file'), 5]);
    });
    const got = entryOf(h.tier, 'range.test/file');
    const start = 10 * 256 * 1024 + 100;
    expect(bodyBytes(got.body, start, start + 300_000).equals(whole.subarray(start, start + 300_000))).toBe(true);
    expect(bodyBytes(got.body, 0, 5 * 256 * 1024).equals(whole.subarray(0, 5 * 256 * 1024))).toBe(true);
    expect(() => bodyBytes(got.body, 5 * 256 * 1024 - 10, 5 * 256 * 1024 + 10)).toThrow(MissingChunkError);
    await new Promise((resolve) => setImmediate(resolve));
    await h.settle();
    expect(h.tier.stats().corruptRecords).toBe(1);
    expect(h.tier.get('range.test/file')).toBeUndefined();
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('clears itself when the stored format version differs', async () => {
    const h = await harness();
    for (let i = 0; i < 5; i++) h.tier.set(`format.test/${i}`, fx.entry(`format.test/${i}`));
    await h.settle();
    await h.withRaw((raw) => {
      raw.info.putSync(INFO.format, FORMAT_VERSION + 1);
    });
    expect(h.tier.stats()).toMatchObject({ entries: 0, bytes: 0 });
    expect(h.tier.get('format.test/1')).toBeUndefined();
    expect(h.tier.keys('')).toEqual([]);
    expect(h.log.lines.some((l) => l.level === 'warn' && l.msg.includes('format version'))).toBe(true);
    h.tier.set('format.test/new', fx.entry('format.test/new'));
    await h.settle();
    await h.withRaw((raw) => {
      expect(raw.info.get(INFO.format)).toBe(FORMAT_VERSION);
    });
    expect(h.tier.get('format.test/new')?.kind).toBe('entry');
  });

  it('a garbage lock file is rebuilt by LMDB: the entries are kept', async () => {
    const h = await harness();
    h.tier.set('lock.test/1', fx.entry('lock.test/1'));
    await h.settle();
    await h.tier.close();
    writeFileSync(join(h.path, 'lock.mdb'), Buffer.alloc(8192, 0xab));
    const tier = await h.reopen();
    expect(tier.get('lock.test/1')?.kind).toBe('entry');
    expect(h.log.lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it.each([
    ['a data file of garbage', (path: string) => writeFileSync(join(path, 'data.mdb'), Buffer.alloc(64 * 1024, 0xab))],
    ['a truncated data file', (path: string) => writeFileSync(join(path, 'data.mdb'), 'garbage')],
    [
      'a file where the directory should be',
      (path: string) => {
        rmSync(path, { recursive: true });
        writeFileSync(path, 'not a directory');
      },
    ],
  ])('an environment that cannot be opened (%s) is moved aside and the tier starts empty', async (_, damage) => {
    const temp = tempDir();
    const path = join(temp.dir, 'env');
    const log = recordingLogger();
    const options: LmdbTierOptions = { path, maxBytes: MiB, now: clock.now, log, sweepIntervalMs: 0, atimeFlushMs: 0 };
    try {
      let tier = new LmdbTier(options);
      tier.set('broken.test/1', fx.entry('broken.test/1'));
      await tier.close();
      damage(path);
      tier = new LmdbTier(options);
      expect(tier.stats().entries).toBe(0);
      tier.set('broken.test/2', fx.entry('broken.test/2'));
      await tier.flushed();
      expect(tier.get('broken.test/2')?.kind).toBe('entry');
      await tier.close();
      const aside = readdirSync(temp.dir).filter((name) => name.startsWith('env.broken-'));
      expect(aside).toHaveLength(1);
      expect(log.lines.filter((l) => l.level === 'error' && l.msg.includes('moving it aside'))).toHaveLength(1);
    } finally {
      temp.remove();
    }
  });
});

describe('LmdbTier: other processes', () => {
  let build: ChildBuild;
  const script = fileURLToPath(new URL('./lmdb-child.mjs', import.meta.url));

  beforeAll(() => {
    build = buildTierForChildren();
  });

  afterAll(() => {
    build?.remove();
  });

  interface Child {
    process: ChildProcessWithoutNullStreams;
    next(): Promise<Record<string, unknown>>;
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  }

  function child(mode: string, path: string, fileSizeLimitKiB?: number): Child {
    const env = { ...process.env, TIER_MODULE: build.tierModule };
    const proc =
      fileSizeLimitKiB === undefined
        ? spawn(process.execPath, [script, mode, path], { env })
        : spawn('/bin/bash', ['-c', `ulimit -f ${fileSizeLimitKiB} && exec "$0" "$@"`, process.execPath, script, mode, path], { env });
    const queue: Array<Record<string, unknown>> = [];
    const waiting: Array<(m: Record<string, unknown>) => void> = [];
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as Record<string, unknown>;
      const resolve = waiting.shift();
      if (resolve) resolve(message);
      else queue.push(message);
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
      proc.on('exit', (code, signal) => resolve({ code, signal, stderr })),
    );
    return {
      process: proc,
      exited,
      next: () =>
        new Promise((resolve, reject) => {
          const queued = queue.shift();
          if (queued) return resolve(queued);
          waiting.push(resolve);
          void exited.then((e) => reject(new Error(`child exited (${e.code ?? e.signal}) before replying: ${e.stderr}`)));
        }),
    };
  }

  it('an entry written by one process is read by another that has the environment open', async () => {
    clock.time = Date.now(); // the child's clock is the real one
    const h = await harness({ now: Date.now });
    const mine = fx.entry('parent.test/p', { body: 200_000 });
    h.tier.set('parent.test/p', mine);
    await h.settle();
    const c = child('share', h.path);
    const reply = (await c.next()) as { parentEntry: { digest: string; header: string }; written: Record<string, string> };
    expect(reply.parentEntry).toMatchObject({ digest: digest(mine.body), header: digest(mine.body) });
    for (const [key, sha] of Object.entries(reply.written)) {
      const got = entryOf(h.tier, key);
      expect(digest(got.body)).toBe(sha);
      expect(got.meta.headers['x-body-sha256']).toBe(sha);
    }
    expect(h.tier.keysForTag('shared').sort()).toEqual(Object.keys(reply.written).sort());
    expect(h.tier.keys('child.test/').sort()).toEqual(Object.keys(reply.written).sort());
    expect(h.tier.stats().entries).toBe(4); // accounting is shared, not per process
    c.process.stdin.write('exit\n');
    expect(await c.next()).toMatchObject({ closed: true, unhandled: [] });
    expect((await c.exited).code).toBe(0);
    expect(h.tier.checkIntegrity().problems).toEqual([]);
  });

  it('kill -9 during a write burst never leaves a half-written entry (inline or chunked)', async () => {
    const temp = tempDir();
    const path = join(temp.dir, 'env');
    try {
      let inlineSeen = 0;
      for (let round = 0; round < 3; round++) {
        const c = child('burst', path);
        for (let commits = 0; commits < 2 + round; commits++) await c.next();
        await new Promise((resolve) => setTimeout(resolve, 5 + round * 7));
        c.process.kill('SIGKILL');
        expect((await c.exited).signal).toBe('SIGKILL');

        const log = recordingLogger();
        const tier = new LmdbTier({ path, maxBytes: 8 * MiB, now: Date.now, log, sweepIntervalMs: 0, atimeFlushMs: 0 });
        try {
          expect(log.lines.filter((l) => l.level !== 'info')).toEqual([]);
          expect(tier.checkIntegrity().problems).toEqual([]);
          const keys = tier.keys('burst.test/');
          expect(keys.length).toBeGreaterThan(0);
          let inline = 0;
          for (const key of keys) {
            const got = entryOf(tier, key);
            expect(digest(got.body), key).toBe(got.meta.headers['x-body-sha256']);
            if (got.body.length <= INLINE_LIMIT) inline++;
          }
          inlineSeen += inline;
          expect(tier.stats()).toMatchObject({ corruptRecords: 0 });
          expect(tier.stats().bytes).toBeLessThanOrEqual(8 * MiB);
        } finally {
          await tier.close();
        }
      }
      expect(inlineSeen).toBeGreaterThan(0); // records with inline bodies went through the kill too
    } finally {
      temp.remove();
    }
  });

  it.runIf(process.platform === 'linux')('writes the file cannot grow for (a file-size limit) are declined before LMDB writes a page, counted, logged once per pause, and break nothing', async () => {
    const temp = tempDir();
    const path = join(temp.dir, 'env');
    mkdirSync(path);
    try {
      const c = child('fail', path, 1024);
      const result = (await c.next()) as {
        stats: { writeFailures: number; writesDeclined: number; diskFull: number; entries: number; fileBytes: number };
        earlyOk: boolean;
        hiddenAfterFailedDelete: boolean;
        bigFound: number;
        threw: string | null;
        unhandled: string[];
        lines: Array<{ level: string; msg: string }>;
      };
      expect((await c.exited).code).toBe(0);
      expect(result.threw).toBeNull();
      expect(result.unhandled).toEqual([]);
      // The reservation of file space met the limit (EFBIG) first: the tier capped its file there, so every
      // 1 MB write was declined before LMDB tried to write it (no failed commit at all), and writes paused.
      // The delete fits in the file and commits; close() finishes.
      expect(result.stats.writeFailures).toBe(0);
      expect(result.stats.diskFull).toBeGreaterThanOrEqual(1);
      expect(result.stats.writesDeclined).toBeGreaterThanOrEqual(18);
      expect(result.stats.fileBytes).toBeLessThanOrEqual(1024 * 1024);
      expect(result.stats.entries).toBe(4);
      expect(result.earlyOk).toBe(true);
      expect(result.bigFound).toBe(0);
      expect(result.hiddenAfterFailedDelete).toBe(true);
      const errors = result.lines.filter((l) => l.level === 'error').map((l) => l.msg);
      expect(errors.length).toBeGreaterThanOrEqual(1);
      expect(errors.length).toBeLessThanOrEqual(3); // one per pause, not one per write
      for (const msg of errors) expect(msg).toMatch(/no room on disk/);

      // Without the limit the environment opens, consistent, with the early entries.
      const tier = new LmdbTier({ path, maxBytes: 8 * MiB, now: Date.now, log: recordingLogger(), sweepIntervalMs: 0, atimeFlushMs: 0 });
      try {
        expect(tier.checkIntegrity().problems).toEqual([]);
        expect(tier.keys('early.test/').sort()).toEqual(['early.test/1', 'early.test/2', 'early.test/3', 'early.test/4']);
      } finally {
        await tier.close();
      }
    } finally {
      temp.remove();
    }
  });
});
