/**
 * Requests with more header fields than edgecache accepts are refused with 431, never served with fields
 * silently dropped (node:http keeps only `maxHeadersCount` of them): on the miss path, the hit path, pass-through
 * and upgrade-carrying requests alike. Raw sockets: the field count is the point.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_REQUEST_FIELDS } from '../../proxy/http/request-limits.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { exchange, openConnections } from '../helpers/http.js';

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const body = `${req.method} ${req.url} authorization=${req.headers.authorization ?? '-'}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=60' });
    res.end(body);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

/** Host and Authorization first, then filler fields up to `total` fields in all. */
function head(method: string, path: string, total: number, extra = ''): string {
  let text = `${method} ${path} HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer user-1\r\n${extra}`;
  const fixed = 2 + (extra.match(/\r\n/g)?.length ?? 0);
  for (let i = 0; i < total - fixed; i++) text += `X-F${i}: ${i}\r\n`;
  return `${text}\r\n`;
}

describe(`more than ${MAX_REQUEST_FIELDS} request header fields`, () => {
  it(`${MAX_REQUEST_FIELDS} fields are accepted, Authorization included`, async () => {
    const result = await exchange(proxy.port, head('GET', '/at-limit', MAX_REQUEST_FIELDS), { responses: 1 });
    expect(result.responses[0]?.status).toBe(200);
    expect(result.responses[0]?.body).toBe('GET /at-limit authorization=Bearer user-1');
  });

  it('one field more is refused with 431 and a one-line body, and the origin is not asked', async () => {
    const before = origin.requests.length;
    const badBefore = proxy.edgecache.stats.badRequests;
    const result = await exchange(proxy.port, head('GET', '/over-limit', MAX_REQUEST_FIELDS + 1), { responses: 1 });
    expect(result.responses[0]?.status).toBe(431);
    expect(result.responses[0]?.body).toBe(`request header fields too large: more than ${MAX_REQUEST_FIELDS} fields\n`);
    expect(result.responses[0]?.headers['x-cache']).toBe('BYPASS');
    expect(origin.requests.length).toBe(before);
    expect(proxy.edgecache.stats.badRequests).toBe(badBefore + 1);
  });

  it('on the hit path too: a stored URL is not served to a request whose fields were cut', async () => {
    const plain = await exchange(proxy.port, 'GET /stored HTTP/1.1\r\nHost: a.test\r\n\r\n', { responses: 1 });
    expect(plain.responses[0]?.headers['x-cache']).toBe('MISS');
    const hit = await exchange(proxy.port, 'GET /stored HTTP/1.1\r\nHost: a.test\r\n\r\n', { responses: 1 });
    expect(hit.responses[0]?.headers['x-cache']).toBe('HIT');
    const result = await exchange(proxy.port, head('GET', '/stored', MAX_REQUEST_FIELDS + 500), { responses: 1 });
    expect(result.responses[0]?.status).toBe(431);
  });

  it('pass-through (POST) and PURGE as well', async () => {
    const before = origin.requests.length;
    const post = await exchange(proxy.port, head('POST', '/post', MAX_REQUEST_FIELDS + 1, 'Content-Length: 0\r\n'), { responses: 1 });
    expect(post.responses[0]?.status).toBe(431);
    const purge = await exchange(proxy.port, head('PURGE', '/stored', MAX_REQUEST_FIELDS + 1), { responses: 1 });
    expect(purge.responses[0]?.status).toBe(431);
    expect(origin.requests.length).toBe(before);
  });

  it('a request carrying Upgrade is refused the same way, and its connection closed', async () => {
    const result = await exchange(proxy.port, head('POST', '/upgrade-over', MAX_REQUEST_FIELDS + 1, 'Connection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n'), {
      responses: 1,
      waitForClose: true,
    });
    expect(result.responses[0]?.status).toBe(431);
    expect(result.closed).toBe(true);
    expect(await openConnections(proxy.edgecache.app.server)).toBe(0);
  });

  it('the connection stays usable after a 431 (the request was read whole)', async () => {
    const result = await exchange(proxy.port, head('GET', '/over-then', MAX_REQUEST_FIELDS + 1) + 'GET /next HTTP/1.1\r\nHost: a.test\r\n\r\n', { responses: 2 });
    expect(result.responses.map((r) => r.status)).toEqual([431, 200]);
  });
});
