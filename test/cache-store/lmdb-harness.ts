/** Opening LmdbTier in temp directories for tests, and reaching into its environment directly. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { DB, storageKey } from '../../cache-store/lmdb/layout.js';
import { LmdbTier, type LmdbTierOptions } from '../../cache-store/lmdb/lmdb-tier.js';
import { recordingLogger } from './fixtures.js';
import type { TierContext, TierHarness } from './tier-suite.js';

export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'edgecache-lmdb-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface LmdbHarness extends TierHarness {
  readonly tier: LmdbTier;
  readonly path: string;
  readonly log: ReturnType<typeof recordingLogger>;
  /** Closes the tier, runs `edit` on the raw environment, and opens the tier again. */
  withRaw(edit: (raw: RawEnv) => void | Promise<void>): Promise<void>;
  /** Closes and reopens the tier (same path and options). */
  reopen(overrides?: Partial<LmdbTierOptions>): Promise<LmdbTier>;
}

export interface RawEnv {
  env: RootDatabase;
  meta: Database<Buffer, string>;
  bodies: Database<Buffer, [number, number]>;
  info: Database<unknown, string>;
}

export function openRaw(path: string): RawEnv {
  const env = open({ path, maxDbs: 16, eventTurnBatching: false });
  return {
    env,
    meta: env.openDB<Buffer, string>(DB.meta, { encoding: 'binary' }),
    bodies: env.openDB<Buffer, [number, number]>(DB.bodies, { encoding: 'binary' }),
    info: env.openDB<unknown, string>(DB.info, {}),
  };
}

export async function lmdbHarness(context: TierContext, overrides: Partial<LmdbTierOptions> = {}): Promise<LmdbHarness> {
  const temp = tempDir();
  const path = join(temp.dir, 'env');
  const log = recordingLogger();
  const options: LmdbTierOptions = {
    path,
    maxBytes: context.maxBytes,
    now: context.now,
    log,
    sweepIntervalMs: 0,
    atimeFlushMs: 0,
    ...overrides,
  };
  let tier = new LmdbTier(options);
  const h: LmdbHarness = {
    get tier() {
      return tier;
    },
    path,
    log,
    async settle() {
      await tier.flushAccessTimes();
      await tier.flushed();
    },
    sweep: () => tier.sweep(),
    async withRaw(edit) {
      await tier.close();
      const raw = openRaw(path);
      try {
        await edit(raw);
      } finally {
        await raw.env.close();
      }
      tier = new LmdbTier(options);
    },
    async reopen(more = {}) {
      await tier.close();
      Object.assign(options, more);
      tier = new LmdbTier(options);
      return tier;
    },
    async corrupt(key) {
      await h.withRaw(async (raw) => {
        await raw.meta.put(storageKey(key), Buffer.from('this is not a record'));
      });
    },
    async dispose() {
      await tier.close();
      temp.remove();
    },
  };
  return h;
}
