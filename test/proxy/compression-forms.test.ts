/**
 * Compressed forms on every path that serves stored bytes: the HTTP/1.1 and HTTP/2 (TLS) fresh hits, 304s per
 * form on both, byte ranges cut from a compressed form's own bytes (start, middle, end; If-Range per form;
 * several ranges), and the compressor's counters in /stats and /metrics, with exact values.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, type TestResponse } from '../helpers/http.js';
import { parseExposition } from '../helpers/prometheus.js';
import { sumWorkerStats } from '../../proxy/cluster/stats-sum.js';
import { createH2HitPath, createHitPath } from '../../proxy/http/hit-path.js';
import { OutcomeRecorder } from '../../proxy/pipeline/outcome.js';
import { ProxyMetrics } from '../../proxy/admin/metrics.js';
import { ProxyStats } from '../../proxy/admin/stats.js';
import { h2Close, h2Connect, h2Request, makeCert, type H2Response, type TestCert } from '../helpers/tls.js';

/** JSON that compresses like an API answer: repeated keys, varied values. */
function json(size: number): Buffer {
  const items: string[] = [];
  let i = 0;
  while (items.join(',').length < size) {
    items.push(`{"id":${i},"name":"item-${i}","tags":["a${i % 7}","b${i % 13}"],"price":${(i * 37) % 1000}.${i % 100}}`);
    i++;
  }
  return Buffer.from(`[${items.join(',')}]`.slice(0, size));
}

const BODY = json(60_000);
/** Random bytes: no coding saves 5 % of them. */
const NOISE = randomBytes(8_000);

let dir: string;
let cert: TestCert;
let origin: TestOrigin;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'edgecache-forms-test-'));
  cert = makeCert(dir);
  origin = await startOrigin((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/pre-gzipped')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', vary: 'Accept-Encoding', 'cache-control': 'public, max-age=600', etag: '"g"' });
      res.end(gzipSync(BODY));
      return;
    }
    if (url.startsWith('/zstd')) {
      // An origin that uses a coding it was not offered (edgecache never asks for zstd): stored as sent.
      // Chosen by Accept-Encoding (Vary), or not (?any: for every client, as the origin says).
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'zstd', 'cache-control': 'public, max-age=600', ...(!url.includes('any') && { vary: 'Accept-Encoding' }) });
      res.end(NOISE);
      return;
    }
    if (url.startsWith('/noise')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=600' });
      res.end(NOISE);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=600', etag: '"d1"' });
    res.end(BODY);
  });
});

