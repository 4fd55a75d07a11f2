import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { raw, rawStatus, request } from '../helpers/http.js';

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res, recorded) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && url.pathname === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(recorded.body);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const status = Number(url.searchParams.get('status') ?? 200);
      const headers: Record<string, string> = {};
      const location = url.searchParams.get('location');
      if (location) headers.location = location;
      const contentLocation = url.searchParams.get('cl');
      if (contentLocation) headers['content-location'] = contentLocation;
      res.writeHead(status, headers);
      res.end(`${req.method} done`);
      return;
    }
    res.writeHead(200, {
      'cache-control': 'max-age=60',
      'content-type': 'text/plain',
      connection: 'x-hop',
      'x-hop': 'secret',
      'keep-alive': 'timeout=5',
      'x-end-to-end': 'kept',
    });
    res.end(`get #${origin.count(req.url)}`);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

describe('unsafe methods', () => {
  it('streams request and response bodies both ways, uncached', async () => {
    const payload = Buffer.alloc(3 * 1024 * 1024, 7);
    const res = await request(`${proxy.url}/echo`, { method: 'POST', body: payload, headers: { 'content-type': 'application/octet-stream' } });
    expect(res.status).toBe(200);
    expect(res.headers['x-cache']).toBe('BYPASS');
    expect(res.headers['cache-status']).toBe('edgecache; fwd=method; fwd-status=200');
    expect(res.body.equals(payload)).toBe(true);
  });

  it.each(['POST', 'PUT', 'PATCH', 'DELETE', 'M-SEARCH'])('a successful %s invalidates the target URI', async (method) => {
    const path = `/inv-${method}`;
    await request(`${proxy.url}${path}`);
    expect((await request(`${proxy.url}${path}`)).headers['x-cache']).toBe('HIT');
    const res = await request(`${proxy.url}${path}`, { method, body: 'x' });
    expect(res.status).toBe(200);
    expect((await request(`${proxy.url}${path}`)).headers['x-cache']).toBe('MISS');
  });

  it('an error answer does not invalidate', async () => {
    await request(`${proxy.url}/inv-failed`);
    await request(`${proxy.url}/inv-failed?status=500`, { method: 'POST', body: 'x' });
    // The POST went to another URI (with a query), so check the exact URI too:
    await request(`${proxy.url}/inv-failed`, { method: 'POST', body: 'x' }).catch(() => undefined);
    origin.setHandler((req, res) => {
      if (req.method === 'POST') {
        res.writeHead(500);
        res.end('boom');
        return;
      }
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.end('get');
    });
    await request(`${proxy.url}/inv-failed-2`);
    await request(`${proxy.url}/inv-failed-2`, { method: 'POST', body: 'x' });
    expect((await request(`${proxy.url}/inv-failed-2`)).headers['x-cache']).toBe('HIT');
  });

  it('invalidates same-origin Location and Content-Location, not other hosts', async () => {
    origin.setHandler((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'POST') {
        res.writeHead(201, { location: url.searchParams.get('location') ?? '', 'content-location': url.searchParams.get('cl') ?? '' });
        res.end();
        return;
      }
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.end('get');
    });
    const host = `127.0.0.1:${proxy.port}`;
    for (const p of ['/loc-a', '/loc-b', '/loc-c']) await request(`${proxy.url}${p}`);
    await request(`${proxy.url}/collection?location=${encodeURIComponent('/loc-a')}&cl=${encodeURIComponent(`http://${host}/loc-b`)}`, { method: 'POST', body: 'x' });
    await request(`${proxy.url}/collection?location=${encodeURIComponent('http://elsewhere.example/loc-c')}`, { method: 'POST', body: 'x' });
    expect((await request(`${proxy.url}/loc-a`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${proxy.url}/loc-b`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${proxy.url}/loc-c`)).headers['x-cache']).toBe('HIT');
  });
});

