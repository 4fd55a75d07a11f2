/**
 * The prepared hit head (proxy/http/raw-head.ts): what a fresh hit puts on the wire, byte for byte, in every
 * connection case: keep-alive, pipelining, HEAD, Connection: close, HTTP/1.0, and Age moving on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeRawHead, rawHeadSupported, serializeFields } from '../../proxy/http/raw-head.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { raw, rawStatus, request } from '../helpers/http.js';

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/no-content') {
      res.writeHead(204, { 'cache-control': 'public, max-age=60' });
      res.end();
      return;
    }
    if (req.url === '/upstream-status') {
      res.writeHead(200, { 'cache-control': 'public, max-age=60', 'cache-status': 'origin-cache; hit' });
      res.end('upstream');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60', etag: '"h1"', link: ['</a.css>; rel=preload', '</b.js>; rel=preload'] });
    res.end(`body of ${req.url}`);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

/** The Host a plain request() sends, so raw requests use the same cache key. */
const host = (): string => `127.0.0.1:${proxy.port}`;

/** Splits a raw reply into responses of known body length (Content-Length), in order. */
function responses(reply: string): Array<{ head: string; body: string }> {
  const out: Array<{ head: string; body: string }> = [];
  let rest = reply;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const head = rest.slice(0, end + 2);
    const length = Number(/\r\ncontent-length: (\d+)\r\n/i.exec(head)?.[1] ?? 0);
    out.push({ head, body: rest.slice(end + 4, end + 4 + length) });
    rest = rest.slice(end + 4 + length);
  }
  return out;
}

