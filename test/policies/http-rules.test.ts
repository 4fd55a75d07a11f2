/**
 * The HTTP rules of policies/http/ as the pure functions they are: ranges, conditionals and the one 304 rule,
 * revalidation, message bodies, the intermediary's header rules, invalidation, sharing, request targets. The
 * end-to-end suites in test/proxy check the same rules on the wire.
 */
import { describe, expect, it } from 'vitest';
import { checkTarget, TARGET_PROBLEMS } from '../../policies/http/cache-key.js';
import { clientValidatorsMatch, notModifiedFields } from '../../policies/http/conditionals.js';
import { connectionNominated, endToEndResponseHeaders, withVia } from '../../policies/http/intermediary.js';
import { invalidatedKeys, invalidates } from '../../policies/http/invalidation.js';
import { allowsContentLength, bodyFraming, hasNoContent } from '../../policies/http/message-body.js';
import { combinedPart, ifRangeFor, ifRangeMatches, MAX_RANGES, missingRange, parseContentRange, parseRange, parseRanges, partialKey, RangeSlicer, rangeFraming, rangesWithin, storablePart, strongValidator } from '../../policies/http/ranges.js';
import { freshenedHeaders, headResponseMatches, isOriginError, withoutClientValidators } from '../../policies/http/revalidation.js';
import { earlyHintLinks } from '../../policies/http/early-hints.js';
import { shareableUnstored } from '../../policies/http/sharing.js';

describe('ranges (RFC 9110 §14)', () => {
  const stored = { etag: '"v1"', 'last-modified': 'Tue, 02 Jan 2024 00:00:00 GMT', date: 'Wed, 03 Jan 2024 00:00:00 GMT' };
  const range = (value: string | undefined, extra: Record<string, string> = {}, length = 100) =>
    parseRange({ ...(value !== undefined && { range: value }), ...extra }, stored, length);
  const ranges = (value: string, length = 100) => parseRanges({ range: value }, stored, length);

  it('reads one byte range: first-last, first-, and a suffix; the end is capped at the length', () => {
    expect(range('bytes=0-9')).toEqual({ start: 0, end: 9 });
    expect(range('bytes=90-')).toEqual({ start: 90, end: 99 });
    expect(range('bytes=-10')).toEqual({ start: 90, end: 99 });
    expect(range('bytes=-500')).toEqual({ start: 0, end: 99 });
    expect(range('bytes=50-5000')).toEqual({ start: 50, end: 99 });
    expect(range('bytes=1 - 2')).toEqual({ start: 1, end: 2 });
  });

  it('is unsatisfiable past the end, for an empty representation, and for a zero-length suffix', () => {
    expect(range('bytes=100-')).toBe('unsatisfiable');
    expect(range('bytes=0-0', {}, 0)).toBe('unsatisfiable');
    expect(range('bytes=-0')).toBe('unsatisfiable');
    expect(ranges('bytes=100-, 200-300, -0')).toBe('unsatisfiable');
  });

  it('sends the whole representation for no Range, another unit, nonsense, last < first anywhere, or too many ranges', () => {
    for (const value of [undefined, 'items=0-1', 'bytes = 0-1', 'bytes=-', 'bytes=a-b', 'bytes=9-3', 'bytes=0-1,9-3', 'bytes=,']) expect(range(value), String(value)).toBeNull();
    expect(ranges(Array.from({ length: MAX_RANGES + 1 }, (_, i) => `${i}-${i}`).join(',').replace(/^/, 'bytes='))).toBeNull();
  });

  it('several ranges: the satisfiable ones, sorted, overlapping and adjacent ones merged', () => {
    expect(ranges('bytes=50-59, 0-4, 3-9, 10-10, -5, 500-')).toEqual([
      { start: 0, end: 10 },
      { start: 50, end: 59 },
      { start: 95, end: 99 },
    ]);
    expect(ranges('bytes=0-1, , 4-5')).toEqual([
      { start: 0, end: 1 },
      { start: 4, end: 5 },
    ]);
  });

  it('honours If-Range: a strong ETag, or the date of a strong Last-Modified, must match, else the whole representation', () => {
    expect(range('bytes=0-1', { 'if-range': '"v1"' })).toEqual({ start: 0, end: 1 });
    expect(range('bytes=0-1', { 'if-range': stored['last-modified'] })).toEqual({ start: 0, end: 1 });
    expect(range('bytes=0-1', { 'if-range': '"v0"' })).toBeNull();
    expect(parseRange({ range: 'bytes=0-1', 'if-range': 'W/"v1"' }, { etag: 'W/"v1"' }, 100)).toBeNull();
    // A Last-Modified within a second of Date is a weak validator (RFC 9110 §8.8.2.2).
    const weakDate = { 'last-modified': stored['last-modified'], date: stored['last-modified'] };
    expect(parseRange({ range: 'bytes=0-1', 'if-range': stored['last-modified'] }, weakDate, 100)).toBeNull();
    expect(ifRangeMatches({}, {})).toBe(true);
  });

  it('frames one range with Content-Range, several as multipart/byteranges with an exact Content-Length', () => {
    const one = rangeFraming([{ start: 2, end: 5 }], 10, 'text/plain');
    expect(one).toMatchObject({ contentType: undefined, contentRange: 'bytes 2-5/10', contentLength: 4 });
    const body = Buffer.from('0123456789');
    const many = rangeFraming([{ start: 0, end: 1 }, { start: 8, end: 9 }], 10, 'text/plain');
    const boundary = /boundary=(\w+)$/.exec(many.contentType as string)?.[1] as string;
    const expected = `\r\n--${boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n--${boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\r\n--${boundary}--\r\n`;
    // Cut from the representation as it arrives, one byte at a time or all at once, the 206 body is the same.
    for (const size of [1, 3, 10]) {
      const slicer = new RangeSlicer(many);
      const out: Buffer[] = [];
      for (let i = 0; i < body.length; i += size) out.push(...slicer.push(body.subarray(i, i + size)));
      expect(Buffer.concat(out).toString(), String(size)).toBe(expected);
      expect(slicer.done).toBe(true);
    }
    expect(many.contentLength).toBe(expected.length);
  });
});

