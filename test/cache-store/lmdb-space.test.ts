/**
 * The disk tier's space on disk (issue 11, items 2 and 3): a full filesystem never reaches LMDB's page writes
 * (lmdb-js aborted the process there, see cache-store/lmdb/space.ts), a full map takes the same path, and the
 * data file stays within --disk-max while many times the budget is written through.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CacheEntry } from '../../cache-store/entry.js';
import { LmdbTier, type LmdbTierOptions } from '../../cache-store/lmdb/lmdb-tier.js';
import { buildTierForChildren, type ChildBuild } from './child-build.js';
import { digest, Fixtures, recordingLogger, TestClock } from './fixtures.js';
import { openRaw, tempDir } from './lmdb-harness.js';
import { canMountTmpfs, mountTmpfs, skipWithoutTmpfs, type Tmpfs } from '../helpers/tmpfs.js';

const MiB = 1024 * 1024;
const clock = new TestClock();
const fx = new Fixtures(clock);
/**
 * How far the data file may pass --disk-max: LMDB places a large body's chunk on contiguous pages, and when the
 * free pages are too scattered for one it extends the file; the tier then keeps more of the budget free. The
 * same margin is documented in docs/disk-tier.md.
 */
const FILE_MARGIN = 0.1;

const opened: Array<{ tier: LmdbTier; remove(): void }> = [];

function openTier(maxBytes: number, overrides: Partial<LmdbTierOptions> = {}, path?: string): { tier: LmdbTier; path: string; log: ReturnType<typeof recordingLogger> } {
  const temp = path === undefined ? tempDir() : undefined;
  const dir = path ?? join((temp as { dir: string }).dir, 'env');
  const log = recordingLogger();
  const tier = new LmdbTier({ path: dir, maxBytes, now: clock.now, log, sweepIntervalMs: 0, atimeFlushMs: 0, ...overrides });
  opened.push({ tier, remove: () => temp?.remove() });
  return { tier, path: dir, log };
}

afterEach(async () => {
  for (const { tier, remove } of opened.splice(0)) {
    await tier.close();
    remove();
  }
});

function fileSize(path: string): number {
  return statSync(join(path, 'data.mdb')).size;
}

describe('LmdbTier: the data file holds the budget', () => {
  it('8,000 objects of 1 KiB through a 4 MiB budget: the file stays within --disk-max, pages are what is counted', async () => {
    const maxBytes = 4 * MiB;
    const { tier, path } = openTier(maxBytes);
    for (let i = 0; i < 8_000; i++) {
      tier.set(`small.test/${i}`, fx.entry(`small.test/${i}`, { body: 1024 }));
      clock.advance(1);
      if (i % 500 === 499) await tier.flushed();
    }
    await tier.flushed();
    const stats = tier.stats();
    expect(stats.writeFailures).toBe(0);
    expect(stats.evictions).toBeGreaterThan(6_000);
    expect(stats.usedBytes).toBeLessThanOrEqual(maxBytes);
    expect(stats.fileBytes).toBe(fileSize(path));
    expect(fileSize(path)).toBeLessThanOrEqual(maxBytes * (1 + FILE_MARGIN));
    expect(tier.checkIntegrity().problems).toEqual([]);
    // What is left is readable, the newest included.
    expect(tier.get('small.test/7999')?.kind).toBe('entry');
  });

  it('10-600 KB objects, eight times the budget written through: the file stays within --disk-max', async () => {
    const maxBytes = 16 * MiB;
    const { tier, path } = openTier(maxBytes);
    let written = 0;
    for (let i = 0; written < 8 * maxBytes; i++) {
      const size = 10_000 + ((i * 7919 * 104_729) % 590_000);
      tier.set(`large.test/${i}`, fx.entry(`large.test/${i}`, { body: size }));
      written += size;
      clock.advance(1);
      if (i % 8 === 7) await tier.flushed();
    }
    await tier.flushed();
    const stats = tier.stats();
    expect(stats.writeFailures).toBe(0);
    expect(stats.bytes).toBeLessThanOrEqual(maxBytes);
    expect(stats.usedBytes).toBeLessThanOrEqual(maxBytes);
    expect(fileSize(path)).toBeLessThanOrEqual(maxBytes * (1 + FILE_MARGIN));
    expect(tier.checkIntegrity().problems).toEqual([]);
  });

  it('an environment larger than a new, smaller budget keeps its file (LMDB never shrinks it), says so, and holds the new budget inside it', async () => {
    const first = openTier(16 * MiB);
    for (let i = 0; i < 40; i++) first.tier.set(`shrink.test/${i}`, fx.entry(`shrink.test/${i}`, { body: 300_000 }));
    await first.tier.flushed();
    await first.tier.close();
    const before = fileSize(first.path);
    expect(before).toBeGreaterThan(8 * MiB);

    const maxBytes = 4 * MiB;
    const { tier, log } = openTier(maxBytes, {}, first.path);
    expect(log.lines.some((l) => l.level === 'warn' && /larger than the disk budget/.test(l.msg))).toBe(true);
    for (let i = 0; i < 20; i++) tier.set(`shrunk.test/${i}`, fx.entry(`shrunk.test/${i}`, { body: 200_000 }));
    await tier.flushed();
    const stats = tier.stats();
    expect(stats.usedBytes).toBeLessThanOrEqual(maxBytes);
    expect(stats.bytes).toBeLessThanOrEqual(maxBytes);
    expect(fileSize(first.path)).toBe(before); // neither shrunk nor grown
    expect(tier.get('shrunk.test/19')?.kind).toBe('entry');
    expect(tier.checkIntegrity().problems).toEqual([]);
  });

  it('a full map (no free page: a reader pins them) is not outgrown: writes are declined, counted and paused, and resume once pages are free', async () => {
    const maxBytes = 2 * MiB;
    const { tier, path } = openTier(maxBytes, { maxBatchBytes: 128 * 1024 });
    const pinnedLimit = maxBytes * (1 + FILE_MARGIN) + 2 * 128 * 1024;
    const put = async (prefix: string, count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        tier.set(`${prefix}/${i}`, fx.entry(`${prefix}/${i}`, { body: 60_000 }));
        clock.advance(1);
        await tier.flushed();
      }
    };
    await put('map.test/a', 40); // the budget is full: writes evict from here on
    // A read transaction in another handle on the environment: pages freed after its snapshot stay in use.
    const raw = openRaw(path);
    const reader = raw.env.useReadTransaction();
    try {
      await put('map.test/b', 60);
      const full = tier.stats();
      expect(full.mapFull).toBeGreaterThan(0);
      expect(full.writesDeclined).toBeGreaterThan(0);
      // Past the margin writes pause: the file passes it by one transaction at most.
      expect(fileSize(path)).toBeLessThanOrEqual(pinnedLimit);
    } finally {
      reader.done();
      await raw.env.close();
    }
    // Once the pause is over the freed pages are reusable: writes are stored again, within the map.
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const stored = fx.entry('map.test/after', { body: 60_000 });
    expect(tier.set('map.test/after', stored)).toBe(true);
    await tier.flushed();
    expect(digest((tier.get('map.test/after') as CacheEntry).body)).toBe(digest(stored.body));
    expect(fileSize(path)).toBeLessThanOrEqual(pinnedLimit);
    expect(tier.checkIntegrity().problems).toEqual([]);
  });
});