describe('hop-by-hop and forwarding headers', () => {
  beforeAll(() => {
    origin.setHandler((req, res) => {
      res.writeHead(200, {
        'cache-control': 'max-age=60',
        'content-type': 'text/plain',
        connection: 'x-hop',
        'x-hop': 'secret',
        'keep-alive': 'timeout=5',
        'x-end-to-end': 'kept',
      });
      res.end(`get #${origin.count(req.url)}`);
    });
  });

  it('removes hop-by-hop fields, and those Connection names, from responses (miss and hit)', async () => {
    for (const expected of ['MISS', 'HIT']) {
      const res = await request(`${proxy.url}/hop-response`);
      expect(res.headers['x-cache']).toBe(expected);
      expect(res.headers['x-hop']).toBeUndefined();
      expect(res.headers['x-end-to-end']).toBe('kept');
    }
  });

  it('removes hop-by-hop request fields before the origin, without a 500 from undici', async () => {
    const reply = await raw(
      proxy.port,
      [
        'GET /hop-request HTTP/1.1',
        'Host: a.example',
        'Connection: close, X-Private',
        'X-Private: nope',
        'Keep-Alive: timeout=5',
        'TE: trailers',
        'Upgrade: h2c',
        'Proxy-Authorization: Basic Zm9v',
        'Proxy-Connection: keep-alive',
        'Expect: 100-continue',
        'X-Kept: yes',
        '',
        '',
      ].join('\r\n'),
    );
    expect(rawStatus(reply)).toBe(200);
    const seen = origin.requests.find((r) => r.url === '/hop-request');
    expect(seen?.headers['x-private']).toBeUndefined();
    expect(seen?.headers['proxy-authorization']).toBeUndefined();
    expect(seen?.headers['proxy-connection']).toBeUndefined();
    expect(seen?.headers.upgrade).toBeUndefined();
    expect(seen?.headers.te).toBeUndefined();
    expect(seen?.headers.expect).toBeUndefined();
    expect(seen?.headers['x-kept']).toBe('yes');
  });

  it('drops client-supplied forwarding and URL-override fields, and sets its own', async () => {
    await request(`${proxy.url}/forwarding`, {
      headers: {
        host: 'shop.example',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'https',
        'x-original-url': '/admin',
        'x-rewrite-url': '/admin',
        'x-http-method-override': 'DELETE',
        via: '1.1 upstream-proxy',
      },
    });
    const seen = origin.requests.find((r) => r.url === '/forwarding');
    expect(seen?.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen?.headers['x-forwarded-host']).toBe('shop.example');
    expect(seen?.headers['x-forwarded-proto']).toBe('http');
    expect(seen?.headers['x-original-url']).toBeUndefined();
    expect(seen?.headers['x-rewrite-url']).toBeUndefined();
    expect(seen?.headers['x-http-method-override']).toBeUndefined();
    expect(seen?.headers.via).toBe('1.1 upstream-proxy, 1.1 edgecache');
    expect(seen?.headers.host).toBe('shop.example');
  });

  it('with --trust-forwarded, appends to the client chain instead', async () => {
    const trusting = await startProxy(origin.url, { trustForwarded: true, preserveHost: false });
    try {
      await request(`${trusting.url}/forwarding-trusted`, { headers: { 'x-forwarded-for': '10.0.0.1', 'x-original-url': '/x' } });
      const seen = origin.requests.find((r) => r.url === '/forwarding-trusted');
      expect(seen?.headers['x-forwarded-for']).toBe('10.0.0.1, 127.0.0.1');
      expect(seen?.headers['x-original-url']).toBe('/x');
      expect(seen?.headers.host).toBe(`127.0.0.1:${origin.port}`);
    } finally {
      await trusting.close();
    }
  });
});

describe('WebSocket upgrades', () => {
  it('pass through to the origin', async () => {
    const server = http.createServer();
    const wss = new WebSocketServer({ server });
    wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo:${String(data)}`)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const wsProxy = await startProxy(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const client = new WebSocket(`ws://127.0.0.1:${wsProxy.port}/socket`);
      await once(client, 'open');
      client.send('hello');
      const [message] = (await once(client, 'message')) as [Buffer];
      expect(String(message)).toBe('echo:hello');
      client.close();
    } finally {
      await wsProxy.close();
      wss.close();
      server.close();
    }
  });
});