afterAll(async () => {
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

function decode(coding: unknown, body: Buffer): Buffer {
  if (coding === 'br') return brotliDecompressSync(body);
  if (coding === 'gzip') return gunzipSync(body);
  expect(coding).toBeUndefined();
  return body;
}

const FORMS = [
  { ae: 'br, gzip', coding: 'br', etag: '"d1-br"' },
  { ae: 'gzip', coding: 'gzip', etag: '"d1-gzip"' },
  { ae: '', coding: undefined, etag: '"d1"' },
] as const;

describe('forms over HTTP/1.1', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy(origin.url);
  });
  afterAll(async () => {
    await proxy?.close();
  });
  const get = (p: string, headers: Record<string, string> = {}): Promise<TestResponse> => request(`${proxy.url}${p}`, { headers });

  it('serves each form with its own head, decoded byte-equal, 304 to its own tag, from one origin fetch', async () => {
    await get('/h1.json');
    await proxy.edgecache.compressor.idle();
    for (const { ae, coding, etag } of FORMS) {
      const headers: Record<string, string> = ae ? { 'accept-encoding': ae } : {};
      const hit = await get('/h1.json', headers);
      expect([hit.status, hit.headers['x-cache'], hit.headers['content-encoding'], hit.headers.etag]).toEqual([200, 'HIT', coding, etag]);
      expect(hit.headers.vary).toMatch(/accept-encoding/i);
      expect(Number(hit.headers['content-length'])).toBe(hit.body.length);
      expect(decode(coding, hit.body).equals(BODY)).toBe(true);
      const head = await request(`${proxy.url}/h1.json`, { method: 'HEAD', headers });
      expect([head.headers['content-encoding'], head.headers['content-length'], head.body.length]).toEqual([coding, String(hit.body.length), 0]);
      const notModified = await get('/h1.json', { ...headers, 'if-none-match': etag });
      expect([notModified.status, notModified.headers.etag, notModified.body.length]).toEqual([304, etag, 0]);
    }
    expect(origin.count('/h1.json')).toBe(1);
  });

  it('cuts ranges from the compressed form served (start, middle, end), held to that form', async () => {
    await get('/range.json');
    await proxy.edgecache.compressor.idle();
    for (const { ae, coding, etag } of FORMS.slice(0, 2)) {
      const whole = await get('/range.json', { 'accept-encoding': ae });
      expect(whole.headers['content-encoding']).toBe(coding);
      const length = whole.body.length;
      for (const [spec, start, end] of [
        ['bytes=0-99', 0, 99],
        [`bytes=${Math.floor(length / 2)}-${Math.floor(length / 2) + 999}`, Math.floor(length / 2), Math.floor(length / 2) + 999],
        ['bytes=-100', length - 100, length - 1],
      ] as const) {
        const part = await get('/range.json', { 'accept-encoding': ae, range: spec, 'if-range': etag });
        expect([part.status, part.headers['content-encoding'], part.headers.etag]).toEqual([206, coding, etag]);
        expect(part.headers['content-range']).toBe(`bytes ${start}-${end}/${length}`);
        expect(part.body.equals(whole.body.subarray(start, end + 1))).toBe(true);
      }
      // Another form's tag in If-Range: the whole of the form served.
      const other = await get('/range.json', { 'accept-encoding': ae, range: 'bytes=0-99', 'if-range': '"d1"' });
      expect([other.status, other.headers['content-encoding']]).toEqual([200, coding]);
      expect(other.body.equals(whole.body)).toBe(true);
      // Several ranges of a compressed form: the whole form (a Content-Encoding cannot describe a multipart body).
      const several = await get('/range.json', { 'accept-encoding': ae, range: 'bytes=0-9,100-109' });
      expect([several.status, several.headers['content-encoding']]).toEqual([200, coding]);
      expect(several.body.equals(whole.body)).toBe(true);
      const unsatisfiable = await get('/range.json', { 'accept-encoding': ae, range: `bytes=${length}-` });
      expect([unsatisfiable.status, unsatisfiable.headers['content-range']]).toEqual([416, `bytes */${length}`]);
    }
    // Several ranges of the identity form: multipart/byteranges, as before.
    const multipart = await get('/range.json', { range: 'bytes=0-9,100-109' });
    expect(multipart.status).toBe(206);
    expect(multipart.headers['content-type']).toMatch(/^multipart\/byteranges; boundary=/);
    expect(multipart.headers['content-encoding']).toBeUndefined();
    const text = multipart.body.toString('latin1');
    expect(text).toContain(`Content-Range: bytes 0-9/${BODY.length}\r\n\r\n${BODY.subarray(0, 10).toString('latin1')}`);
    expect(text).toContain(`Content-Range: bytes 100-109/${BODY.length}\r\n\r\n${BODY.subarray(100, 110).toString('latin1')}`);
    expect(origin.count('/range.json')).toBe(1);
  });
});