skipWithoutTmpfs('the full-filesystem tier test');

describe.runIf(canMountTmpfs)('LmdbTier on a full filesystem (a 24 MiB tmpfs)', () => {
  let build: ChildBuild;
  let tmpfs: Tmpfs | undefined;
  let mount: string;
  const script = fileURLToPath(new URL('./lmdb-child.mjs', import.meta.url));

  beforeAll(() => {
    build = buildTierForChildren();
    tmpfs = mountTmpfs('24m');
    mount = tmpfs.path;
  });

  afterAll(() => {
    build?.remove();
    tmpfs?.unmount();
  });

  /** Writes zeros to `file` until the filesystem refuses a single block. */
  function fillToLastBlock(file: string): void {
    const fd = openSync(file, 'w');
    const block = Buffer.alloc(64 * 1024);
    try {
      for (let size = block.length; size >= 512; ) {
        try {
          writeSync(fd, block, 0, size);
        } catch {
          size /= 2;
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  it('writes on a disk without a free block neither crash the process nor damage anything; they resume when space is freed', async () => {
    const path = join(mount, 'env');
    mkdirSync(path);
    const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [script, 'full', path], { env: { ...process.env, TIER_MODULE: build.tierModule } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async (): Promise<Record<string, unknown>> => {
      const line = await replies.next();
      if (line.done) {
        const e = await exited;
        throw new Error(`child exited (${e.code ?? e.signal}) before replying: ${stderr.slice(-1500)}`);
      }
      return JSON.parse(line.value) as Record<string, unknown>;
    };
    try {
      expect(await next()).toMatchObject({ ready: true });
      fillToLastBlock(join(mount, 'filler'));
      child.stdin.write('filled\n');
      const full = (await next()) as { whileFull: { diskFull: number; writesDeclined: number; writeFailures: number }; seedsIntact: boolean; integrity: string[]; unhandled: string[] };
      expect(full.unhandled).toEqual([]);
      expect(full.seedsIntact).toBe(true);
      expect(full.integrity).toEqual([]);
      expect(full.whileFull.diskFull).toBeGreaterThan(0);
      expect(full.whileFull.writesDeclined + full.whileFull.writeFailures).toBeGreaterThan(0);

      rmSync(join(mount, 'filler'));
      child.stdin.write('freed\n');
      const after = (await next()) as { after: { fileBytes: number }; stored: number; fileBefore: number; seedsIntact: boolean; integrity: string[]; unhandled: string[] };
      expect(after.stored).toBeGreaterThan(0);
      expect(after.after.fileBytes).toBeGreaterThan(after.fileBefore);
      expect(after.seedsIntact).toBe(true);
      expect(after.integrity).toEqual([]);
      expect(after.unhandled).toEqual([]);
      expect(await next()).toMatchObject({ closed: true });
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(stderr).not.toMatch(/corrupted|malloc|Assertion/);
    } finally {
      child.kill('SIGKILL');
      rmSync(join(mount, 'filler'), { force: true });
      rmSync(path, { recursive: true, force: true });
    }
  }, 40_000);
});
