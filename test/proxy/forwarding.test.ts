/**
 * proxy/origin/forwarding.ts as a unit: the fields sent to the origin (cache fill or not, trusted client or not,
 * --preserve-host or not) and those relayed back without the cache. passthrough-headers.test.ts checks the same
 * on the wire.
 */
import { describe, expect, it } from 'vitest';
import { Forwarding, type ForwardingOptions } from '../../proxy/origin/forwarding.js';

const target = { scheme: 'http' as const, host: 'shop.test', path: '/p?q=1', key: 'shop.test/p?q=1' };
const forwarding = (options: Partial<ForwardingOptions> = {}) =>
  new Forwarding({ originHost: 'origin.internal:3000', preserveHost: true, trustForwarded: false, exposeTagHeaders: false, ...options });

const client = {
  host: 'shop.test',
  connection: 'keep-alive, x-hop',
  'x-hop': 'secret',
  te: 'trailers',
  'proxy-authorization': 'Basic x',
  expect: '100-continue',
  via: '1.1 browser-proxy',
  'x-forwarded-for': '6.6.6.6',
  'x-forwarded-host': 'evil.test',
  'x-original-url': '/admin',
  'if-none-match': '"v1"',
  range: 'bytes=0-1',
  'content-length': '0',
  accept: 'text/html',
  'surrogate-capability': 'other="Surrogate/1.0"',
};

describe('Forwarding.requestHeaders', () => {
  it('a cache fill: no hop-by-hop, untrusted forwarding, validator, range or framing field; its own forwarding fields', () => {
    expect(forwarding().requestHeaders(client, target, '10.0.0.7', true)).toEqual({
      accept: 'text/html',
      host: 'shop.test',
      'x-forwarded-for': '10.0.0.7',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'shop.test',
      via: '1.1 browser-proxy, 1.1 edgecache',
      'surrogate-capability': 'other="Surrogate/1.0", edgecache="Surrogate/1.0"',
    });
  });

  it("a relayed request keeps the client's validators, range and length; without --preserve-host the origin's Host", () => {
    const headers = forwarding({ preserveHost: false }).requestHeaders(client, target, undefined, false);
    expect(headers).toMatchObject({ host: 'origin.internal:3000', 'x-forwarded-host': 'shop.test', 'x-forwarded-for': 'unknown', 'if-none-match': '"v1"', range: 'bytes=0-1', 'content-length': '0' });
    expect(headers['x-original-url']).toBeUndefined();
  });

  it('a trusted client (--trust-forwarded): its forwarding fields are kept and appended to', () => {
    const headers = forwarding({ trustForwarded: true }).requestHeaders({ ...client, 'x-forwarded-proto': 'https' }, target, '10.0.0.7', true);
    expect(headers).toMatchObject({ 'x-forwarded-for': '6.6.6.6, 10.0.0.7', 'x-forwarded-host': 'evil.test', 'x-forwarded-proto': 'https', 'x-original-url': '/admin' });
  });
});

describe('Forwarding.responseHeaders', () => {
  const origin = { connection: 'close', 'keep-alive': 'timeout=1', 'surrogate-control': 'max-age=60', 'surrogate-key': 'a b', 'cache-tag': 'c', via: '1.1 up', 'x-kept': '1' };

  it('end-to-end fields only, nothing addressed to the surrogate, tags hidden unless exposed, Via appended', () => {
    expect(forwarding().responseHeaders(origin)).toEqual({ via: '1.1 up, 1.1 edgecache', 'x-kept': '1' });
    expect(forwarding({ exposeTagHeaders: true }).responseHeaders(origin)).toEqual({ 'surrogate-key': 'a b', 'cache-tag': 'c', via: '1.1 up, 1.1 edgecache', 'x-kept': '1' });
  });
});
