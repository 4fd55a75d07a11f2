import { describe, expect, it } from 'vitest';
import { checkH2Target, keysForSchemes, normalizeHost, parseRequestTarget, parseVary, TARGET_PROBLEMS, variantKey, varyKey, type RequestTarget } from '../../policies/http/cache-key.js';
import { pathOf } from '../../cache-store/purge-log.js';
import { deltaSeconds, parseCacheControl, qualifiedDirectives } from '../../policies/http/cache-control.js';
import { surrogateDirectives } from '../../policies/http/surrogate-control.js';

describe('request target and Host', () => {
  const target = (url: string, host: string | undefined, raw: string[] = host === undefined ? [] : ['Host', host]) => parseRequestTarget(url, host, raw, 'http');

  it('keys on the normalised host and the exact path and query', () => {
    expect(target('/A/b?Z=1&a=2', 'Shop.Example:8080')).toEqual({ scheme: 'http', host: 'shop.example:8080', path: '/A/b?Z=1&a=2', key: 'shop.example:8080/A/b?Z=1&a=2' });
  });

  it('strips a fragment', () => {
    expect(target('/a?x=1#frag', 'h')).toMatchObject({ path: '/a?x=1', key: 'h/a?x=1' });
  });

  it.each([
    ['http://h/a', 'h'],
    ['*', 'h'],
    ['a', 'h'],
  ])('refuses target %j', (url, host) => expect(target(url, host)).toHaveProperty('problem'));

  it('refuses a missing, empty, repeated or malformed Host', () => {
    expect(target('/', undefined)).toHaveProperty('problem');
    expect(target('/', '')).toHaveProperty('problem');
    expect(target('/', 'a', ['Host', 'a', 'host', 'b'])).toHaveProperty('problem', 'more than one Host header');
    for (const bad of ['a b', 'a/b', 'a:99999', 'a:', 'exa mple.com', '[zz::1]']) expect(normalizeHost(bad, 'http'), bad).toBeNull();
    for (const good of ['a', 'a.b-c.example', 'A.EXAMPLE:80', '[::1]:8080', '127.0.0.1']) expect(normalizeHost(good, 'http'), good).not.toBeNull();
  });

  it('gives one host one spelling: lower case, no trailing dot, no default port, no leading zeros in the port', () => {
    for (const spelling of ['a.test', 'A.TEST', 'a.test:80', 'a.test.', 'A.Test.:80', 'a.test:0080']) {
      expect(normalizeHost(spelling, 'http'), spelling).toBe('a.test');
      expect(target('/p', spelling), spelling).toMatchObject({ host: 'a.test', key: 'a.test/p' });
    }
    expect(normalizeHost('a.test:8080', 'http')).toBe('a.test:8080');
    expect(normalizeHost('A.test.:08080', 'http')).toBe('a.test:8080');
    expect(normalizeHost('[::1]:80', 'http')).toBe('[::1]');
    expect(normalizeHost('[::1]:8080', 'http')).toBe('[::1]:8080');
    expect(normalizeHost('127.0.0.1:80', 'http')).toBe('127.0.0.1');
  });

  it('takes the default port from the scheme', () => {
    expect(normalizeHost('a.test:443', 'http')).toBe('a.test:443');
    expect(normalizeHost('a.test:443', 'https')).toBe('a.test');
    expect(normalizeHost('a.test:80', 'https')).toBe('a.test:80');
    expect(parseRequestTarget('/p', 'A.TEST.:443', ['Host', 'A.TEST.:443'], 'https')).toMatchObject({ scheme: 'https', host: 'a.test', key: 'https://a.test/p' });
  });

  it('keys https apart from http, and keeps the path readable for path purges', () => {
    const http = parseRequestTarget('/p?q', 'a.test', ['Host', 'a.test'], 'http');
    const https = parseRequestTarget('/p?q', 'a.test', ['Host', 'a.test'], 'https');
    expect([(http as RequestTarget).key, (https as RequestTarget).key]).toEqual(['a.test/p?q', 'https://a.test/p?q']);
    expect(keysForSchemes('a.test', '/p')).toEqual(['a.test/p', 'https://a.test/p']);
    expect(pathOf('https://a.test/p?q\naccept=x')).toBe('/p?q');
    expect(pathOf('a.test/p')).toBe('/p');
  });

  it('checks an HTTP/2 target: :authority stands for Host, and a differing Host is refused', () => {
    expect(checkH2Target('/p', 'A.test:443', undefined, 'https')).toBe('a.test');
    expect(checkH2Target('/p', undefined, 'a.test', 'https')).toBe('a.test');
    expect(checkH2Target('/p', 'a.test', 'a.test', 'https')).toBe('a.test');
    expect(checkH2Target('/p', 'a.test', 'b.test', 'https')).toBe(TARGET_PROBLEMS.authorityMismatch);
    expect(checkH2Target('/p', undefined, undefined, 'https')).toBe(TARGET_PROBLEMS.noHost);
    expect(checkH2Target('*', 'a.test', undefined, 'https')).toBe(TARGET_PROBLEMS.asteriskForm);
  });

  it('changes nothing that could name another authority', () => {
    expect(normalizeHost('a.test..', 'http')).toBe('a.test.');
    expect(normalizeHost('%41.test', 'http')).toBe('%41.test');
    expect(normalizeHost('.', 'http')).toBe('.');
  });
});

