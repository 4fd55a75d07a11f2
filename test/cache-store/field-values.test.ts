/**
 * Shared field values (cache-store/field-values.ts): stored fields keep their values exactly, whatever is shared;
 * the table of shared values stays bounded. (That the strings are shared shows in memory, not in values:
 * `npm run bench:entry-memory`, docs/benchmarks.md.)
 */
import { describe, expect, it } from 'vitest';
import { compactFields, shareFieldValues } from '../../cache-store/field-values.js';
import { newEntryMeta } from '../../cache-store/entry.js';

describe('shared field values', () => {
  it('leave every value as it was: shared fields, other fields, lists and long values', () => {
    const long = `public, max-age=60, ${'x'.repeat(400)}`;
    const headers = {
      'content-type': 'application/json',
      'cache-control': long,
      etag: '"abc"',
      'set-cookie': ['a=1', 'b=2'],
      date: 'Mon, 07 Dec 2026 02:00:00 GMT',
      'x-request-id': 'r-1',
    };
    const copy = structuredClone(headers);
    expect(shareFieldValues(headers)).toBe(headers);
    expect(headers).toEqual(copy);
  });

  it('keep values right past the table size, and stored metadata carries them', () => {
    for (let i = 0; i < 10_000; i++) {
      const meta = newEntryMeta(
        { ageBase: 0, lifetime: 1000, staleWhileRevalidate: 0, staleIfError: 0, mustRevalidate: false, sharedMaxAge: false, hasValidator: false },
        { key: `k${i}`, primaryKey: `k${i}`, status: 200, headers: { 'last-modified': `v${i}`, 'content-type': 'text/plain' }, storedAt: 0, vary: null, tags: [], deletableAt: Infinity },
      );
      expect(meta.headers).toEqual({ 'last-modified': `v${i}`, 'content-type': 'text/plain' });
      expect(meta.tags).toEqual([]);
    }
  });

  it('a compact copy has every field, in order, with the same values (lists stay lists), and is a copy', () => {
    const headers = {
      'content-type': 'text/html',
      'set-cookie': ['a=1', 'b=2'],
      etag: '"0123456789abcdef"',
      'x-Odd': 'caf\u00e9 \u2603 "quoted" \\ back',
      date: 'Mon, 07 Dec 2026 02:00:00 GMT',
      'cache-control': 'max-age=60',
    };
    const copy = compactFields(headers);
    expect(copy).not.toBe(headers);
    expect(Object.keys(copy)).toEqual(Object.keys(headers));
    expect(copy).toEqual(headers);
    expect(Array.isArray(copy['set-cookie'])).toBe(true);
    copy.etag = 'changed';
    expect(headers.etag).toBe('"0123456789abcdef"');
  });

  it('stored metadata of a fill holds a compact copy, and the caller keeps its own object', () => {
    const headers: Record<string, string> = { 'content-type': 'text/plain', etag: '"x"' };
    const meta = newEntryMeta(
      { ageBase: 0, lifetime: 1000, staleWhileRevalidate: 0, staleIfError: 0, mustRevalidate: false, sharedMaxAge: false, hasValidator: true },
      { key: 'k', primaryKey: 'k', status: 200, headers, storedAt: 0, vary: null, tags: [], deletableAt: Infinity },
    );
    expect(meta.headers).toEqual(headers);
    headers.etag = '"y"';
    expect(meta.headers.etag).toBe('"x"');
  });
});
