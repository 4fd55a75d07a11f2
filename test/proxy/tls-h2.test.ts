import { randomBytes, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { h2Close, h2Connect, h2Request, httpsRequest, makeCert, type TestCert } from '../helpers/tls.js';

// TLS on the proxy port (HTTP/1.1 and HTTP/2 by ALPN), HTTP/2 with prior knowledge on a plain port (--h2c), the
// scheme in the cache key, and a certificate reload under open connections. Real origin, real proxy, real clients.
const TOKEN = 'tls-test-token';
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

let dir: string;
let cert: TestCert;
let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'edgecache-tls-test-'));
  cert = makeCert(dir);
  origin = await startOrigin((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/vary')) {
      res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language', 'content-type': 'text/plain' });
      res.end(`lang=${req.headers['accept-language'] ?? 'none'}`);
      return;
    }
    if (url.startsWith('/hop')) {
      // Connection-specific fields from the origin: never on an h2 response (RFC 9113 §8.2.2).
      res.writeHead(200, { 'cache-control': url.includes('nocache') ? 'no-store' : 'max-age=60', connection: 'keep-alive, x-private', 'keep-alive': 'timeout=5', 'x-private': '1', 'x-kept': 'yes' });
      res.end('hop');
      return;
    }
    if (req.method === 'POST') {
      res.writeHead(201, { connection: 'keep-alive', 'keep-alive': 'timeout=5', 'content-type': 'text/plain' });
      res.end('posted');
      return;
    }
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain', 'x-proto-seen': String(req.headers['x-forwarded-proto']) });
    res.end(`body of ${url}`);
  });
  proxy = await startProxy(origin.url, { tlsCert: cert.certPath, tlsKey: cert.keyPath, adminToken: TOKEN, dataDir: path.join(dir, 'data') });
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('HTTP/1.1 over TLS', () => {
  it('MISS then HIT, and the origin sees X-Forwarded-Proto: https', async () => {
    const first = await httpsRequest(proxy.port, '/h1/a', { ca: cert.cert });
    expect(first.status).toBe(200);
    expect(first.alpn).toBe('http/1.1');
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['x-proto-seen']).toBe('https');
    expect(origin.requests.at(-1)?.headers['x-forwarded-proto']).toBe('https');
    const second = await httpsRequest(proxy.port, '/h1/a', { ca: cert.cert });
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body.toString()).toBe('body of /h1/a');
    expect(origin.count('/h1/a')).toBe(1);
  });

  it('negotiates h2 when offered, http/1.1 otherwise, and refuses TLS 1.1', async () => {
    const both = await new Promise<string | false | null>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: cert.cert, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(socket.alpnProtocol);
        socket.end();
      });
      socket.on('error', reject);
    });
    expect(both).toBe('h2');
    const h1 = await httpsRequest(proxy.port, '/h1/a', { ca: cert.cert, alpn: ['http/1.1'] });
    expect(h1.alpn).toBe('http/1.1');
    const old = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: cert.cert, servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => {
        resolve('connected');
        socket.end();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(old).not.toBe('connected');
  });
});