describe('the fast paths themselves', () => {
  // The proxy's own store, filled through the proxy; the hit paths under test run on servers of their own that
  // answer 599 when the hit path declines, so that what the hit path serves is told apart from the pipeline.
  let proxy: TestProxy;
  let h1: http.Server;
  let h2: http2.Http2Server;
  beforeAll(async () => {
    proxy = await startProxy(origin.url);
    const stats = new ProxyStats();
    const outcomes = new OutcomeRecorder(stats, new ProxyMetrics(stats, undefined), undefined);
    const hitPath = createHitPath(proxy.edgecache.store, outcomes, Date.now, 'http');
    h1 = http.createServer((req, res) => {
      if (!hitPath(req, res, performance.now())) {
        res.writeHead(599);
        res.end();
      }
    });
    const h2HitPath = createH2HitPath(proxy.edgecache.store, outcomes, Date.now, 'http');
    h2 = http2.createServer();
    h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      if (!h2HitPath(stream, headers, rawHeaders)) stream.respond({ ':status': 599 }, { endStream: true });
    });
    await new Promise<void>((resolve) => h1.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    await request(`${proxy.url}/fast.json`);
    await request(`${proxy.url}/pre-gzipped.json`, { headers: { 'accept-encoding': 'gzip' } });
    await proxy.edgecache.compressor.idle();
  });
  afterAll(async () => {
    await new Promise((resolve) => h1?.close(resolve));
    await new Promise((resolve) => h2?.close(resolve));
    await proxy?.close();
  });

  /** The proxy's Host: the same cache key as the requests that filled the store. */
  const host = (): string => `127.0.0.1:${proxy.port}`;

  it('HTTP/1.1: serves the form Accept-Encoding selects with its own head, declines what it cannot serve', async () => {
    const port = (h1.address() as AddressInfo).port;
    const get = (p: string, ae?: string): Promise<TestResponse> =>
      request(`http://127.0.0.1:${port}${p}`, { headers: { host: host(), ...(ae !== undefined && { 'accept-encoding': ae }) } });
    for (const { ae, coding, etag } of FORMS) {
      const hit = await get('/fast.json', ae || undefined);
      expect([hit.status, hit.headers['x-cache'], hit.headers['content-encoding'], hit.headers.etag]).toEqual([200, 'HIT', coding, etag]);
      expect(Number(hit.headers['content-length'])).toBe(hit.body.length);
      expect(decode(coding, hit.body).equals(BODY)).toBe(true);
    }
    expect((await get('/fast.json', 'zstd, identity;q=0')).status).toBe(599);
    // The origin's gzip: as stored to a client that takes it, declined (decoded by the pipeline) for one that does not.
    const gzip = await get('/pre-gzipped.json', 'gzip');
    expect([gzip.status, gzip.headers['content-encoding'], gzip.headers.etag]).toEqual([200, 'gzip', '"g"']);
    expect(gunzipSync(gzip.body).equals(BODY)).toBe(true);
    expect((await get('/pre-gzipped.json')).status).toBe(599);
    // A coding it cannot undo nor replace: declined, whatever the client accepts (the pipeline decides).
    await request(`${proxy.url}/zstd-fast.json`);
    expect((await get('/zstd-fast.json', 'zstd')).status).toBe(599);
  });

  it('HTTP/2: the same, with the form\'s h2 header object', async () => {
    const port = (h2.address() as AddressInfo).port;
    const session = h2Connect(`http://127.0.0.1:${port}`);
    try {
      const get = (p: string, ae?: string): Promise<H2Response> =>
        h2Request(session, { ':path': p, ':authority': host(), ...(ae !== undefined && { 'accept-encoding': ae }) });
      for (const { ae, coding, etag } of FORMS) {
        const hit = await get('/fast.json', ae || undefined);
        expect([hit.status, hit.headers['x-cache'], hit.headers['content-encoding'], hit.headers.etag]).toEqual([200, 'HIT', coding, etag]);
        expect(Number(hit.headers['content-length'])).toBe(hit.body.length);
        expect(decode(coding, hit.body).equals(BODY)).toBe(true);
      }
      expect((await get('/fast.json', 'zstd, identity;q=0')).status).toBe(599);
      expect((await get('/pre-gzipped.json', 'gzip')).headers['content-encoding']).toBe('gzip');
      expect((await get('/pre-gzipped.json')).status).toBe(599);
    } finally {
      await h2Close(session);
    }
  });
});

