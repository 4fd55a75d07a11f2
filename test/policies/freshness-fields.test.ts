/**
 * How the response fields that decide freshness are read, as pure functions: HTTP-dates (RFC 9110 §5.6.7), Age
 * (RFC 9111 §5.1), Expires (§5.3), targeted cache-control fields (RFC 9213), and which statuses may be stored
 * (RFC 9111 §3, §5.2.2.3). test/proxy/explicit-freshness.test.ts checks the same on the wire.
 */
import { describe, expect, it } from 'vitest';
import { Freshness, type PolicyResponse } from '../../policies/http/freshness.js';
import { parseCacheControl } from '../../policies/http/cache-control.js';
import { parseHttpDate } from '../../policies/http/http-date.js';
import { targetedCacheControl, targetedDirectives, targetedFieldList } from '../../policies/http/targeted-cache-control.js';

const T = Date.UTC(2026, 0, 10, 12, 0, 0);

describe('HTTP-date (RFC 9110 §5.6.7)', () => {
  const expected = Date.UTC(1994, 10, 6, 8, 49, 37);

  it('reads IMF-fixdate and the two obsolete forms, names in any case', () => {
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(expected);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', T)).toBe(expected);
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994')).toBe(expected);
    expect(parseHttpDate('Sun Nov 16 08:49:37 1994')).toBe(Date.UTC(1994, 10, 16, 8, 49, 37));
    expect(parseHttpDate('SUN, 06 NOV 1994 08:49:37 gmt')).toBe(expected);
  });

  it('reads a date the same the second time (remembered) and an obsolete one by the time asked (never remembered)', () => {
    for (let i = 0; i < 3; i++) expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(expected);
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:38 GMT')).toBe(expected + 1000);
    // The century of a two-digit year depends on when it is read.
    expect(parseHttpDate('Thursday, 18-Aug-50 02:01:18 GMT', T)).toBe(Date.UTC(2050, 7, 18, 2, 1, 18));
    expect(parseHttpDate('Thursday, 18-Aug-50 02:01:18 GMT', Date.UTC(1990, 0, 1))).toBe(Date.UTC(1950, 7, 18, 2, 1, 18));
    expect(parseHttpDate('Thu, 31 Feb 2050 02:01:18 GMT')).toBeUndefined();
    expect(parseHttpDate('Thu, 31 Feb 2050 02:01:18 GMT')).toBeUndefined();
  });

  it('puts a two-digit year more than 50 years ahead in the past century', () => {
    expect(parseHttpDate('Thursday, 18-Aug-50 02:01:18 GMT', T)).toBe(Date.UTC(2050, 7, 18, 2, 1, 18));
    expect(parseHttpDate('Thursday, 18-Aug-80 02:01:18 GMT', T)).toBe(Date.UTC(1980, 7, 18, 2, 1, 18));
  });

  it('refuses everything else', () => {
    for (const value of [
      'Thu, 18 Aug 2050 02:01:18 UTC',
      'Thu, 18 Aug 2050 02:01:18 AEST',
      'Thu, 18 Aug 50 02:01:18 GMT',
      'Thu 18 Aug 2050 02:01:18 GMT',
      'Thu, 18  Aug  2050 02:01:18 GMT',
      'Thu, 18-Aug-2050 02:01:18 GMT',
      'Thu, 18 Aug 2050 02.01.18 GMT',
      'Thu, 18 Aug 2050 2:01:18 GMT',
      'Thu, 31 Feb 2050 02:01:18 GMT',
      'Thu, 18 Aug 2050 25:01:18 GMT',
      '0',
      '',
      '2050-08-18T02:01:18Z',
    ]) {
      expect(parseHttpDate(value), value).toBeUndefined();
    }
    expect(parseHttpDate(['Thu, 18 Aug 2050 02:01:18 GMT', 'Thu, 18 Aug 2050 02:01:19 GMT'])).toBeUndefined();
  });
});

