import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { raw, rawStatus, request } from '../helpers/http.js';

// Parser-level cases go over raw sockets against the listening proxy: Fastify's inject() skips Node's parser.
let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
    res.end('ok');
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const send = (head: string): Promise<string> => raw(proxy.port, `${head}\r\n\r\n`);

describe('malformed requests get a 4xx and the proxy keeps serving', () => {
  it.each([
    ['absolute-form target', 'GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close'],
    ['two Host headers', 'GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close'],
    ['empty Host', 'GET /x HTTP/1.1\r\nHost: \r\nConnection: close'],
    ['malformed Host', 'GET /x HTTP/1.1\r\nHost: a b/c\r\nConnection: close'],
    ['Host with a bad port', 'GET /x HTTP/1.1\r\nHost: a.example:99999\r\nConnection: close'],
    ['missing Host on HTTP/1.1', 'GET /x HTTP/1.1\r\nConnection: close'],
    ['asterisk-form target on GET', 'GET * HTTP/1.1\r\nHost: a.example\r\nConnection: close'],
    ['absolute-form on POST', 'POST http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\nConnection: close'],
  ])('%s → 400', async (_name, head) => {
    const before = origin.requests.length;
    const reply = await send(head);
    expect(rawStatus(reply)).toBe(400);
    expect(origin.requests.length).toBe(before);
    const ok = await request(`${proxy.url}/still-serving`);
    expect(ok.status).toBe(200);
  });

  it('a missing Host gets the same one-line 400 as the other Host problems, and is counted', async () => {
    const before = proxy.edgecache.stats.badRequests;
    const reply = await send('GET /x HTTP/1.1\r\nConnection: close');
    expect(rawStatus(reply)).toBe(400);
    expect(reply).toMatch(/\r\n\r\nbad request: missing or empty Host header\n$/);
    expect(reply.toLowerCase()).toContain('x-cache: bypass');
    expect(proxy.edgecache.stats.badRequests).toBe(before + 1);
  });

  it('CONNECT is answered 405 in one line, not dropped without a word', async () => {
    const before = origin.requests.length;
    const reply = await send('CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443');
    expect(rawStatus(reply)).toBe(405);
    expect(reply).toMatch(/\r\n\r\nmethod CONNECT is not supported\n$/);
    expect(origin.requests.length).toBe(before);
    expect((await request(`${proxy.url}/still-serving`)).status).toBe(200);
  });

  it('answers an unparseable request line with 400, not a crash', async () => {
    const before = proxy.edgecache.stats.badRequests;
    const reply = await send('GARBAGE\r\nHost: a');
    expect(rawStatus(reply)).toBe(400);
    // Like every response: X-Cache and Cache-Status, and counted as a bad request.
    expect(reply).toContain('\r\nX-Cache: BYPASS\r\n');
    expect(reply).toContain('\r\nCache-Status: edgecache; fwd=bypass; detail=error\r\n');
    expect(proxy.edgecache.stats.badRequests).toBe(before + 1);
    expect((await request(`${proxy.url}/still-serving`)).status).toBe(200);
  });
});

describe('fragments', () => {
  it('strips a fragment before keying and before forwarding', async () => {
    const reply = await send('GET /frag#part HTTP/1.1\r\nHost: a.example\r\nConnection: close');
    expect(rawStatus(reply)).toBe(200);
    expect(origin.requests.at(-1)?.url).toBe('/frag');
    const again = await request(`${proxy.url}/frag`, { headers: { host: 'a.example' } });
    expect(again.headers['x-cache']).toBe('HIT');
  });
});

describe('a GET with a body', () => {
  it('is forwarded without the body, and the connection stays usable', async () => {
    const reply = await raw(
      proxy.port,
      'GET /with-body HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n',
    );
    const statuses = [...reply.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '200']);
    const forwarded = origin.requests.find((r) => r.url === '/with-body');
    expect(forwarded?.body.length).toBe(0);
    expect(forwarded?.headers['content-length']).toBeUndefined();
    expect(origin.requests.at(-1)?.url).toBe('/after');
  });
});