describe('HTTP/2 over TLS', () => {
  it('MISS then HIT (the h2 fast path), with X-Cache, Cache-Status and no connection-specific field', async () => {
    const session = h2Connect(`https://127.0.0.1:${proxy.port}`, cert.cert);
    try {
      const first = await h2Request(session, { ':path': '/h2/a' });
      expect(first.status).toBe(200);
      expect(first.headers['x-cache']).toBe('MISS');
      expect(first.body.toString()).toBe('body of /h2/a');
      // :authority stands for Host: the origin gets it as Host, and X-Forwarded-Proto https.
      expect(origin.requests.at(-1)?.headers.host).toBe(`localhost:${proxy.port}`);
      expect(origin.requests.at(-1)?.headers['x-forwarded-proto']).toBe('https');
      const hitsBefore = proxy.edgecache.stats.hits;
      const second = await h2Request(session, { ':path': '/h2/a' });
      expect(second.headers['x-cache']).toBe('HIT');
      // Counted (and timed) like an HTTP/1.1 hit, though answered on the stream without the router.
      expect(proxy.edgecache.stats.hits).toBe(hitsBefore + 1);
      expect(await proxy.edgecache.metrics.text()).toMatch(/^edgecache_requests_total\{cache="hit",tier="memory"\} [1-9]/m);
      expect(second.headers['cache-status']).toMatch(/^edgecache; hit/);
      expect(second.headers['content-length']).toBe(String('body of /h2/a'.length));
      expect(second.headers.age).toBeDefined();
      expect(second.body.toString()).toBe('body of /h2/a');
      const head = await h2Request(session, { ':path': '/h2/a', ':method': 'HEAD' });
      expect(head.headers['x-cache']).toBe('HIT');
      expect(head.body.length).toBe(0);
      expect(origin.count('/h2/a')).toBe(1);
      // The same entry over HTTP/1.1: both protocols share the cache.
      const h1 = await httpsRequest(proxy.port, '/h2/a', { ca: cert.cert, headers: { host: `localhost:${proxy.port}` } });
      expect(h1.headers['x-cache']).toBe('HIT');
    } finally {
      await h2Close(session);
    }
  });

  it('relays and serves responses without connection-specific fields (stored, hit, pass-through)', async () => {
    const session = h2Connect(`https://127.0.0.1:${proxy.port}`, cert.cert);
    try {
      const miss = await h2Request(session, { ':path': '/hop' });
      const hit = await h2Request(session, { ':path': '/hop' });
      const bypass = await h2Request(session, { ':path': '/hop?nocache' });
      const post = await h2Request(session, { ':path': '/post', ':method': 'POST', 'content-type': 'text/plain' }, 'x');
      expect([miss.headers['x-cache'], hit.headers['x-cache']]).toEqual(['MISS', 'HIT']);
      expect(post.status).toBe(201);
      expect(post.body.toString()).toBe('posted');
      for (const res of [miss, hit, bypass, post]) {
        for (const name of CONNECTION_SPECIFIC) expect(res.headers[name]).toBeUndefined();
        // A field the origin's Connection nominated is hop-by-hop too.
        expect(res.headers['x-private']).toBeUndefined();
      }
      expect(hit.headers['x-kept']).toBe('yes');
    } finally {
      await h2Close(session);
    }
  });

  it('Vary selects the variant over h2 as over HTTP/1.1', async () => {
    const session = h2Connect(`https://127.0.0.1:${proxy.port}`, cert.cert);
    try {
      const en = await h2Request(session, { ':path': '/vary', 'accept-language': 'en' });
      const fr = await h2Request(session, { ':path': '/vary', 'accept-language': 'fr' });
      const en2 = await h2Request(session, { ':path': '/vary', 'accept-language': 'en' });
      const fr2 = await h2Request(session, { ':path': '/vary', 'accept-language': 'fr' });
      expect([en.body.toString(), fr.body.toString(), en2.body.toString(), fr2.body.toString()]).toEqual(['lang=en', 'lang=fr', 'lang=en', 'lang=fr']);
      expect([en.headers['x-cache'], fr.headers['x-cache'], en2.headers['x-cache'], fr2.headers['x-cache']]).toEqual(['MISS', 'MISS', 'HIT', 'HIT']);
      expect(origin.count('/vary')).toBe(2);
    } finally {
      await h2Close(session);
    }
  });

  it('PURGE over h2 needs the token and removes the entry', async () => {
    const session = h2Connect(`https://127.0.0.1:${proxy.port}`, cert.cert);
    try {
      await h2Request(session, { ':path': '/h2/purged' });
      expect((await h2Request(session, { ':path': '/h2/purged' })).headers['x-cache']).toBe('HIT');
      const refused = await h2Request(session, { ':path': '/h2/purged', ':method': 'PURGE' });
      expect(refused.status).toBe(401);
      const purged = await h2Request(session, { ':path': '/h2/purged', ':method': 'PURGE', authorization: `Bearer ${TOKEN}` });
      expect(purged.status).toBe(200);
      expect(JSON.parse(purged.body.toString())).toMatchObject({ status: 'ok', purged: 1 });
      const after = await h2Request(session, { ':path': '/h2/purged' });
      expect(after.headers['x-cache']).toBe('MISS');
      expect(origin.count('/h2/purged')).toBe(2);
    } finally {
      await h2Close(session);
    }
  });

  it('refuses a Host that differs from :authority (400)', async () => {
    const session = h2Connect(`https://127.0.0.1:${proxy.port}`, cert.cert);
    try {
      const mismatch = await h2Request(session, { ':path': '/h2/a', ':authority': `localhost:${proxy.port}`, host: 'elsewhere.test' });
      expect(mismatch.status).toBe(400);
      expect(mismatch.body.toString()).toMatch(/differs from :authority/);
    } finally {
      await h2Close(session);
    }
  });

  it('bounds concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS)', async () => {
    const session = h2Connect(`https://127.0.0.1:${proxy.port}`, cert.cert);
    try {
      const settings = await new Promise<{ maxConcurrentStreams?: number }>((resolve) => session.once('remoteSettings', resolve));
      expect(settings.maxConcurrentStreams).toBe(100);
    } finally {
      await h2Close(session);
    }
  });
});