describe('prepared hit heads', () => {
  it('are used on this Node version', async () => {
    expect(await probeRawHead()).toBe(true);
    expect(rawHeadSupported()).toBe(true);
  });

  it('write the same fields as writeHead would, then the connection fields Node adds', async () => {
    await request(`${proxy.url}/wire`);
    const reply = await raw(proxy.port, `GET /wire HTTP/1.1\r\nHost: ${host()}\r\n\r\n`, 500);
    const [hit] = responses(reply);
    expect(hit?.head.split('\r\n')).toEqual([
      'HTTP/1.1 200 OK',
      'content-type: text/plain',
      'cache-control: public, max-age=60',
      'etag: "h1"',
      'link: </a.css>; rel=preload',
      'link: </b.js>; rel=preload',
      expect.stringMatching(/^date: /),
      'via: 1.1 edgecache',
      'content-length: 13',
      'age: 0',
      'x-cache: HIT',
      expect.stringMatching(/^cache-status: edgecache; hit; ttl=(59|60)$/),
      'Connection: keep-alive',
      'Keep-Alive: timeout=5',
      '',
    ]);
    expect(hit?.body).toBe('body of /wire');
  });

  it('serve pipelined hits in order on one connection, each complete', async () => {
    for (const path of ['/p1', '/p2', '/p3']) await request(`${proxy.url}${path}`);
    const pipelined = ['/p1', '/p2', '/p3', '/p1'].map((p) => `GET ${p} HTTP/1.1\r\nHost: ${host()}\r\n\r\n`).join('');
    const got = responses(await raw(proxy.port, pipelined, 500));
    expect(got.map((r) => r.body)).toEqual(['body of /p1', 'body of /p2', 'body of /p3', 'body of /p1']);
    for (const r of got) expect(r.head).toContain('x-cache: HIT');
  });

  it('send no body for HEAD and keep the connection usable', async () => {
    await request(`${proxy.url}/hd`);
    const reply = await raw(proxy.port, `HEAD /hd HTTP/1.1\r\nHost: ${host()}\r\n\r\nGET /hd HTTP/1.1\r\nHost: ${host()}\r\n\r\n`, 500);
    const heads = reply.split('HTTP/1.1 200 OK').slice(1);
    expect(heads).toHaveLength(2);
    expect(heads[0]).toContain('content-length: 11');
    expect(heads[0]?.endsWith('\r\n\r\n')).toBe(true);
    expect(reply.endsWith('body of /hd')).toBe(true);
  });

  it('leave Connection: close and HTTP/1.0 to Node, which closes after the response', async () => {
    await request(`${proxy.url}/close`);
    const closing = await raw(proxy.port, `GET /close HTTP/1.1\r\nHost: ${host()}\r\nConnection: close\r\n\r\n`);
    expect(closing).toContain('x-cache: HIT');
    expect(closing).toContain('Connection: close\r\n');
    expect(closing).not.toContain('Keep-Alive');
    expect(closing.endsWith('body of /close')).toBe(true);
    const old = await raw(proxy.port, `GET /close HTTP/1.0\r\nHost: ${host()}\r\n\r\n`);
    expect(old).toContain('x-cache: HIT');
    expect(old).not.toContain('Connection: keep-alive');
    expect(old.endsWith('body of /close')).toBe(true);
  });

  it('carry no Content-Length for a stored 204 (RFC 9110 §8.6)', async () => {
    await request(`${proxy.url}/no-content`);
    const reply = await raw(proxy.port, `GET /no-content HTTP/1.1\r\nHost: ${host()}\r\n\r\n`, 500);
    expect(reply).toMatch(/^HTTP\/1\.1 204 No Content\r\n/);
    expect(reply).toContain('x-cache: HIT');
    expect(reply.toLowerCase()).not.toContain('content-length');
    expect(reply.endsWith('\r\n\r\n')).toBe(true);
  });

  it('carry the current Age once seconds pass', async () => {
    await request(`${proxy.url}/aging`);
    proxy.advance(7_000);
    const later = responses(await raw(proxy.port, `GET /aging HTTP/1.1\r\nHost: ${host()}\r\n\r\n`, 500))[0];
    expect(later?.head).toContain('\r\nage: 7\r\n');
    expect(later?.head).toMatch(/cache-status: edgecache; hit; ttl=5[23]\r\n/);
    proxy.advance(-7_000);
  });

  it('give each of many entries its own Age as seconds pass, on keep-alive and closing connections alike', async () => {
    const paths = Array.from({ length: 20 }, (_, i) => `/many-${i}`);
    for (const path of paths) await request(`${proxy.url}${path}`);
    await request(`${proxy.url}/upstream-status`);
    /** Age and the Cache-Status ttl of one head: they must agree (age + ttl = the 60 s lifetime, or 59 across a second). */
    const ageOf = (head: string | undefined): number => {
      const age = Number(/\r\nage: (\d+)\r\n/.exec(head ?? '')?.[1]);
      const ttl = Number(/; ttl=(-?\d+)\r\n/.exec(head ?? '')?.[1]);
      expect(age + ttl).toBe(60);
      return age;
    };
    for (const step of [0, 1_000, 5_000]) {
      proxy.advance(step);
      const all = [...paths, '/upstream-status', ...paths.slice(0, 3)];
      const got = responses(await raw(proxy.port, all.map((p) => `GET ${p} HTTP/1.1\r\nHost: ${host()}\r\n\r\n`).join(''), 500));
      expect(got.map((r) => r.body)).toEqual(all.map((p) => (p === '/upstream-status' ? 'upstream' : `body of ${p}`)));
      for (const r of got) {
        expect(ageOf(r.head)).toBeGreaterThanOrEqual(step / 1000);
        expect(r.head).toContain('Connection: keep-alive\r\n');
      }
      expect(got[paths.length]?.head).toMatch(/\r\ncache-status: origin-cache; hit, edgecache; hit; ttl=\d+\r\n/);
      const closing = await raw(proxy.port, `GET /many-0 HTTP/1.1\r\nHost: ${host()}\r\nConnection: close\r\n\r\n`);
      expect(ageOf(closing.slice(0, closing.indexOf('\r\n\r\n') + 2))).toBeGreaterThanOrEqual(step / 1000);
      expect(closing).toContain('Connection: close\r\n');
      expect(closing.endsWith('body of /many-0')).toBe(true);
      proxy.advance(-step);
    }
  });
});

describe('an entry hit many times in a second of its Age', () => {
  it('sends the same head on every hit of that second, whether joined for the hit or kept, and the next Age after', async () => {
    const stored = Date.now();
    await request(`${proxy.url}/hot`);
    // 12 hits a second: the first few are joined for the response alone, the rest reuse the head kept (hit-head.ts).
    const burst = async (): Promise<string[]> => {
      const wanted = Array.from({ length: 12 }, () => `GET /hot HTTP/1.1\r\nHost: ${host()}\r\n\r\n`).join('');
      const got = responses(await raw(proxy.port, wanted, 500));
      expect(got.map((r) => r.body)).toEqual(Array.from({ length: 12 }, () => 'body of /hot'));
      return got.map((r) => r.head);
    };
    let moved = 0;
    for (const [to, age] of [
      [0, 0],
      [3_000, 3],
      [3_000, 3],
      [9_000, 9],
      [3_000, 3],
    ] as const) {
      proxy.advance(to - moved);
      moved = to;
      // (Real time runs too, half a second per burst.)
      const lowest = age + Math.floor((Date.now() - stored) / 1000) - 1;
      const heads = await burst();
      const highest = age + Math.floor((Date.now() - stored) / 1000) + 1;
      for (const head of heads) {
        const seen = Number(/\r\nage: (\d+)\r\nx-cache: HIT\r\n/.exec(head)?.[1]);
        expect(seen >= Math.max(age, lowest) && seen <= highest, head).toBe(true);
        expect(head).toMatch(new RegExp(`\\r\\ncache-status: edgecache; hit; ttl=${60 - seen}\\r\\nConnection: keep-alive\\r\\nKeep-Alive: timeout=5\\r\\n$`));
        // Every other byte as on the first hit.
        expect(head.replace(/age: \d+/, 'age: A').replace(/ttl=\d+/, 'ttl=T')).toBe(heads[0]?.replace(/age: \d+/, 'age: A').replace(/ttl=\d+/, 'ttl=T'));
      }
      expect(new Set(heads).size).toBeLessThanOrEqual(2);
    }
    proxy.advance(-moved);
  });
});

