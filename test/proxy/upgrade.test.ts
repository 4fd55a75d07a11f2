/**
 * Requests that carry `Upgrade` (with `Connection: upgrade`) but are not WebSocket upgrades: node:http hands
 * them to the server's 'upgrade' listener with the parser detached, so they must be served as the plain requests
 * they are (RFC 9110 §7.8 lets a server ignore Upgrade), on a connection that keeps behaving as HTTP/1.1.
 * Raw sockets throughout: what matters is what is on the wire and whether the server lets go of the socket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import net from 'node:net';
import { exchange, openConnections, parseResponses, sleep } from '../helpers/http.js';

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin(async (req, res, recorded) => {
    if (req.url?.startsWith('/slow')) await sleep(150);
    const body = `${req.method} ${req.url} body=${recorded.body.toString()} upgrade=${req.headers.upgrade ?? '-'}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=60' });
    res.end(body);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

/** What `curl --http2 http://…` adds to an http:// request. */
const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';

const connections = (): Promise<number> => openConnections(proxy.edgecache.app.server);

describe('a request other than a WebSocket GET that carries Upgrade', () => {
  it('POST with Upgrade: h2c (curl --http2 -d) is forwarded as a plain POST, body and all, and a pipelined request behind it is answered', async () => {
    const result = await exchange(
      proxy.port,
      `POST /form HTTP/1.1\r\nHost: a.test\r\n${H2C}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello` + 'GET /after-post HTTP/1.1\r\nHost: a.test\r\n\r\n',
      { responses: 2 },
    );
    expect(result.responses.map((r) => r.status)).toEqual([200, 200]);
    expect(result.responses[0]?.body).toBe('POST /form body=hello upgrade=-');
    expect(result.responses[0]?.headers['x-cache']).toBe('BYPASS');
    expect(result.responses[1]?.body).toBe('GET /after-post body= upgrade=-');
    // Nothing upgraded: no 101, and the origin never saw Upgrade or HTTP2-Settings.
    expect(result.reply).not.toContain(' 101 ');
    const forwarded = origin.requests.find((r) => r.url === '/form');
    expect(forwarded?.headers.upgrade).toBeUndefined();
    expect(forwarded?.headers['http2-settings']).toBeUndefined();
    expect(await connections()).toBe(0);
  });

  it.each([
    ['PUT', 'h2c'],
    ['PUT', 'foo'],
    ['OPTIONS', 'h2c'],
    ['OPTIONS', 'foo'],
    ['DELETE', 'foo'],
    ['PATCH', 'websocket'],
    ['POST', 'websocket'],
  ])('%s with Upgrade: %s is answered, not left hanging', async (method, protocol) => {
    const result = await exchange(
      proxy.port,
      `${method} /m-${method}-${protocol} HTTP/1.1\r\nHost: a.test\r\nConnection: upgrade\r\nUpgrade: ${protocol}\r\nContent-Length: 2\r\n\r\nhi`,
      { responses: 1 },
    );
    expect(result.responses[0]?.status).toBe(200);
    expect(result.responses[0]?.body).toBe(`${method} /m-${method}-${protocol} body=hi upgrade=-`);
    expect(await connections()).toBe(0);
  });

  it('a GET with Upgrade: h2c (curl --http2) is a normal cacheable GET on a keep-alive connection: a pipelined request behind it is answered', async () => {
    const result = await exchange(proxy.port, `GET /h2c-get HTTP/1.1\r\nHost: a.test\r\n${H2C}\r\nGET /h2c-next HTTP/1.1\r\nHost: a.test\r\n\r\n`, { responses: 2 });
    expect(result.responses.map((r) => r.status)).toEqual([200, 200]);
    expect(result.responses[0]?.body).toBe('GET /h2c-get body= upgrade=-');
    expect(result.responses[0]?.headers.connection).toBe('keep-alive');
    expect(result.responses[1]?.body).toBe('GET /h2c-next body= upgrade=-');
    expect(result.closed).toBe(false);
    // Stored, and the same upgrade-carrying GET is then a hit (served by the hit path).
    const again = await exchange(proxy.port, `GET /h2c-get HTTP/1.1\r\nHost: a.test\r\n${H2C}\r\n`, { responses: 1 });
    expect(again.responses[0]?.headers['x-cache']).toBe('HIT');
    expect(origin.count('/h2c-get')).toBe(1);
    expect(await connections()).toBe(0);
  });

  it('Connection: close alongside the upgrade is honoured: the answer says close and the server closes', async () => {
    const result = await exchange(
      proxy.port,
      `GET /h2c-close HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
      { responses: 1, waitForClose: true },
    );
    expect(result.responses[0]?.status).toBe(200);
    expect(result.responses[0]?.headers.connection).toBe('close');
    expect(result.closed).toBe(true);
  });

  it('waits for the answers to requests pipelined before it, and answers in order', async () => {
    const result = await exchange(
      proxy.port,
      'GET /slow-first HTTP/1.1\r\nHost: a.test\r\n\r\n' + `POST /after-slow HTTP/1.1\r\nHost: a.test\r\n${H2C}Content-Length: 3\r\n\r\nabc`,
      { responses: 2 },
    );
    expect(result.responses.map((r) => r.body)).toEqual(['GET /slow-first body= upgrade=-', 'POST /after-slow body=abc upgrade=-']);
  });

  it('a body that arrives after the head is still read', async () => {
    const socket = net.connect(proxy.port, '127.0.0.1');
    let reply = '';
    socket.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    socket.write(`POST /late-body HTTP/1.1\r\nHost: a.test\r\n${H2C}Content-Length: 4\r\n\r\n`);
    await sleep(100);
    socket.write('late');
    const deadline = Date.now() + 3000;
    while (parseResponses(reply).length === 0 && Date.now() < deadline) await sleep(10);
    socket.destroy();
    expect(parseResponses(reply)[0]?.body).toBe('POST /late-body body=late upgrade=-');
    expect(await connections()).toBe(0);
  });

  it('field values are forwarded byte for byte (the head is rebuilt from what was received)', async () => {
    const value = Buffer.from('caf\u00e9 \u2603', 'utf8');
    const head = Buffer.from(`POST /bytes HTTP/1.1\r\nHost: a.test\r\nConnection: upgrade\r\nUpgrade: foo\r\nX-Note:   `, 'latin1');
    const rest = Buffer.from('  \r\nContent-Length: 0\r\n\r\n', 'latin1');
    const result = await exchange(proxy.port, Buffer.concat([head, value, rest]), { responses: 1 });
    expect(result.responses[0]?.status).toBe(200);
    const forwarded = origin.requests.find((r) => r.url === '/bytes');
    expect(Buffer.from(forwarded?.headers['x-note'] as string, 'latin1')).toEqual(value);
  });

  it('a GET naming websocket in Upgrade without Connection: upgrade is not an upgrade: a plain cacheable GET', async () => {
    const send = (): ReturnType<typeof exchange> =>
      exchange(proxy.port, 'GET /ws-no-connection HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n\r\n', { responses: 1 });
    expect((await send()).responses[0]?.headers['x-cache']).toBe('MISS');
    expect((await send()).responses[0]?.headers['x-cache']).toBe('HIT');
    expect(origin.requests.find((r) => r.url === '/ws-no-connection')?.headers.upgrade).toBeUndefined();
  });

  it('many of them pipelined on one connection, chunked bodies too, are all answered in order', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      const count = 200;
      let text = '';
      for (let i = 0; i < count; i++) {
        text +=
          i % 2 === 0
            ? `POST /pipe-${i} HTTP/1.1\r\nHost: a.test\r\nConnection: upgrade\r\nUpgrade: foo\r\nContent-Length: 1\r\n\r\n${i % 10}`
            : `POST /pipe-${i} HTTP/1.1\r\nHost: a.test\r\n${H2C}Transfer-Encoding: chunked\r\n\r\n1\r\n${i % 10}\r\n0\r\n\r\n`;
      }
      const result = await exchange(proxy.port, text, { responses: count, ms: 10_000 });
      expect(result.responses.map((r) => r.body)).toEqual(Array.from({ length: count }, (_, i) => `POST /pipe-${i} body=${i % 10} upgrade=-`));
      expect(await connections()).toBe(0);
      // No listener piles up on the socket as it is handed back to node:http again and again.
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a few hundred of them leave no socket behind', async () => {
    const total = 300;
    const parallel = 20;
    for (let sent = 0; sent < total; sent += parallel) {
      const batch = await Promise.all(
        Array.from({ length: parallel }, (_, i) =>
          exchange(
            proxy.port,
            `POST /loop-${sent + i} HTTP/1.1\r\nHost: a.test\r\nConnection: upgrade\r\nUpgrade: foo\r\nContent-Length: 1\r\n\r\nx`,
            { responses: 1, ms: 2000 },
          ),
        ),
      );
      expect(batch.filter((r) => r.responses[0]?.status !== 200)).toHaveLength(0);
    }
    expect(await connections()).toBe(0);
  });
});
