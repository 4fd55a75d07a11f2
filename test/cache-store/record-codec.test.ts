/**
 * The tiers' record format (cache-store/record-codec.ts) across the change that stopped keeping `freshUntil` in
 * an entry's metadata: records still carry it (format 4 as every earlier release wrote and reads it), records
 * written without it decode, and a decoded entry's freshness comes from ageBase + lifetime whatever the record said.
 */
import { describe, expect, it } from 'vitest';
import type { CacheEntry } from '../../cache-store/entry.js';
import { decodeRecord, finishRecord, prepareRecord } from '../../cache-store/record-codec.js';
import { freshUntil } from '../../policies/http/freshness.js';
import { Fixtures, TestClock } from './fixtures.js';

const fixtures = new Fixtures(new TestClock());

function json(record: Buffer): Record<string, unknown> {
  const length = record.readUInt32LE(16);
  return JSON.parse(record.toString('utf8', 20, 20 + length)) as Record<string, unknown>;
}

/** A record as `prepareRecord` would write it, with its metadata JSON changed by `edit`. */
function recordWith(entry: CacheEntry, edit: (meta: Record<string, unknown>) => void): Buffer {
  const prepared = prepareRecord(entry.meta.key, entry, 100, 64 * 1024);
  const payload = JSON.parse(prepared.json.toString('utf8')) as { m: Record<string, unknown> };
  edit(payload.m);
  return finishRecord({ ...prepared, json: Buffer.from(JSON.stringify(payload)) }, 1, [entry.body as Buffer]);
}

describe('entry records and freshUntil', () => {
  it('still carry freshUntil (ageBase + lifetime) for readers that expect it', () => {
    const entry = fixtures.entry('codec.test/a', { body: 10 });
    expect(Object.hasOwn(entry.meta, 'freshUntil')).toBe(false);
    const record = finishRecord(prepareRecord('codec.test/a', entry, 100, 64 * 1024), 1, [entry.body as Buffer]);
    const meta = json(record).m as Record<string, number>;
    expect(meta.freshUntil).toBe(entry.meta.ageBase + entry.meta.lifetime);
  });

  it('decode without freshUntil, and ignore a freshUntil that disagrees with ageBase + lifetime', () => {
    const entry = fixtures.entry('codec.test/b', { body: 10 });
    for (const edit of [(m: Record<string, unknown>) => delete m.freshUntil, (m: Record<string, unknown>) => (m.freshUntil = 1)]) {
      const decoded = decodeRecord(recordWith(entry, edit));
      if (decoded.kind !== 'entry') throw new Error('expected an entry');
      expect(Object.hasOwn(decoded.meta, 'freshUntil')).toBe(false);
      expect(freshUntil(decoded.meta)).toBe(freshUntil(entry.meta));
      expect(decoded.meta.lifetime).toBe(entry.meta.lifetime);
    }
  });
});