describe('the hit path reads request fields in any letter case', () => {
  const get = (path: string, extra = ''): Promise<string> => raw(proxy.port, `GET ${path} HTTP/1.1\r\nHOST: ${host()}\r\n${extra}Connection: close\r\n\r\n`);

  it('answers a fresh hit whatever the case of Host', async () => {
    await request(`${proxy.url}/case-host`);
    const reply = await get('/case-host');
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply).toMatch(/\r\nx-cache: HIT\r\n/i);
    expect(origin.count('/case-host')).toBe(1);
  });

  it.each([
    ['CACHE-CONTROL: no-cache', 'a revalidation (the origin is asked)'],
    ['PRAGMA: no-cache', 'a revalidation (the origin is asked)'],
  ])('leaves %s to the pipeline: %s', async (field) => {
    const path = `/case-${field.slice(0, 6).toLowerCase()}`;
    await request(`${proxy.url}${path}`);
    const reply = await get(path, `${field}\r\n`);
    // (After a 103 Early Hints: a revalidation sends the stored Link fields first.)
    expect(reply).toMatch(/(^|\r\n\r\n)HTTP\/1\.1 200 /);
    expect(origin.count(path)).toBe(2);
  });

  it('leaves a Range, a validator and a body length to the pipeline, whatever their case', async () => {
    await request(`${proxy.url}/case-more`);
    expect(await get('/case-more', 'RANGE: bytes=0-3\r\n')).toMatch(/^HTTP\/1\.1 206 [^]*\r\n\r\nbody$/);
    expect(rawStatus(await get('/case-more', 'IF-NONE-MATCH: "h1"\r\n'))).toBe(304);
    expect(rawStatus(await get('/case-more', 'if-modified-since: Sun, 01 Jan 2040 00:00:00 GMT\r\nIf-None-Match: "other"\r\n'))).toBe(200);
    expect(origin.count('/case-more')).toBe(1);
  });

  it('serves the coding the client accepts, also when Accept-Encoding comes twice or in capitals', async () => {
    await request(`${proxy.url}/case-coding`);
    const once = await get('/case-coding', 'ACCEPT-ENCODING: identity\r\n');
    const twice = await get('/case-coding', 'Accept-Encoding: identity\r\naccept-encoding: gzip;q=0\r\n');
    for (const reply of [once, twice]) {
      expect(reply).toMatch(/^HTTP\/1\.1 200 /);
      expect(reply).not.toMatch(/\r\ncontent-encoding:/i);
      expect(reply.endsWith('body of /case-coding')).toBe(true);
    }
    expect(origin.count('/case-coding')).toBe(1);
  });
});

describe('serializeFields', () => {
  it('writes each field as Node does, a field with several values once per value', () => {
    expect(serializeFields(['content-type', 'text/plain', 'set-cookie', ['a=1', 'b=2'], 'etag', '"x"'])).toBe(
      'content-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\netag: "x"\r\n',
    );
    expect(serializeFields(['age', '1', 'x-cache', 'HIT'], 2)).toBe('x-cache: HIT\r\n');
    expect(serializeFields([])).toBe('');
  });

  it('refuses what writeHead would refuse, also for a name it accepted before', () => {
    expect(serializeFields(['x-ok', 'fine'])).toBe('x-ok: fine\r\n');
    expect(serializeFields(['x-ok', 'bad\u0001value'])).toBeUndefined();
    expect(serializeFields(['x-ok', ['fine', 'bad\nvalue']])).toBeUndefined();
    expect(serializeFields(['bad name', 'v'])).toBeUndefined();
    expect(serializeFields(['x-ok', 'fine', 'bad:name', 'v'])).toBeUndefined();
  });
});