describe('forms over HTTP/2 (TLS)', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy(origin.url, { tlsCert: cert.certPath, tlsKey: cert.keyPath });
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('serves each form on the h2 hit path with its own head, decoded byte-equal, and 304 per form', async () => {
    const session = h2Connect(`https://localhost:${proxy.port}`, cert.cert);
    try {
      const get = (headers: Record<string, string>): Promise<H2Response> => h2Request(session, { ':path': '/h2.json', ...headers });
      const miss = await get({ 'accept-encoding': 'br' });
      expect([miss.status, miss.headers['x-cache']]).toEqual([200, 'MISS']);
      expect(decode(miss.headers['content-encoding'], miss.body).equals(BODY)).toBe(true);
      await proxy.edgecache.compressor.idle();
      const lengths = new Set<number>();
      for (const { ae, coding, etag } of FORMS) {
        const headers: Record<string, string> = ae ? { 'accept-encoding': ae } : {};
        const hit = await get(headers);
        expect([hit.status, hit.headers['x-cache'], hit.headers['content-encoding'], hit.headers.etag]).toEqual([200, 'HIT', coding, etag]);
        expect(String(hit.headers.vary)).toMatch(/accept-encoding/i);
        expect(Number(hit.headers['content-length'])).toBe(hit.body.length);
        expect(decode(coding, hit.body).equals(BODY)).toBe(true);
        lengths.add(hit.body.length);
        const head = await get({ ...headers, ':method': 'HEAD' });
        expect([head.headers['content-encoding'], head.headers['content-length'], head.body.length]).toEqual([coding, String(hit.body.length), 0]);
        const notModified = await get({ ...headers, 'if-none-match': etag });
        expect([notModified.status, notModified.headers.etag]).toEqual([304, etag]);
        // A range of the form over h2 too (the full pipeline).
        const part = await get({ ...headers, range: 'bytes=5-54' });
        expect([part.status, part.headers['content-encoding']]).toEqual([206, coding]);
        expect(part.body.equals(hit.body.subarray(5, 55))).toBe(true);
      }
      expect(lengths.size).toBe(3);
      // Identity refused and only codings edgecache does not store: 406, never another form's bytes.
      const refused = await get({ 'accept-encoding': 'zstd, identity;q=0' });
      expect(refused.status).toBe(406);
      expect(origin.count('/h2.json')).toBe(1);
    } finally {
      await h2Close(session);
    }
  });
});

describe('a coding edgecache can neither undo nor replace', () => {
  it('chosen by Accept-Encoding, is served as stored only to a client that accepts it; 406 to the others', async () => {
    const proxy = await startProxy(origin.url);
    try {
      await request(`${proxy.url}/zstd.json`, { headers: { 'accept-encoding': 'zstd' } });
      expect(origin.requests.find((r) => r.url === '/zstd.json')?.headers['accept-encoding']).toBe('identity');
      // (No Accept-Encoding at all states no preference: RFC 9110 §12.5.3.)
      for (const ae of ['zstd', 'gzip, zstd;q=0.5', '*', undefined]) {
        const ok = await request(`${proxy.url}/zstd.json`, { headers: ae === undefined ? {} : { 'accept-encoding': ae } });
        expect([ok.status, ok.headers['x-cache'], ok.headers['content-encoding']], String(ae)).toEqual([200, 'HIT', 'zstd']);
        expect(ok.body.equals(NOISE)).toBe(true);
      }
      for (const ae of ['br, gzip', 'zstd;q=0, gzip', 'identity']) {
        const refused = await request(`${proxy.url}/zstd.json`, { headers: { 'accept-encoding': ae } });
        expect([refused.status, refused.headers['content-encoding']], ae).toEqual([406, undefined]);
      }
      expect(origin.count('/zstd.json')).toBe(1);
      // Without Vary: Accept-Encoding the origin says any client may have it (RFC 9111 §4.1): every client does.
      await request(`${proxy.url}/zstd.json?any`, { headers: { 'accept-encoding': 'zstd' } });
      for (const ae of ['br, gzip', 'identity']) {
        const any = await request(`${proxy.url}/zstd.json?any`, { headers: { 'accept-encoding': ae } });
        expect([any.status, any.headers['x-cache'], any.headers['content-encoding']], ae).toEqual([200, 'HIT', 'zstd']);
      }
    } finally {
      await proxy.close();
    }
  });
});

