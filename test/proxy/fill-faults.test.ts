/**
 * Origin responses that break at the edge of their body (headers, then nothing), and what Cache-Status may
 * claim about storing. Raw origins on loopback write exactly the bytes each case needs.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { raw, request, sleep, type TestResponse } from '../helpers/http.js';

interface RawOrigin {
  url: string;
  hits: string[];
  /** Sockets of requests held by the `held` reply until `release()`. */
  release(): void;
  close(): Promise<void>;
}

/** An origin that writes raw bytes per path; `hold` paths wait for release() before replying. */
async function rawOrigin(reply: (path: string, socket: net.Socket, n: number) => void, hold: (path: string) => boolean = () => false): Promise<RawOrigin> {
  const hits: string[] = [];
  const sockets = new Set<net.Socket>();
  let held: Array<() => void> = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', (data) => {
      const path = data.toString('latin1').split(' ')[1] ?? '/';
      hits.push(path);
      const n = hits.filter((p) => p === path).length;
      if (hold(path)) held.push(() => reply(path, socket, n));
      else reply(path, socket, n);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    release: () => {
      const now = held;
      held = [];
      for (const go of now) go();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits (polling) until `condition` holds; fails after `ms`. */
async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(5);
  }
}

const HEAD = 'HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\n';

function expect502(res: TestResponse, collapsed = false): void {
  expect(res.status).toBe(502);
  expect(res.text).toBe('origin closed the connection\n');
  expect(res.headers['x-cache']).toBe('MISS');
  expect(res.headers['cache-status']).toBe(`edgecache; fwd=uri-miss${collapsed ? '; collapsed' : ''}; detail=origin-error`);
}