describe('targeted cache-control fields (RFC 9213)', () => {
  it('reads a Structured Field dictionary of directives; unknown ones are left out', () => {
    expect(targetedDirectives('max-age=3600')).toBe('max-age=3600');
    expect(targetedDirectives('foobar, max-age=60, stale-if-error=30, must-revalidate')).toBe('max-age=60, stale-if-error=30, must-revalidate');
    expect(targetedDirectives('no-store')).toBe('no-store');
    expect(targetedDirectives('private, no-cache')).toBe('no-cache, private');
    expect(targetedDirectives('max-age=99999999999')).toBe('max-age=2147483648');
    expect(targetedDirectives('foo')).toBe('');
  });

  it('ignores the whole field when it does not parse, or a known directive has the wrong type', () => {
    for (const value of ['max-age=10000, &&&&&', 'max-age="10000"', 'max-age =100', 'max-age= 100', 'MaX-aGe=3600', 'max-age=-1', 'max-age=1.5', ' ', '']) {
      expect(targetedDirectives(value), value).toBeNull();
    }
    expect(targetedDirectives(undefined)).toBeNull();
  });

  it('obeys the first field of the list that is present and valid', () => {
    const fields = targetedFieldList(' Edgecache-Cache-Control , CDN-Cache-Control');
    expect(fields).toEqual(['edgecache-cache-control', 'cdn-cache-control']);
    expect(targetedCacheControl({ 'cdn-cache-control': 'max-age=5', 'edgecache-cache-control': 'max-age=7' }, fields)).toBe('max-age=7');
    expect(targetedCacheControl({ 'cdn-cache-control': 'max-age=5', 'edgecache-cache-control': 'max-age="7"' }, fields)).toBe('max-age=5');
    expect(targetedCacheControl({ 'cache-control': 'max-age=5' }, fields)).toBeNull();
  });
});