describe('stored partial content (RFC 9111 §3.3)', () => {
  it('a single-part Content-Range with a known complete length is a part; nothing else is', () => {
    expect(parseContentRange('bytes 4-9/10')).toEqual({ start: 4, end: 9, length: 10 });
    expect(parseContentRange(' bytes 0-0/1 ')).toEqual({ start: 0, end: 0, length: 1 });
    for (const bad of ['bytes 4-9/*', 'bytes */10', 'bytes 4-10/10', 'bytes 5-4/10', 'bytes=4-9/10', 'items 4-9/10', '4-9/10']) expect(parseContentRange(bad)).toBeUndefined();
    expect(parseContentRange(['bytes 4-9/10', 'bytes 4-9/10'])).toBeUndefined();
    expect(parseContentRange(undefined)).toBeUndefined();
  });

  it('a 206 is storable as a part when its length agrees with its Content-Range and it does not vary', () => {
    expect(storablePart({ 'content-range': 'bytes 4-9/10' }, 6)).toEqual({ start: 4, end: 9, length: 10 });
    expect(storablePart({ 'content-range': 'bytes 4-9/10' }, undefined)).toEqual({ start: 4, end: 9, length: 10 });
    expect(storablePart({ 'content-range': 'bytes 4-9/10' }, 5)).toBeUndefined();
    expect(storablePart({ 'content-range': 'bytes 4-9/10', vary: 'accept' }, 6)).toBeUndefined();
    expect(storablePart({ 'content-type': 'multipart/byteranges; boundary=x' }, 100)).toBeUndefined();
  });

  it('a part answers only ranges wholly within it, and is kept under a key no GET variant or POST has', () => {
    const part = { start: 4, end: 9 };
    expect(rangesWithin([{ start: 4, end: 4 }, { start: 6, end: 9 }], part)).toBe(true);
    expect(rangesWithin([{ start: 3, end: 5 }], part)).toBe(false);
    expect(rangesWithin([{ start: 9, end: 10 }], part)).toBe(false);
    expect(partialKey('a.test/x')).toBe('a.test/x\n\0PARTIAL');
  });

  it('combining parts (RFC 9110 §15.3.7.3): the strong validator, the missing range, the union', () => {
    expect(strongValidator({ etag: '"a"' })).toBe('etag "a"');
    expect(strongValidator({ etag: 'W/"a"', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', date: 'Tue, 02 Jan 2024 00:00:00 GMT' })).toBeUndefined();
    expect(strongValidator({ 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', date: 'Tue, 02 Jan 2024 00:00:00 GMT' })).toBe('date Mon, 01 Jan 2024 00:00:00 GMT');
    // Modified within the second of its Date: weak (§8.8.2.2).
    expect(strongValidator({ 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', date: 'Mon, 01 Jan 2024 00:00:00 GMT' })).toBeUndefined();
    expect(strongValidator({})).toBeUndefined();
    expect(ifRangeFor({ etag: '"a"' })).toBe('"a"');
    expect(ifRangeFor({ 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', date: 'Tue, 02 Jan 2024 00:00:00 GMT' })).toBe('Mon, 01 Jan 2024 00:00:00 GMT');
    expect(missingRange({ start: 0, end: 4, length: 10 })).toBe('bytes=5-');
    expect(missingRange({ start: 4, end: 9, length: 10 })).toBe('bytes=0-3');
    expect(missingRange({ start: 2, end: 5, length: 10 })).toBeUndefined();
    expect(missingRange({ start: 0, end: 9, length: 10 })).toBeUndefined();
    expect(combinedPart({ start: 0, end: 4, length: 10 }, { start: 5, end: 7, length: 10 })).toEqual({ start: 0, end: 7, length: 10 });
    expect(combinedPart({ start: 4, end: 9, length: 10 }, { start: 0, end: 5, length: 10 })).toEqual({ start: 0, end: 9, length: 10 });
    expect(combinedPart({ start: 0, end: 4, length: 10 }, { start: 6, end: 9, length: 10 })).toBeUndefined();
    expect(combinedPart({ start: 0, end: 4, length: 10 }, { start: 5, end: 9, length: 11 })).toBeUndefined();
  });

  it('a slicer cuts ranges out of bytes that start at an offset (a part being cut down)', () => {
    const slicer = new RangeSlicer(rangeFraming([{ start: 6, end: 7 }], 10, 'text/plain'), 4);
    expect(Buffer.concat([...slicer.push(Buffer.from('45')), ...slicer.push(Buffer.from('6789'))]).toString()).toBe('67');
    expect(slicer.done).toBe(true);
  });
});

describe('conditionals (RFC 9110 §13) and the one 304 rule (§15.4.5)', () => {
  const stored = { etag: '"v1"', 'last-modified': 'Tue, 02 Jan 2024 00:00:00 GMT' };

  it('If-None-Match: weak comparison, lists, and *; it wins over If-Modified-Since', () => {
    expect(clientValidatorsMatch({ 'if-none-match': '"v1"' }, stored)).toBe(true);
    expect(clientValidatorsMatch({ 'if-none-match': 'W/"v1"' }, stored)).toBe(true);
    expect(clientValidatorsMatch({ 'if-none-match': '"a", "v1"' }, stored)).toBe(true);
    expect(clientValidatorsMatch({ 'if-none-match': '*' }, {})).toBe(true);
    expect(clientValidatorsMatch({ 'if-none-match': '"v2"', 'if-modified-since': 'Wed, 03 Jan 2024 00:00:00 GMT' }, stored)).toBe(false);
    expect(clientValidatorsMatch({ 'if-none-match': '"v1"' }, {})).toBe(false);
  });

  it('If-Modified-Since: not modified since that date; an unparseable date never matches', () => {
    expect(clientValidatorsMatch({ 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' }, stored)).toBe(true);
    expect(clientValidatorsMatch({ 'if-modified-since': 'Mon, 01 Jan 2024 00:00:00 GMT' }, stored)).toBe(false);
    expect(clientValidatorsMatch({ 'if-modified-since': 'yesterday' }, stored)).toBe(false);
    expect(clientValidatorsMatch({}, stored)).toBe(false);
  });

  it('If-Modified-Since without a stored Last-Modified: the stored Date stands for it (RFC 9111 §4.3.2)', () => {
    const dated = { date: 'Wed, 03 Jan 2024 00:00:00 GMT' };
    expect(clientValidatorsMatch({ 'if-modified-since': 'Wed, 03 Jan 2024 00:00:00 GMT' }, dated)).toBe(true);
    expect(clientValidatorsMatch({ 'if-modified-since': 'Tue, 02 Jan 2024 23:59:59 GMT' }, dated)).toBe(false);
    expect(clientValidatorsMatch({ 'if-modified-since': 'Wed, 03 Jan 2024 00:00:00 GMT' }, {})).toBe(false);
    // A Last-Modified, when there is one, is what counts.
    expect(clientValidatorsMatch({ 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' }, { ...dated, 'last-modified': 'Tue, 02 Jan 2024 00:00:01 GMT' })).toBe(false);
  });

  it('a 304 keeps what it must carry and the exchange fields, and drops the representation metadata', () => {
    const fields = [
      'cache-control', 'max-age=60',
      'content-type', 'text/html',
      'content-encoding', 'gzip',
      'content-language', 'en',
      'content-length', '123',
      'content-location', '/a',
      'date', 'x',
      'etag', '"v1"',
      'expires', 'y',
      'last-modified', 'z',
      'vary', 'accept',
      'set-cookie', ['a=1', 'b=2'],
      'via', '1.1 edgecache',
      'age', '3',
      'x-cache', 'HIT',
      'cache-status', 'edgecache; hit',
    ];
    expect(notModifiedFields(fields)).toEqual([
      'cache-control', 'max-age=60',
      'content-location', '/a',
      'date', 'x',
      'etag', '"v1"',
      'expires', 'y',
      'last-modified', 'z',
      'vary', 'accept',
      'set-cookie', ['a=1', 'b=2'],
      'via', '1.1 edgecache',
      'age', '3',
      'x-cache', 'HIT',
      'cache-status', 'edgecache; hit',
    ]);
  });
});

describe('revalidation (RFC 9111 §3.2, §4.3; RFC 5861 §4)', () => {
  it('a 304 freshens every stored field but those describing the stored body and its validator', () => {
    const stored = { 'content-type': 'text/plain', 'content-length': '10', etag: '"v1"', 'cache-control': 'max-age=1', 'x-old': 'kept' };
    const update = { 'cache-control': 'max-age=60', 'content-length': '0', etag: '"v2"', 'content-encoding': 'gzip', date: 'now', 'x-new': 'added' };
    expect(freshenedHeaders(stored, update)).toEqual({
      'content-type': 'text/plain',
      'content-length': '10',
      etag: '"v1"',
      'cache-control': 'max-age=60',
      'x-old': 'kept',
      date: 'now',
      'x-new': 'added',
    });
    expect(stored['cache-control']).toBe('max-age=1');
  });

  it("the cache's own revalidation leaves out the client's validators and range", () => {
    const client = { 'if-none-match': '"c"', 'if-modified-since': 'x', 'if-range': '"c"', range: 'bytes=0-1', accept: '*/*' };
    expect(withoutClientValidators(client)).toEqual({ accept: '*/*' });
    expect(client.range).toBe('bytes=0-1');
  });

  it('stale-if-error covers 500, 502, 503 and 504 only', () => {
    expect([500, 502, 503, 504].every(isOriginError)).toBe(true);
    expect([200, 304, 404, 501, 505].some(isOriginError)).toBe(false);
  });

  it('a 200 to a HEAD describes the stored response when every validator it carries and its length match (§4.3.5)', () => {
    const stored = { etag: '"v1"', 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT', 'content-type': 'text/plain' };
    // Validators and length it leaves out are not compared.
    expect(headResponseMatches(stored, 10, {})).toBe(true);
    expect(headResponseMatches(stored, 10, { etag: '"v1"', 'content-length': '10' })).toBe(true);
    expect(headResponseMatches(stored, 10, { 'last-modified': 'Sunday, 06-Nov-94 08:49:37 GMT' })).toBe(true);
    expect(headResponseMatches(stored, 10, { etag: '"v1"', 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT', 'content-length': ' 10 ' })).toBe(true);
    // Any one of them different: not the stored response.
    expect(headResponseMatches(stored, 10, { etag: '"v2"' })).toBe(false);
    expect(headResponseMatches(stored, 10, { etag: 'W/"v1"' })).toBe(false);
    expect(headResponseMatches(stored, 10, { etag: '"v1"', 'last-modified': 'Mon, 07 Nov 1994 08:49:37 GMT' })).toBe(false);
    expect(headResponseMatches(stored, 10, { etag: '"v1"', 'content-length': '11' })).toBe(false);
    // A validator the stored response lacks, or a malformed length, matches nothing.
    expect(headResponseMatches({}, 10, { etag: '"v1"' })).toBe(false);
    expect(headResponseMatches({}, 10, { 'last-modified': 'Sun, 06 Nov 1994 08:49:37 GMT' })).toBe(false);
    expect(headResponseMatches(stored, 10, { 'content-length': ['10', '10'] })).toBe(false);
    expect(headResponseMatches(stored, 10, { 'content-length': '1e1' })).toBe(false);
    expect(headResponseMatches(stored, 10, { etag: ['"v1"', '"v1"'] })).toBe(false);
  });
});

describe('message bodies (RFC 9110 §6.4.1, §8.6; RFC 9112 §6.3)', () => {
  it('204 and 304 have no content; a 204 (or a 1xx) never carries Content-Length', () => {
    expect([204, 304].every(hasNoContent)).toBe(true);
    expect([200, 206, 404].some(hasNoContent)).toBe(false);
    expect([allowsContentLength(204), allowsContentLength(101), allowsContentLength(200), allowsContentLength(304)]).toEqual([false, false, true, true]);
  });

  it('framing: the announced length, chunked, or delimited only by the connection closing', () => {
    expect(bodyFraming(200, { 'content-length': '12' })).toEqual({ noContent: false, length: 12, closeDelimited: false });
    expect(bodyFraming(200, { 'transfer-encoding': 'gzip, chunked' })).toEqual({ noContent: false, length: undefined, closeDelimited: false });
    expect(bodyFraming(200, {})).toEqual({ noContent: false, length: undefined, closeDelimited: true });
    expect(bodyFraming(200, { 'content-length': ['1', '1'] })).toMatchObject({ length: undefined, closeDelimited: true });
    expect(bodyFraming(200, { 'content-length': '-1' })).toMatchObject({ length: undefined });
    expect(bodyFraming(304, { 'content-length': '99' })).toEqual({ noContent: true, length: 0, closeDelimited: false });
  });
});

describe("an intermediary's header rules (RFC 9110 §7.6)", () => {
  it('removes hop-by-hop fields and those Connection nominates, in any case', () => {
    const relayed = endToEndResponseHeaders({
      connection: 'Keep-Alive, X-Hop',
      'keep-alive': 'timeout=5',
      'x-hop': 'gone',
      'transfer-encoding': 'chunked',
      'proxy-authenticate': 'Basic',
      'proxy-anything': 'x',
      upgrade: 'h2c',
      'x-end-to-end': 'kept',
      absent: undefined,
    });
    expect(relayed).toEqual({ 'x-end-to-end': 'kept' });
    expect(connectionNominated(['a, B', ' ,c'])).toEqual(new Set(['a', 'b', 'c']));
    expect(connectionNominated(' , ')).toBeNull();
  });

  it('appends itself to Via', () => {
    expect(withVia(undefined)).toBe('1.1 edgecache');
    expect(withVia(['1.0 a', '1.1 b'])).toBe('1.0 a, 1.1 b, 1.1 edgecache');
  });
});

describe('invalidation after unsafe requests (RFC 9111 §4.4)', () => {
  const target = { scheme: 'http' as const, host: 'shop.test', path: '/cart/1?x=1', key: 'shop.test/cart/1?x=1' };

  it('a 2xx or 3xx answer to an unsafe method invalidates; safe methods and errors do not', () => {
    expect([invalidates('POST', 201), invalidates('DELETE', 204), invalidates('PUT', 303), invalidates('M-SEARCH', 200)]).toEqual([true, true, true, true]);
    expect([invalidates('POST', 404), invalidates('POST', 500), invalidates('OPTIONS', 200), invalidates('PROPFIND', 207)]).toEqual([false, false, false, false]);
  });

  it('the target, and Location / Content-Location on the same host (the host part decides), resolved against the target', () => {
    expect(invalidatedKeys(target, { location: '/cart/2', 'content-location': 'http://SHOP.test:80/cart/3?y' })).toEqual([
      'shop.test/cart/1?x=1',
      'shop.test/cart/2',
      'shop.test/cart/3?y',
    ]);
    expect(invalidatedKeys(target, { location: '../other', 'content-location': 'https://shop.test/x' })).toEqual(['shop.test/cart/1?x=1', 'shop.test/other', 'shop.test/x']);
    expect(invalidatedKeys(target, { location: 'http://elsewhere.test/a', 'content-location': 'http://[bad' })).toEqual([target.key]);
  });
});

describe('sharing what was not stored with the waiters of a fill', () => {
  it('size, framing, status and lifetime are no reason to keep a response from the waiters; privacy is, and so is no-cache', () => {
    expect(shareableUnstored('too-large', {})).toBe(true);
    expect(shareableUnstored('close-delimited', {})).toBe(true);
    expect(shareableUnstored('not-cacheable', {})).toBe(true);
    expect(shareableUnstored('zero-ttl', { 'cache-control': 'max-age=0' })).toBe(true);
    expect(shareableUnstored('zero-ttl', { 'cache-control': 'max-age=0, no-cache' })).toBe(false);
    for (const reason of ['private', 'no-store', 'set-cookie', 'authorization', 'vary-star', 'request-no-store'] as const) {
      expect(shareableUnstored(reason, {}), reason).toBe(false);
    }
  });
});

describe('request targets (RFC 9112 §3.2, §3.3)', () => {
  const check = (url: string, host: string | undefined, raw: string[] = host === undefined ? [] : ['Host', host]) => checkTarget(url, host, raw, 'http');

  it('answers the normalised host, or one of the problems, the same objects each time', () => {
    expect(check('/a#f', 'A.Test:80')).toBe('a.test');
    expect(check('*', 'a')).toBe(TARGET_PROBLEMS.asteriskForm);
    expect(check('http://a/b', 'a')).toBe(TARGET_PROBLEMS.notOriginForm);
    expect(check('/', '')).toBe(TARGET_PROBLEMS.noHost);
    expect(check('/', 'a', ['Host', 'a', 'HOST', 'a'])).toBe(TARGET_PROBLEMS.severalHosts);
    expect(check('/', 'a b')).toBe(TARGET_PROBLEMS.badHost);
  });
});

describe('Early Hints from stored Link fields (RFC 8297, RFC 8288)', () => {
  it('keeps the link-values whose relation is preload, modulepreload or preconnect', () => {
    expect(earlyHintLinks(undefined)).toEqual([]);
    expect(earlyHintLinks('</a.css>; rel=preload; as=style')).toEqual(['</a.css>; rel=preload; as=style']);
    expect(earlyHintLinks('</a,b.css>; rel="preload stylesheet"; as=style, </n>; rel=next')).toEqual(['</a,b.css>; rel="preload stylesheet"; as=style']);
    expect(earlyHintLinks(['</x.js>; REL=ModulePreload', '<https://c.test>; rel=preconnect; crossorigin'])).toEqual(['</x.js>; REL=ModulePreload', '<https://c.test>; rel=preconnect; crossorigin']);
    expect(earlyHintLinks('</p>; rel=prefetch, garbage')).toEqual([]);
  });
});
