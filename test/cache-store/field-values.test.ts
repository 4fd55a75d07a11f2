/**
 * Shared field values (cache-store/field-values.ts): stored fields keep their values exactly, whatever is shared;
 * the table of shared values stays bounded. (That the strings are shared shows in memory, not in values:
 * `npm run bench:entry-memory`, docs/benchmarks.md.)
 */
import { describe, expect, it } from 'vitest';
import { shareFieldValues } from '../../cache-store/field-values.js';
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
        { ageBase: 0, lifetime: 1000, freshUntil: 1000, staleWhileRevalidate: 0, staleIfError: 0, mustRevalidate: false, sharedMaxAge: false, hasValidator: false },
        { key: `k${i}`, primaryKey: `k${i}`, status: 200, headers: { 'last-modified': `v${i}`, 'content-type': 'text/plain' }, storedAt: 0, vary: null, tags: [], deletableAt: Infinity },
      );
      expect(meta.headers).toEqual({ 'last-modified': `v${i}`, 'content-type': 'text/plain' });
      expect(meta.tags).toEqual([]);
    }
  });
});
