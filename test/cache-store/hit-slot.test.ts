/** The hit slot of stored metadata (cache-store/entry.ts HIT_SLOT): per meta object, never copied or stored. */
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { HIT_SLOT } from '../../cache-store/entry.js';
import { decodeRecord, finishRecord, prepareRecord } from '../../cache-store/record-codec.js';
import { storedFields, writeHitHead } from '../../proxy/http/hit-head.js';
import { Fixtures, TestClock } from './fixtures.js';

describe('the hit slot of stored metadata', () => {
  const fixtures = new Fixtures(new TestClock());

  it('is filled by the first hit and reused by the next ones', () => {
    const entry = fixtures.entry('example.test/a', { body: 10 });
    expect(entry.meta[HIT_SLOT]).toBeUndefined();
    const first = storedFields(entry);
    expect(entry.meta[HIT_SLOT]).toBe(first);
    expect(storedFields(entry)).toBe(first);
  });

  it('is not carried by a copy: a copy with other fields gets heads of its own', () => {
    const entry = fixtures.entry('example.test/b', { body: 10 });
    storedFields(entry);
    const copy = { ...entry, meta: { ...entry.meta, headers: { ...entry.meta.headers, 'set-cookie': 'id=1' } } };
    expect(copy.meta[HIT_SLOT]).toBeUndefined();
    expect(storedFields(copy).base).toContain('set-cookie');
    expect(storedFields(entry).base).not.toContain('set-cookie');
    // The stored entry's head is untouched by the copy's.
    const written: unknown[] = [];
    const res = { writeHead: (...args: unknown[]) => written.push(args), socket: null } as unknown as Parameters<typeof writeHitHead>[0];
    writeHitHead(res, entry, Date.now());
    expect(JSON.stringify(written)).not.toContain('set-cookie');
  });

  it('stays out of copies of copies: a spread meta gets its own slot on its first hit, and a spread of that has none', () => {
    const entry = fixtures.entry('example.test/f', { body: 10 });
    const copy = { ...entry, meta: { ...entry.meta } };
    storedFields(copy);
    expect(copy.meta[HIT_SLOT]).toBeDefined();
    const second = { ...copy, meta: { ...copy.meta, headers: { ...copy.meta.headers, 'set-cookie': 'id=2' } } };
    expect(second.meta[HIT_SLOT]).toBeUndefined();
    expect(storedFields(second).base).toContain('set-cookie');
  });

  it('is neither serialized nor decoded by the tiers', () => {
    const entry = fixtures.entry('example.test/c', { body: 10 });
    storedFields(entry);
    expect(JSON.stringify(entry.meta)).not.toContain('hit');
    const encoded = finishRecord(prepareRecord('example.test/c', entry, 100, 64 * 1024), 1, [entry.body as Buffer]);
    const decoded = decodeRecord(encoded);
    expect(decoded.kind === 'entry' && decoded.meta[HIT_SLOT]).toBeUndefined();
  });

  it('filling it changes no hidden class: filled and empty metas stay one shape, in fast mode', () => {
    v8.setFlagsFromString('--allow-natives-syntax');
    const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    const fast = new Function('a', 'return %HasFastProperties(a)') as (a: object) => boolean;
    const hit = fixtures.entry('example.test/d', { body: 10 });
    const notHit = fixtures.entry('example.test/e', { body: 10 });
    expect(sameMap(hit.meta, notHit.meta)).toBe(true);
    storedFields(hit);
    expect(fast(hit.meta)).toBe(true);
    expect(sameMap(hit.meta, notHit.meta)).toBe(true);
  });
});