describe('an origin that sends its headers and closes before any body byte', () => {
  let origin: RawOrigin;
  let proxy: TestProxy;

  beforeAll(async () => {
    origin = await rawOrigin(
      (path, socket) => {
        if (path.startsWith('/length')) socket.write(`${HEAD}Content-Length: 100\r\n\r\n`);
        else if (path.startsWith('/chunked')) socket.write(`${HEAD}Transfer-Encoding: chunked\r\n\r\n`);
        else if (path.startsWith('/reset')) socket.write(`${HEAD}Content-Length: 100\r\n\r\n`, () => socket.resetAndDestroy());
        // One write for the head, then the socket goes: no body byte ever.
        setTimeout(() => socket.destroy(), 20);
      },
      (path) => path.startsWith('/length/held'),
    );
    proxy = await startProxy(origin.url);
  });

  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  it.each(['/length', '/chunked', '/reset'])('%s: the client gets a 502 with the one-line body, and nothing is stored', async (path) => {
    if (path === '/reset') {
      const res = await request(`${proxy.url}${path}`);
      expect(res.status).toBe(502);
      expect(res.headers['cache-status']).toBe('edgecache; fwd=uri-miss; detail=origin-error');
    } else {
      expect502(await request(`${proxy.url}${path}`));
      // Not an empty reply on the wire either.
      const reply = await raw(proxy.port, `GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
      expect(reply).toMatch(/^HTTP\/1\.1 502 /);
    }
    expect(proxy.edgecache.store.memory.stats().entries).toBe(0);
    const before = origin.hits.length;
    expect((await request(`${proxy.url}${path}`).catch(() => undefined))?.status).toBe(502);
    expect(origin.hits.length).toBe(before + 1);
  });

  it('a Range request on a miss (a fill like any miss) gets the 502 too', async () => {
    const res = await request(`${proxy.url}/length/range`, { headers: { range: 'bytes=0-9' } });
    expect([res.status, res.text, res.headers['x-cache'], res.headers['cache-status']]).toEqual([
      502,
      'origin closed the connection\n',
      'MISS',
      'edgecache; fwd=uri-miss; detail=origin-error',
    ]);
  });

  it('every waiter of a collapsed fill gets the 502', async () => {
    const path = '/length/held';
    const coalesced = proxy.edgecache.stats.coalesced;
    const responses = Array.from({ length: 20 }, () => request(`${proxy.url}${path}`));
    await until(() => proxy.edgecache.stats.coalesced === coalesced + 19);
    origin.release();
    const all = await Promise.all(responses);
    expect(origin.hits.filter((p) => p === path)).toHaveLength(1);
    const owner = all.filter((r) => !String(r.headers['cache-status']).includes('collapsed'));
    expect(owner).toHaveLength(1);
    for (const res of all) expect502(res, res !== owner[0]);
    expect(proxy.edgecache.store.memory.stats().entries).toBe(0);
  });
});

it('headers, then no body byte within --origin-body-timeout: 504', async () => {
  const origin = await rawOrigin((_path, socket) => socket.write(`${HEAD}Content-Length: 100\r\n\r\n`));
  const proxy = await startProxy(origin.url, { originBodyTimeout: 200 });
  try {
    const res = await request(`${proxy.url}/stalled`);
    expect([res.status, res.text, res.headers['cache-status']]).toEqual([504, 'origin did not send the response body in time\n', 'edgecache; fwd=uri-miss; detail=origin-error']);
  } finally {
    await proxy.close();
    await origin.close();
  }
});

describe('a revalidation whose 200 closes before any body byte', () => {
  it('gets a 502 (or the stale entry, with stale-if-error); the stale entry is kept, not replaced', async () => {
    const origin = await rawOrigin((path, socket, n) => {
      const cc = path.includes('sie') ? 'max-age=1, stale-if-error=600' : 'max-age=1';
      if (n === 1) {
        socket.end(`HTTP/1.1 200 OK\r\nCache-Control: ${cc}\r\nETag: "v1"\r\nContent-Length: 8\r\n\r\nstored-1`);
        return;
      }
      socket.write(`HTTP/1.1 200 OK\r\nCache-Control: ${cc}\r\nETag: "v2"\r\nContent-Length: 8\r\n\r\n`);
      setTimeout(() => socket.destroy(), 20);
    });
    const proxy = await startProxy(origin.url);
    try {
      for (const path of ['/plain', '/sie']) expect((await request(`${proxy.url}${path}`)).text).toBe('stored-1');
      proxy.advance(5_000);
      const plain = await request(`${proxy.url}/plain`);
      expect([plain.status, plain.text, plain.headers['cache-status']]).toEqual([502, 'origin closed the connection\n', 'edgecache; fwd=stale; detail=origin-error']);
      const sie = await request(`${proxy.url}/sie`);
      expect([sie.status, sie.text, sie.headers['x-cache']]).toEqual([200, 'stored-1', 'STALE']);
      expect(sie.headers['cache-status']).toContain('fwd-status=200; ttl=');
      expect(sie.headers['cache-status']).toContain('detail=stale-if-error');
      // The stale copies are still there (and still stale): nothing replaced them.
      for (const path of ['/plain', '/sie']) {
        const { entry } = await proxy.edgecache.store.lookup(`127.0.0.1:${proxy.port}${path}`, {});
        expect(entry?.meta.headers.etag).toBe('"v1"');
      }
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('Cache-Status never says stored for what was not stored', () => {
  it('a chunked body that grows past --max-object-size: no `stored` in the headers sent before its size was known', async () => {
    const origin = await startOrigin(async (req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'application/octet-stream' });
      const piece = Buffer.alloc(64 * 1024, 7);
      const total = req.url === '/huge' ? 4 * 1024 * 1024 : 256 * 1024;
      for (let sent = 0; sent < total; sent += piece.length) {
        res.write(piece);
        await sleep(1);
      }
      res.end();
    });
    const proxy = await startProxy(origin.url, { maxObjectSize: 1024 * 1024 });
    try {
      const huge = await request(`${proxy.url}/huge`);
      expect(huge.body.length).toBe(4 * 1024 * 1024);
      expect(huge.headers['cache-status']).toBe('edgecache; fwd=uri-miss; fwd-status=200');
      expect((await request(`${proxy.url}/huge`)).headers['x-cache']).toBe('MISS');
      // A chunked body that arrives over time and fits is stored, though its headers could not say so.
      const slow = await request(`${proxy.url}/fits`);
      expect(slow.headers['cache-status']).toBe('edgecache; fwd=uri-miss; fwd-status=200');
      expect((await request(`${proxy.url}/fits`)).headers['x-cache']).toBe('HIT');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  it('a 204 with a bogus Content-Length: relayed and stored without it, and nobody waits for the 5 bytes', async () => {
    const origin = await rawOrigin((_path, socket) => {
      socket.write('HTTP/1.1 204 No Content\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\n');
    });
    const proxy = await startProxy(origin.url);
    try {
      const first = await raw(proxy.port, 'GET /empty HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
      expect(first).toMatch(/^HTTP\/1\.1 204 /);
      expect(first).not.toMatch(/content-length/i);
      expect(first).toContain('cache-status: edgecache; fwd=uri-miss; fwd-status=204; stored\r\n');
      const second = await raw(proxy.port, 'GET /empty HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
      expect(second).toMatch(/^HTTP\/1\.1 204 /);
      expect(second).toContain('x-cache: HIT\r\n');
      expect(second).not.toMatch(/content-length/i);
      expect(origin.hits).toHaveLength(1);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});