describe('the scheme in the cache key', () => {
  it('keys https entries apart: a redirect cached for http clients never reaches https clients', async () => {
    const shared = path.join(dir, 'shared');
    const redirecting = await startOrigin((req, res) => {
      if (req.headers['x-forwarded-proto'] === 'http') {
        res.writeHead(301, { location: `https://localhost${req.url}`, 'cache-control': 'max-age=600' });
        res.end();
        return;
      }
      res.writeHead(200, { 'cache-control': 'max-age=600' });
      res.end('secure page');
    });
    try {
      const plain = await startProxy(redirecting.url, { dataDir: shared });
      const host = { host: 'site.test' };
      expect((await request(`${plain.url}/page`, { headers: host })).status).toBe(301);
      expect((await request(`${plain.url}/page`, { headers: host })).headers['x-cache']).toBe('HIT');
      await plain.close();
      // The same data directory behind a TLS port: the stored redirect is not the answer for https.
      const secure = await startProxy(redirecting.url, { dataDir: shared, tlsCert: cert.certPath, tlsKey: cert.keyPath });
      try {
        const res = await httpsRequest(secure.port, '/page', { ca: cert.cert, headers: host });
        expect(res.status).toBe(200);
        expect(res.body.toString()).toBe('secure page');
        expect((await httpsRequest(secure.port, '/page', { ca: cert.cert, headers: host })).headers['x-cache']).toBe('HIT');
        expect(redirecting.count('/page')).toBe(2);
        // A purge by URL reaches both schemes' entries.
        const res2 = await request(`${secure.adminUrl}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ urls: ['http://site.test/page'] }) });
        expect(JSON.parse(res2.text)).toMatchObject({ purged: 2 });
      } finally {
        await secure.close();
      }
    } finally {
      await redirecting.close();
    }
  });
});

describe('certificate reload', () => {
  it('keeps open connections and gives new ones the new certificate; a bad file keeps the old one', async () => {
    const own = mkdtempSync(path.join(dir, 'reload-'));
    const first = makeCert(own, 'first');
    const second = makeCert(own, 'second', 'renewed.localhost');
    const live = { certPath: path.join(own, 'live.crt'), keyPath: path.join(own, 'live.key') };
    copyFileSync(first.certPath, live.certPath);
    copyFileSync(first.keyPath, live.keyPath);
    const secure = await startProxy(origin.url, { tlsCert: live.certPath, tlsKey: live.keyPath });
    const ca = Buffer.concat([first.cert, second.cert]);
    const peerCert = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: secure.port, ca, servername: 'localhost' }, () => {
          resolve(new X509Certificate(socket.getPeerX509Certificate()?.raw ?? Buffer.alloc(0)).subject);
          socket.end();
        });
        socket.on('error', reject);
      });
    const session = h2Connect(`https://127.0.0.1:${secure.port}`, ca);
    try {
      expect((await h2Request(session, { ':path': '/reload/1' })).status).toBe(200);
      expect(await peerCert()).toBe('CN=localhost');
      copyFileSync(second.certPath, live.certPath);
      copyFileSync(second.keyPath, live.keyPath);
      expect(secure.edgecache.reloadTls()).toBeUndefined();
      // The open connection goes on; a new one gets the renewed certificate.
      expect((await h2Request(session, { ':path': '/reload/2' })).status).toBe(200);
      expect(await peerCert()).toBe('CN=renewed.localhost');
      // A broken file on reload: the problem is told, and the previous certificate stays.
      writeFileSync(live.keyPath, 'not a key');
      expect(secure.edgecache.reloadTls()).toMatch(/invalid --tls-key .*live\.key/);
      expect(await peerCert()).toBe('CN=renewed.localhost');
      expect((await h2Request(session, { ':path': '/reload/3' })).status).toBe(200);
    } finally {
      await h2Close(session);
      await secure.close();
    }
  });
});

describe('session-ticket keys', () => {
  it('a session from one process resumes on another with the same ticket keys (as --workers shares them), not with others', async () => {
    const keys = randomBytes(48);
    const a = await startProxy(origin.url, { tlsCert: cert.certPath, tlsKey: cert.keyPath }, { ticketKeys: keys });
    const b = await startProxy(origin.url, { tlsCert: cert.certPath, tlsKey: cert.keyPath }, { ticketKeys: Buffer.from(keys) });
    const c = await startProxy(origin.url, { tlsCert: cert.certPath, tlsKey: cert.keyPath }, { ticketKeys: randomBytes(48) });
    const connect = (port: number, session?: Buffer): Promise<{ reused: boolean; ticket: Buffer | undefined }> =>
      new Promise((resolve, reject) => {
        let ticket: Buffer | undefined;
        const socket = tls.connect({ host: '127.0.0.1', port, ca: cert.cert, servername: 'localhost', ...(session && { session }) }, () => {
          socket.write('GET /ticket HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
        });
        socket.on('session', (s: Buffer) => (ticket = s));
        socket.on('data', () => undefined);
        socket.on('end', () => {
          resolve({ reused: socket.isSessionReused(), ticket });
          socket.destroy();
        });
        socket.on('error', reject);
      });
    try {
      const opening = await connect(a.port);
      expect(opening.ticket).toBeDefined();
      expect((await connect(b.port, opening.ticket)).reused).toBe(true);
      expect((await connect(c.port, opening.ticket)).reused).toBe(false);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });
});

describe('--h2c (HTTP/2 with prior knowledge on a plain port)', () => {
  it('serves h2c and HTTP/1.1 on the same port', async () => {
    const plain = await startProxy(origin.url, { h2c: true });
    const session = h2Connect(`http://127.0.0.1:${plain.port}`);
    try {
      const miss = await h2Request(session, { ':path': '/h2c/a' });
      expect(miss.headers['x-cache']).toBe('MISS');
      expect(origin.requests.at(-1)?.headers['x-forwarded-proto']).toBe('http');
      const hit = await h2Request(session, { ':path': '/h2c/a' });
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.body.toString()).toBe('body of /h2c/a');
      const h1 = await request(`${plain.url}/h2c/a`);
      expect(h1.headers['x-cache']).toBe('HIT');
      expect(origin.count('/h2c/a')).toBe(1);
    } finally {
      await h2Close(session);
      await plain.close();
    }
  });
});
