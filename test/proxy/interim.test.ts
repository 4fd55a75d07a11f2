import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { raw } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { h2Close, h2Connect, h2Request } from '../helpers/tls.js';

// Interim responses (RFC 9110 §15.2, RFC 8297): the origin's 102 and 103 reach the client as they come, over
// HTTP/1.1 and HTTP/2 (h2c here), never an HTTP/1.0 client; never stored: a later HIT has
// no 103 and the final response keeps only its own fields.
const LINK = '</style.css>; rel=preload; as=style';

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    res.writeProcessing();
    res.writeEarlyHints({ link: LINK, 'x-hint': 'early' });
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
    res.end(`final ${req.url}`);
  });
  proxy = await startProxy(origin.url, { h2c: true });
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
});

/** The status lines of a raw reply, in order. */
function statusLines(reply: string): string[] {
  return reply.split('\r\n').filter((line) => /^HTTP\/1\.[01] \d{3}/.test(line));
}

describe('1xx from the origin', () => {
  it('relays 102 and 103 to an HTTP/1.1 client and stores only the final response', async () => {
    const miss = await raw(proxy.port, 'GET /h1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    expect(statusLines(miss)).toEqual(['HTTP/1.1 102 Processing', 'HTTP/1.1 103 Early Hints', 'HTTP/1.1 200 OK']);
    const [interim, final] = miss.split('HTTP/1.1 200 OK');
    expect(interim).toContain(`link: ${LINK}`);
    expect(interim).toContain('x-hint: early');
    expect(final).not.toMatch(/^link:/im);
    expect(final).toMatch(/^x-cache: MISS/im);
    expect(final).toContain('final /h1');
    const hit = await raw(proxy.port, 'GET /h1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    expect(statusLines(hit)).toEqual(['HTTP/1.1 200 OK']);
    expect(hit).toMatch(/^x-cache: HIT/im);
    expect(hit).not.toMatch(/^link:|^x-hint:/im);
    expect(origin.count('/h1')).toBe(1);
  });

  it('sends no 1xx to an HTTP/1.0 client', async () => {
    const reply = await raw(proxy.port, 'GET /h10 HTTP/1.0\r\nHost: a.test\r\n\r\n');
    expect(statusLines(reply)).toEqual(['HTTP/1.1 200 OK']);
    expect(reply).toContain('final /h10');
  });

  it('relays 103 on HTTP/2 as informational headers, and not on a later HIT', async () => {
    const session = h2Connect(`http://127.0.0.1:${proxy.port}`);
    try {
      const miss = await h2Request(session, { ':path': '/h2' });
      expect(miss.informational.map((h) => h[':status'])).toEqual([102, 103]);
      expect(miss.informational[1]?.link).toBe(LINK);
      expect(miss.headers['x-cache']).toBe('MISS');
      expect(miss.headers.link).toBeUndefined();
      const hit = await h2Request(session, { ':path': '/h2' });
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.informational).toEqual([]);
      expect(hit.headers.link).toBeUndefined();
      expect(hit.body.toString()).toBe('final /h2');
    } finally {
      await h2Close(session);
    }
  });
});

describe("edgecache's own 103 from a stored response's preload links (RFC 8297)", () => {
  const STORED_LINKS = '</app.css>; rel=preload; as=style, </app.js>; rel="modulepreload", <https://cdn.test>; rel=preconnect, </next>; rel=next';

  it('sends them while revalidating a stale entry, on HTTP/1.1 and HTTP/2, and not for HEAD or a fresh hit', async () => {
    const hinted = await startOrigin((req, res) => {
      const conditional = req.headers['if-none-match'] === '"v1"';
      const fields = { 'cache-control': 'max-age=1', etag: '"v1"', link: STORED_LINKS, 'content-type': 'text/html' };
      if (conditional) {
        res.writeHead(304, fields).end();
        return;
      }
      res.writeHead(200, fields).end('<html>');
    });
    const edge = await startProxy(hinted.url, { h2c: true });
    try {
      const get = (p: string, method = 'GET') => raw(edge.port, `${method} ${p} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
      for (const p of ['/page', '/head', '/h2page']) expect(statusLines(await get(p))).toEqual(['HTTP/1.1 200 OK']);
      // Fresh: no hints.
      expect(statusLines(await get('/page'))).toEqual(['HTTP/1.1 200 OK']);
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const revalidated = await get('/page');
      expect(statusLines(revalidated)).toEqual(['HTTP/1.1 103 Early Hints', 'HTTP/1.1 200 OK']);
      const [interim, final] = revalidated.split('HTTP/1.1 200 OK');
      // Only the hinting relations, each a link-value of its own.
      expect(interim?.match(/^link: .*$/gim)).toEqual(['link: </app.css>; rel=preload; as=style', 'link: </app.js>; rel="modulepreload"', 'link: <https://cdn.test>; rel=preconnect']);
      expect(final).toMatch(/^x-cache: REVALIDATED/im);
      const head = await get('/head', 'HEAD');
      expect(statusLines(head)).toEqual(['HTTP/1.1 200 OK']);
      const session = h2Connect(`http://127.0.0.1:${edge.port}`);
      try {
        const h2 = await h2Request(session, { ':path': '/h2page', ':authority': 'a.test' });
        expect(h2.informational.map((h) => h[':status'])).toEqual([103]);
        expect(h2.headers['x-cache']).toBe('REVALIDATED');
      } finally {
        await h2Close(session);
      }
    } finally {
      await edge.close();
      await hinted.close();
    }
  });
});
