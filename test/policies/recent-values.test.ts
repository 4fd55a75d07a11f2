/**
 * The ring of last-computed values that parseCacheControl and parseHttpDate keep in front of their work
 * (policies/http/recent-values.ts): what it remembers, what it forgets, and that an empty slot never answers.
 */
import { describe, expect, it } from 'vitest';
import { RecentValues } from '../../policies/http/recent-values.js';
import { parseCacheControl } from '../../policies/http/cache-control.js';
import { parseHttpDate } from '../../policies/http/http-date.js';

describe('RecentValues', () => {
  it('answers the texts it was given, the last `size` of them, and nothing else', () => {
    const recent = new RecentValues<number>(3);
    expect(recent.get('')).toBeUndefined();
    expect(recent.get('a')).toBeUndefined();
    recent.set('a', 1);
    recent.set('b', 2);
    recent.set('c', 3);
    expect([recent.get('a'), recent.get('b'), recent.get('c')]).toEqual([1, 2, 3]);
    recent.set('d', 4);
    // The oldest went.
    expect([recent.get('a'), recent.get('b'), recent.get('c'), recent.get('d')]).toEqual([undefined, 2, 3, 4]);
    expect(recent.get('')).toBeUndefined();
    // Texts are compared by value, not by identity.
    expect(recent.get(['d'].join(''))).toBe(4);
  });

  it('in front of the parsers: the same answer the first time and every time after, however many texts pass', () => {
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 40; i++) {
        expect(parseCacheControl(`max-age=${i}, Public`).get('max-age')).toBe(String(i));
        expect(parseHttpDate(new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toUTCString())).toBe(Date.UTC(2026, 0, 1, 0, 0, i));
      }
    }
    expect(parseCacheControl('max-age=3').get('max-age')).toBe('3');
    expect(parseHttpDate('')).toBeUndefined();
  });
});