describe('what the freshness policy reads from a response', () => {
  const freshness = new Freshness({ cacheSetCookie: false, now: () => T });
  const request = { method: 'GET', url: '/', headers: {} };
  const date = new Date(T).toUTCString();
  const decide = (status: number, headers: Record<string, string | string[]>) => {
    const response: PolicyResponse = { status, headers: { date, ...headers } };
    const policy = freshness.createPolicy(request, response);
    const reason = freshness.notStorableReason(policy, request, response);
    return { reason, lifetime: reason === null ? freshness.lifetimes(policy, response, 0).lifetime / 1000 : undefined };
  };

  it('Age (RFC 9111 §5.1): the first value of the first line, at most 2^31; a value that is not a non-negative integer is ignored', () => {
    const age = (value: string | string[]) => {
      const response: PolicyResponse = { status: 200, headers: { date, 'cache-control': 'max-age=3600', age: value } };
      return freshness.createPolicy(request, response).age();
    };
    expect(age('10')).toBe(10);
    expect(age(' 10 ')).toBe(10);
    // A list, or several lines: the first value.
    expect(age('0,7200')).toBe(0);
    expect(age('0, 0')).toBe(0);
    expect(age('7200, 0')).toBe(7200);
    expect(age(['0', '7200'])).toBe(0);
    expect(age(['7200', '0'])).toBe(7200);
    expect(age(['3600', '3600'])).toBe(3600);
    // At or beyond 2^31: as old as it gets.
    expect(age('2147483647')).toBe(2_147_483_647);
    expect(age('2147483649')).toBe(2_147_483_648);
    expect(age('99999999999')).toBe(2_147_483_648);
    // Parameters: the integer stands.
    expect(age('7200;foo=bar')).toBe(7200);
    // Not a non-negative integer: ignored, as if there were no Age.
    for (const value of ['abc', '-7200', '7200.0', '', '1e3']) expect(age(value), value).toBe(0);
  });

  it('Expires: an HTTP-date relative to Date; an invalid one (or several) means already expired', () => {
    expect(decide(200, { expires: new Date(T + 60_000).toUTCString() }).lifetime).toBe(60);
    expect(decide(200, { expires: 'Sunday, 11-Jan-26 12:00:00 GMT' }).lifetime).toBe(86_400);
    expect(decide(200, { expires: 'Sun Jan 11 12:00:00 2026' }).lifetime).toBe(86_400);
    // Date.parse would read these; they are not HTTP-dates.
    expect(decide(200, { expires: 'Sun, 11 Jan 2026 12:00:00 UTC', etag: '"a"' }).lifetime).toBe(0);
    expect(decide(200, { expires: 'Sun 11 Jan 2026 12:00:00 GMT', etag: '"a"' }).lifetime).toBe(0);
    const lines = [new Date(T + 60_000).toUTCString(), new Date(T + 60_000).toUTCString()];
    expect(decide(200, { expires: lines, etag: '"a"' }).lifetime).toBe(0);
  });

  it('an invalid Date is absent: Expires counts from the time the response was received', () => {
    expect(decide(200, { date: 'yesterday', expires: new Date(T + 60_000).toUTCString() }).lifetime).toBe(60);
  });

  it('stores any final status with explicit freshness, and only heuristically cacheable ones without', () => {
    for (const status of [200, 203, 299, 302, 400, 404, 410, 499, 500, 502, 503, 504, 599]) {
      expect(decide(status, { 'cache-control': 'max-age=60' }), String(status)).toEqual({ reason: null, lifetime: 60 });
      expect(decide(status, { expires: new Date(T + 30_000).toUTCString() }), String(status)).toEqual({ reason: null, lifetime: 30 });
    }
    const lastModified = new Date(T - 1_000_000).toUTCString();
    expect(decide(404, { 'last-modified': lastModified }).lifetime).toBe(100);
    for (const status of [400, 500, 503, 599, 307]) expect(decide(status, { 'last-modified': lastModified }).reason, String(status)).toBe('not-cacheable');
    // `public` makes any final status explicitly cacheable: then a heuristic lifetime applies (RFC 9111 §4.2.2).
    for (const status of [599, 500, 299]) expect(decide(status, { 'cache-control': 'public', 'last-modified': lastModified }), String(status)).toEqual({ reason: null, lifetime: 100 });
    expect(decide(206, { 'cache-control': 'max-age=60' }).reason).toBe('not-cacheable');
  });

  it('must-understand: a status edgecache understands is stored despite no-store; another never is', () => {
    expect(decide(200, { 'cache-control': 'max-age=60, no-store, must-understand' })).toEqual({ reason: null, lifetime: 60 });
    expect(decide(503, { 'cache-control': 'max-age=60, no-store, must-understand' })).toEqual({ reason: null, lifetime: 60 });
    expect(decide(299, { 'cache-control': 'max-age=60, must-understand' }).reason).toBe('not-cacheable');
    expect(decide(299, { 'cache-control': 'max-age=60, no-store, must-understand' }).reason).toBe('not-cacheable');
    expect(decide(200, { 'cache-control': 'max-age=60, no-store' }).reason).toBe('no-store');
  });

  it('reads a Cache-Control value the same every time, whatever was decided with it before', () => {
    // Parsed values are shared between responses that send the same text: deciding for one must not change them.
    const value = 'max-age=60, no-store, must-understand';
    for (let i = 0; i < 2; i++) {
      expect(decide(200, { 'cache-control': value })).toEqual({ reason: null, lifetime: 60 });
      expect(parseCacheControl(value).has('no-store')).toBe(true);
      expect(decide(299, { 'cache-control': value }).reason).toBe('not-cacheable');
    }
    const written = 'Max-Age=60, NO-STORE, Must-Understand';
    expect(decide(200, { 'cache-control': written })).toEqual({ reason: null, lifetime: 60 });
    expect(decide(200, { 'cache-control': 'MAX-AGE=60, No-Store' }).reason).toBe('no-store');
    expect(decide(200, { 'cache-control': 'max-age=60, no-cache="Set-Cookie"', 'set-cookie': 'a=1' })).toEqual({ reason: null, lifetime: 60 });
    expect(decide(200, { 'cache-control': 'max-age=60, x-note="no-cache=set-cookie"', 'set-cookie': 'a=1' }).reason).toBe('set-cookie');
  });

  it('CDN-Cache-Control replaces Cache-Control and Expires for edgecache, both ways', () => {
    expect(decide(200, { 'cache-control': 'max-age=1', 'cdn-cache-control': 'max-age=3600' }).lifetime).toBe(3600);
    expect(decide(200, { 'cache-control': 'max-age=3600', 'cdn-cache-control': 'max-age=1' }).lifetime).toBe(1);
    expect(decide(200, { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=600' }).lifetime).toBe(600);
    expect(decide(200, { 'cache-control': 'max-age=600', 'cdn-cache-control': 'no-store' }).reason).toBe('no-store');
    expect(decide(200, { 'cache-control': 'max-age=600', 'cdn-cache-control': 'private' }).reason).toBe('private');
    expect(decide(200, { 'cdn-cache-control': 'max-age=600', expires: '0' }).lifetime).toBe(600);
    expect(decide(200, { 'cdn-cache-control': 'max-age=0', expires: new Date(T + 60_000).toUTCString(), etag: '"a"' }).lifetime).toBe(0);
    // Invalid: as if absent.
    expect(decide(200, { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age="600"' }).reason).toBe('no-store');
  });

  it("a targeted field's stale-if-error, stale-while-revalidate and must-revalidate are edgecache's", () => {
    const response: PolicyResponse = { status: 200, headers: { date, 'cache-control': 'max-age=10, must-revalidate', 'cdn-cache-control': 'max-age=60, stale-if-error=300' } };
    const lifetimes = freshness.lifetimes(freshness.createPolicy(request, response), response, 0);
    expect(lifetimes).toMatchObject({ lifetime: 60_000, staleIfError: 300_000, mustRevalidate: false });
  });

  it('only the configured fields are obeyed', () => {
    const own = new Freshness({ cacheSetCookie: false, targetedFields: ['acme-cache-control'], now: () => T });
    const response: PolicyResponse = { status: 200, headers: { date, 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=60', 'acme-cache-control': 'max-age=90' } };
    expect(own.lifetimes(own.createPolicy(request, response), response, 0).lifetime).toBe(90_000);
    const none = new Freshness({ cacheSetCookie: false, targetedFields: [], now: () => T });
    expect(none.lifetimes(none.createPolicy(request, response), response, 0).lifetime).toBe(10_000);
  });
});
