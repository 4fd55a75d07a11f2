import net from 'node:net';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, sleep } from '../helpers/http.js';

/** An origin that writes raw bytes, for responses a well-behaved server would never send. */
async function rawOrigin(reply: (path: string, socket: net.Socket) => void): Promise<{ url: string; close(): Promise<void>; hits: string[] }> {
  const hits: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', (data) => {
      const path = data.toString('latin1').split(' ')[1] ?? '/';
      hits.push(path);
      reply(path, socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('streaming', () => {
  let origin: TestOrigin;
  let proxy: TestProxy;
  let release: () => void = () => undefined;

  beforeAll(async () => {
    origin = await startOrigin((req, res) => {
      if (req.url === '/slow-body') {
        res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
        res.write('first chunk;');
        release = () => res.end('second chunk');
        return;
      }
      if (req.url?.startsWith('/big')) {
        const size = 3 * 1024 * 1024;
        res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(size) });
        res.end(Buffer.alloc(size, 1));
        return;
      }
      if (req.url === '/big-chunked') return;
      res.writeHead(404);
      res.end();
    });
    proxy = await startProxy(origin.url, { maxObjectSize: 1024 * 1024 });
  });

  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  it('sends the first byte of a miss before the origin has finished', async () => {
    const firstChunk = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${proxy.url}/slow-body`, (res) => {
        res.once('data', (chunk: Buffer) => {
          resolve(chunk.toString());
          release();
          res.resume();
        });
      });
      req.on('error', reject);
    });
    expect(firstChunk).toBe('first chunk;');
    await sleep(50);
    const hit = await request(`${proxy.url}/slow-body`);
    expect([hit.headers['x-cache'], hit.text]).toEqual(['HIT', 'first chunk;second chunk']);
  });

  it('streams a response larger than --max-object-size through without storing it', async () => {
    const res = await request(`${proxy.url}/big`);
    expect(res.body.length).toBe(3 * 1024 * 1024);
    expect(res.headers['cache-status']).toContain('detail=too-large');
    expect((await request(`${proxy.url}/big`)).headers['x-cache']).toBe('MISS');
    expect(proxy.edgecache.store.memory.stats().bytes).toBeLessThan(1024 * 1024);
  });
});

describe('bodies the origin cuts off are never stored, and the client sees an abort', () => {
  let origin: Awaited<ReturnType<typeof rawOrigin>>;
  let proxy: TestProxy;

  beforeAll(async () => {
    origin = await rawOrigin((path, socket) => {
      const head = 'HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\n';
      if (path === '/short-length') {
        socket.write(`${head}Content-Length: 100\r\n\r\nonly a few bytes`);
        setTimeout(() => socket.destroy(), 30);
      } else if (path === '/reset') {
        socket.write(`${head}Content-Length: 100\r\n\r\npartial`);
        setTimeout(() => socket.resetAndDestroy(), 30);
      } else if (path === '/broken-chunks') {
        socket.write(`${head}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
        setTimeout(() => socket.destroy(), 30);
      } else if (path === '/bad-chunk-size') {
        socket.write(`${head}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`);
      } else if (path === '/close-delimited') {
        socket.end(`${head}Connection: close\r\n\r\nall of it`);
      } else {
        socket.end(`${head}Content-Length: 2\r\n\r\nok`);
      }
    });
    proxy = await startProxy(origin.url);
  });

  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  it.each(['/short-length', '/reset', '/broken-chunks'])('%s', async (path) => {
    await expect(request(`${proxy.url}${path}`)).rejects.toThrow();
    await expect(request(`${proxy.url}${path}`)).rejects.toThrow();
    expect(origin.hits.filter((p) => p === path).length).toBe(2);
    expect((await request(`${proxy.url}/ok`)).status).toBe(200);
  });

  it('a malformed chunk size is a 502 when nothing was sent yet, or an abort, never a stored entry', async () => {
    for (let i = 0; i < 2; i++) {
      const outcome = await request(`${proxy.url}/bad-chunk-size`).then(
        (res) => res.status,
        () => 'aborted',
      );
      expect([502, 'aborted']).toContain(outcome);
    }
    expect(origin.hits.filter((p) => p === '/bad-chunk-size').length).toBe(2);
  });

  it('a response delimited only by connection close is relayed but not stored', async () => {
    const first = await request(`${proxy.url}/close-delimited`);
    expect(first.text).toBe('all of it');
    expect(first.headers['cache-status']).toContain('detail=close-delimited');
    await request(`${proxy.url}/close-delimited`);
    expect(origin.hits.filter((p) => p === '/close-delimited').length).toBe(2);
  });
});

describe('origin failures', () => {
  it('connection refused → 502 with a short plain-text body; nothing stored; the proxy keeps serving', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const proxy = await startProxy(`http://127.0.0.1:${port}`);
    try {
      for (const method of ['GET', 'POST']) {
        const res = await request(`${proxy.url}/down`, { method, ...(method === 'POST' && { body: 'x' }) });
        expect(res.status).toBe(502);
        expect(res.headers['content-type']).toContain('text/plain');
        expect(res.text).toBe('origin refused the connection\n');
      }
      expect(proxy.edgecache.store.memory.stats().entries).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('no response headers within the header timeout → 504', async () => {
    const origin = await startOrigin(() => undefined);
    const proxy = await startProxy(origin.url, { originHeadersTimeout: 200 });
    try {
      const res = await request(`${proxy.url}/slow`);
      expect(res.status).toBe(504);
      expect(res.text).toBe('origin did not send response headers in time\n');
      const post = await request(`${proxy.url}/slow`, { method: 'POST', body: 'x' });
      expect(post.status).toBe(504);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});