describe("the compressor's counters", () => {
  it('are in /stats and /metrics, with exact values', async () => {
    const proxy = await startProxy(origin.url);
    try {
      await request(`${proxy.url}/counted.json`);
      await request(`${proxy.url}/noise.txt`);
      await proxy.edgecache.compressor.idle();
      const br = await request(`${proxy.url}/counted.json`, { headers: { 'accept-encoding': 'br' } });
      const gzip = await request(`${proxy.url}/counted.json`, { headers: { 'accept-encoding': 'gzip' } });
      const noise = await request(`${proxy.url}/noise.txt`, { headers: { 'accept-encoding': 'br, gzip' } });
      expect([br.headers['content-encoding'], gzip.headers['content-encoding'], noise.headers['content-encoding']]).toEqual(['br', 'gzip', undefined]);
      const stats = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as { compression: unknown };
      expect(stats.compression).toEqual({
        compressed: { br: 1, gzip: 1 },
        bytesIn: BODY.length,
        bytesOut: { br: br.body.length, gzip: gzip.body.length },
        skipped: { 'queue-full': 0, 'no-gain': 1, superseded: 0, error: 0 },
      });
      const metrics = parseExposition((await request(`${proxy.adminUrl}/metrics`)).text);
      expect(metrics.families.get('edgecache_compressed_total')?.type).toBe('counter');
      expect(metrics.value('edgecache_compressed_total', { encoding: 'br' })).toBe(1);
      expect(metrics.value('edgecache_compressed_total', { encoding: 'gzip' })).toBe(1);
      expect(metrics.value('edgecache_compression_bytes_in_total')).toBe(BODY.length);
      expect(metrics.value('edgecache_compression_bytes_out_total', { encoding: 'br' })).toBe(br.body.length);
      expect(metrics.value('edgecache_compression_bytes_out_total', { encoding: 'gzip' })).toBe(gzip.body.length);
      expect(metrics.value('edgecache_compression_skipped_total', { reason: 'no-gain' })).toBe(1);
      for (const reason of ['queue-full', 'superseded', 'error']) expect(metrics.value('edgecache_compression_skipped_total', { reason }), reason).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});

describe('cached POST answers (--cache-post)', () => {
  it('are stored and served as the origin sent them, in one form', async () => {
    const proxy = await startProxy(origin.url, { cachePost: ['/v1/'] });
    try {
      const post = (): Promise<TestResponse> =>
        request(`${proxy.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'br, gzip' }, body: '{"input":"x"}' });
      const miss = await post();
      await proxy.edgecache.compressor.idle();
      const hit = await post();
      expect([miss.headers['x-cache'], hit.headers['x-cache']]).toEqual(['MISS', 'HIT']);
      expect([hit.headers['content-encoding'], hit.headers['content-length']]).toEqual([undefined, String(BODY.length)]);
      expect(hit.body.equals(BODY)).toBe(true);
      expect(proxy.edgecache.compressor.stats.compressed).toEqual({ br: 0, gzip: 0 });
      expect(origin.count('/v1/embeddings')).toBe(1);
    } finally {
      await proxy.close();
    }
  });
});

describe("the compressor's counters under --workers", () => {
  it('are summed across the workers in the node\'s /stats', () => {
    const part = (n: number): Record<string, unknown> => ({
      pid: n,
      hits: n,
      compression: { compressed: { br: n, gzip: 2 * n }, bytesIn: 100 * n, bytesOut: { br: 10 * n, gzip: 20 * n }, skipped: { 'queue-full': 0, 'no-gain': n, superseded: 0, error: 0 } },
    });
    const total = sumWorkerStats([part(1), undefined, part(2)], {}, 3);
    expect(total.compression).toEqual({
      compressed: { br: 3, gzip: 6 },
      bytesIn: 300,
      bytesOut: { br: 30, gzip: 60 },
      skipped: { 'queue-full': 0, 'no-gain': 3, superseded: 0, error: 0 },
    });
    expect(total.hits).toBe(3);
  });
});