describe('Vary', () => {
  it('parses field names, de-duplicated and sorted, and recognises *', () => {
    expect(parseVary('Accept-Language, accept-encoding, Accept-Language')).toEqual(['accept-encoding', 'accept-language']);
    expect(parseVary(['a', 'b, *'])).toBe('*');
    expect(parseVary(' , ')).toBeNull();
    expect(parseVary(undefined)).toBeNull();
  });

  it('builds a secondary key that tells absent from empty and ignores list whitespace', () => {
    const fields = ['accept-encoding', 'accept-language'];
    expect(varyKey(fields, { 'accept-language': 'en', 'accept-encoding': 'gzip, br' })).toBe(varyKey(fields, { 'accept-language': 'en', 'accept-encoding': 'gzip,br' }));
    expect(varyKey(fields, { 'accept-language': '' })).not.toBe(varyKey(fields, {}));
    expect(varyKey(fields, { 'accept-language': 'en' })).not.toBe(varyKey(fields, { 'accept-language': 'fr' }));
    expect(variantKey('h/a', '')).toBe('h/a');
    expect(variantKey('h/a', 'x=1\n')).toBe('h/a\nx=1\n');
  });
});

describe('Cache-Control', () => {
  it('parses directives case-insensitively, with quoted arguments', () => {
    const cc = parseCacheControl('Max-Age=60, no-cache="set-cookie, x", PUBLIC');
    expect(cc.get('max-age')).toBe('60');
    expect(cc.get('no-cache')).toBe('set-cookie, x');
    expect(cc.get('public')).toBe(true);
  });

  it('keeps the smaller of conflicting duplicate ages', () => {
    expect(deltaSeconds(parseCacheControl('max-age=100, max-age=10'), 'max-age')).toBe(10);
  });

  it('ignores malformed delta-seconds', () => {
    expect(deltaSeconds(parseCacheControl('max-age=1a'), 'max-age')).toBeUndefined();
    expect(deltaSeconds(parseCacheControl('max-age=-1'), 'max-age')).toBeUndefined();
  });

  it('qualified no-cache and private (RFC 9111 §5.2.2.4, §5.2.2.7): the fields they list, and the rest', () => {
    expect(qualifiedDirectives('no-cache="Set-Cookie, X-A", max-age=60')).toEqual({ fields: ['set-cookie', 'x-a'], rest: 'max-age=60' });
    expect(qualifiedDirectives('max-age=60, private=X-User, no-cache="x-user"')).toEqual({ fields: ['x-user'], rest: 'max-age=60' });
    // Unqualified forms stay; an unqualified occurrence beside a qualified one decides; an empty list is unqualified.
    expect(qualifiedDirectives('no-cache, max-age=60')).toEqual({ fields: [], rest: 'no-cache, max-age=60' });
    expect(qualifiedDirectives('private="a", private')).toEqual({ fields: [], rest: 'private="a", private' });
    expect(qualifiedDirectives('no-cache="", max-age=60')).toEqual({ fields: [], rest: 'no-cache, max-age=60' });
    expect(qualifiedDirectives('private="a", no-cache, max-age=60')).toEqual({ fields: ['a'], rest: 'no-cache, max-age=60' });
  });
});

describe('Surrogate-Control', () => {
  it('prefers directives targeted at edgecache, ignores those for others', () => {
    expect(surrogateDirectives('max-age=10, max-age=99;edgecache')).toEqual({ noStore: false, maxAge: 99, staleIfError: undefined });
    expect(surrogateDirectives('no-store;other')).toBeNull();
    expect(surrogateDirectives('max-age=5+30')).toEqual({ noStore: false, maxAge: 5, staleIfError: 30 });
    expect(surrogateDirectives('MAX-AGE=7')).toMatchObject({ maxAge: 7 });
    expect(surrogateDirectives('max-age =7')).toBeNull();
  });
});
