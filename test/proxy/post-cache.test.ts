/**
 * Cached POSTs (--cache-post) end to end: a real origin, the real proxy (memory and LMDB tiers, Redis where
 * said), requests over node:http.
 */
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request, type TestResponse } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { eventually, startRedis, type TestRedis } from '../helpers/redis.js';

const JSON_TYPE = { 'content-type': 'application/json' };

/** A deterministic embeddings origin: the answer names the canonical input it saw and how many calls it had. */
function embeddings(origin: () => TestOrigin, extra: Record<string, string> = {}) {
  return (_req: http.IncomingMessage, res: http.ServerResponse, recorded: { body: Buffer }): void => {
    const parsed = JSON.parse(recorded.body.toString()) as { input: string };
    res.writeHead(200, { 'content-type': 'application/json', ...extra });
    res.end(JSON.stringify({ input: parsed.input, call: origin().count() }));
  };
}

const post = (url: string, body: string, headers: Record<string, string> = {}): Promise<TestResponse> =>
  request(url, { method: 'POST', body, headers: { ...JSON_TYPE, ...headers } });

describe('cached POSTs', () => {
  let origin: TestOrigin;
  let proxy: TestProxy;
  const started: TestProxy[] = [];
  const withProxy = async (overrides: Parameters<typeof startProxy>[1]): Promise<TestProxy> => {
    const p = await startProxy(origin.url, { cachePost: ['/v1/embeddings', '/v1/chat'], ...overrides });
    started.push(p);
    return p;
  };

  beforeAll(async () => {
    origin = await startOrigin(embeddings(() => origin));
  });
  afterEach(async () => {
    for (const p of started.splice(0)) await p.close();
    origin.setHandler(embeddings(() => origin));
    origin.requests.length = 0;
  });
  afterAll(async () => {
    await origin.close();
  });

  it('answers the same JSON with its keys reordered from the cache, and sends the body to the origin once', async () => {
    proxy = await withProxy({});
    const first = await post(`${proxy.url}/v1/embeddings`, '{"model":"m","input":"hello"}');
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(origin.requests[0]?.method).toBe('POST');
    expect(origin.requests[0]?.body.toString()).toBe('{"model":"m","input":"hello"}');
    const second = await post(`${proxy.url}/v1/embeddings`, '{ "input" : "hello", "model": "m" }');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.headers['cache-status']).toContain('hit');
    expect(second.text).toBe(first.text);
    expect(origin.count()).toBe(1);
    // Another body is another request.
    const other = await post(`${proxy.url}/v1/embeddings`, '{"model":"m","input":"world"}');
    expect(other.headers['x-cache']).toBe('MISS');
    expect(origin.count()).toBe(2);
  });

  it('never lets a POST answer reach a GET of the same URL, nor a GET answer a POST', async () => {
    origin.setHandler((req, res, recorded) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      res.end(`${req.method} ${recorded.body.toString()}`);
    });
    proxy = await withProxy({});
    const get1 = await request(`${proxy.url}/v1/embeddings`);
    expect(get1.text).toBe('GET ');
    const post1 = await post(`${proxy.url}/v1/embeddings`, '{"input":"a"}');
    expect(post1.text).toBe('POST {"input":"a"}');
    expect(post1.headers['x-cache']).toBe('MISS');
    const get2 = await request(`${proxy.url}/v1/embeddings`);
    expect(get2.text).toBe('GET ');
    expect(get2.headers['x-cache']).toBe('HIT');
    expect((await post(`${proxy.url}/v1/embeddings`, '{"input":"a"}')).text).toBe('POST {"input":"a"}');
    expect(origin.count()).toBe(2);
  });

  it('does not invalidate its URL; POSTs elsewhere are forwarded uncached and invalidate as before', async () => {
    origin.setHandler((req, res, recorded) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      res.end(`${req.method} ${recorded.body.toString()} ${origin.count()}`);
    });
    proxy = await withProxy({});
    await request(`${proxy.url}/v1/embeddings`);
    await post(`${proxy.url}/v1/embeddings`, '{"input":"a"}');
    expect((await request(`${proxy.url}/v1/embeddings`)).headers['x-cache']).toBe('HIT');
    // Unlisted path: forwarded each time, not cached, and it invalidates the URL's GET entry.
    await request(`${proxy.url}/v2/other`);
    const a = await post(`${proxy.url}/v2/other`, '{"input":"a"}');
    const b = await post(`${proxy.url}/v2/other`, '{"input":"a"}');
    expect(a.headers['x-cache']).toBe('BYPASS');
    expect(b.headers['x-cache']).toBe('BYPASS');
    expect((await request(`${proxy.url}/v2/other`)).headers['x-cache']).toBe('MISS');
  });

  it('keeps credentials apart by default, and shares answers across them with --cache-post-shared', async () => {
    proxy = await withProxy({ cachePostKeyHeaders: ['x-api-key'] });
    const body = '{"input":"secret"}';
    await post(`${proxy.url}/v1/embeddings`, body, { authorization: 'Bearer A' });
    expect((await post(`${proxy.url}/v1/embeddings`, body, { authorization: 'Bearer A' })).headers['x-cache']).toBe('HIT');
    expect((await post(`${proxy.url}/v1/embeddings`, body, { authorization: 'Bearer B' })).headers['x-cache']).toBe('MISS');
    expect((await post(`${proxy.url}/v1/embeddings`, body)).headers['x-cache']).toBe('MISS');
    expect((await post(`${proxy.url}/v1/embeddings`, body, { 'x-api-key': 'k1' })).headers['x-cache']).toBe('MISS');
    expect((await post(`${proxy.url}/v1/embeddings`, body, { 'x-api-key': 'k2' })).headers['x-cache']).toBe('MISS');
    expect((await post(`${proxy.url}/v1/embeddings`, body, { 'x-api-key': 'k1' })).headers['x-cache']).toBe('HIT');
    expect(origin.count()).toBe(5);
    const shared = await withProxy({ cachePostShared: true });
    await post(`${shared.url}/v1/embeddings`, body, { authorization: 'Bearer A' });
    expect((await post(`${shared.url}/v1/embeddings`, body, { authorization: 'Bearer B' })).headers['x-cache']).toBe('HIT');
  });

  it('drops --cache-post-ignore-fields from the key', async () => {
    proxy = await withProxy({ cachePostIgnoreFields: ['user', 'request_id'] });
    await post(`${proxy.url}/v1/embeddings`, '{"input":"x","user":"u1","request_id":1}');
    const again = await post(`${proxy.url}/v1/embeddings`, '{"request_id":2,"input":"x","user":"u2"}');
    expect(again.headers['x-cache']).toBe('HIT');
    expect((await post(`${proxy.url}/v1/embeddings`, '{"input":"y","user":"u1"}')).headers['x-cache']).toBe('MISS');
    // only-if-cached: the cache or 504, never the origin.
    const calls = origin.count();
    expect((await post(`${proxy.url}/v1/embeddings`, '{"input":"x"}', { 'cache-control': 'only-if-cached' })).headers['x-cache']).toBe('HIT');
    expect((await post(`${proxy.url}/v1/embeddings`, '{"input":"z"}', { 'cache-control': 'only-if-cached' })).status).toBe(504);
    expect(origin.count()).toBe(calls);
  });

  it('stores 200s only, for --cache-post-ttl unless the origin says otherwise', async () => {
    let status = 429;
    let cc: string | undefined;
    origin.setHandler((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json', ...(cc && { 'cache-control': cc }) });
      res.end(`{"status":${status}}`);
    });
    proxy = await withProxy({ cachePostTtl: 10_000 });
    const url = `${proxy.url}/v1/embeddings`;
    for (const s of [429, 400, 500, 503]) {
      status = s;
      await post(url, '{"input":"e"}');
      expect((await post(url, '{"input":"e"}')).headers['x-cache'], String(s)).toBe('MISS');
    }
    status = 200;
    await post(url, '{"input":"t"}');
    expect((await post(url, '{"input":"t"}')).headers['x-cache']).toBe('HIT');
    proxy.advance(11_000);
    expect((await post(url, '{"input":"t"}')).headers['x-cache']).toBe('MISS');
    cc = 'no-store';
    await post(url, '{"input":"n"}');
    expect((await post(url, '{"input":"n"}')).headers['x-cache']).toBe('MISS');
    cc = 'private';
    await post(url, '{"input":"p"}', { authorization: 'Bearer A' });
    expect((await post(url, '{"input":"p"}', { authorization: 'Bearer A' })).headers['x-cache']).toBe('MISS');
    cc = 'max-age=100';
    await post(url, '{"input":"m"}');
    proxy.advance(50_000);
    expect((await post(url, '{"input":"m"}')).headers['x-cache']).toBe('HIT');
  });

  it('collapses 100 identical concurrent requests into one origin call, never across credentials', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    origin.setHandler(async (_req, res, recorded) => {
      await gate;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"echo":${JSON.stringify(recorded.headers.authorization ?? '')}}`);
    });
    proxy = await withProxy({});
    const url = `${proxy.url}/v1/embeddings`;
    const same = Array.from({ length: 100 }, (_, i) => post(url, i % 2 ? '{"input":"c","model":"m"}' : '{"model":"m","input":"c"}'));
    const other = [post(url, '{"input":"c","model":"m"}', { authorization: 'Bearer A' }), post(url, '{"input":"c","model":"m"}', { authorization: 'Bearer B' })];
    await eventually('the three origin calls', () => origin.count() === 3);
    release();
    const answers = await Promise.all(same);
    const [a, b] = await Promise.all(other);
    expect(origin.count()).toBe(3);
    expect(new Set(answers.map((r) => r.text))).toEqual(new Set(['{"echo":""}']));
    expect(a?.text).toBe('{"echo":"Bearer A"}');
    expect(b?.text).toBe('{"echo":"Bearer B"}');
    expect(proxy.edgecache.stats.coalesced).toBe(99);
  });

  it('relays an event stream as it arrives, stores it once complete and replays it byte-equal', async () => {
    const events = ['data: {"token":"Hel"}\n\n', 'data: {"token":"lo"}\n\n', 'data: [DONE]\n\n'];
    let next!: () => void;
    origin.setHandler(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'max-age=60' });
      for (const event of events) {
        res.write(event);
        await new Promise<void>((r) => (next = r));
      }
      res.end();
    });
    proxy = await withProxy({});
    const received: string[] = [];
    const done = new Promise<string>((resolve, reject) => {
      const req = http.request(`${proxy.url}/v1/chat`, { method: 'POST', headers: JSON_TYPE, agent: false }, (res) => {
        expect(res.headers['content-type']).toBe('text/event-stream');
        res.on('data', (c: Buffer) => {
          received.push(c.toString());
          next();
        });
        res.on('end', () => resolve(received.join('')));
      });
      req.on('error', reject);
      req.end('{"stream":true,"messages":[{"role":"user","content":"hi"}]}');
    });
    // Each event reaches the client before the origin sends the next one (the origin waits for it).
    const streamed = await done;
    expect(streamed).toBe(events.join(''));
    expect(received.length).toBeGreaterThanOrEqual(2);
    const replay = await post(`${proxy.url}/v1/chat`, '{"messages":[{"content":"hi","role":"user"}],"stream":true}');
    expect(replay.headers['x-cache']).toBe('HIT');
    expect(replay.headers['content-type']).toBe('text/event-stream');
    expect(replay.body.equals(Buffer.from(events.join('')))).toBe(true);
    expect(origin.count()).toBe(1);
  });

  it('does not store an event stream that broke off', async () => {
    origin.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'max-age=60' });
      res.write('data: {"token":"a"}\n\n');
      setTimeout(() => res.destroy(), 20);
    });
    proxy = await withProxy({});
    await expect(post(`${proxy.url}/v1/chat`, '{"s":1}')).rejects.toThrow();
    origin.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('data: whole\n\n');
    });
    const after = await post(`${proxy.url}/v1/chat`, '{"s":1}');
    expect(after.headers['x-cache']).toBe('MISS');
    expect(after.text).toBe('data: whole\n\n');
  });

  it('forwards bodies over --cache-post-max-body whole, uncached', async () => {
    origin.setHandler((_req, res, recorded) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(String(recorded.body.length));
    });
    proxy = await withProxy({ cachePostMaxBody: 1024 });
    const big = JSON.stringify({ input: 'x'.repeat(5000) });
    const a = await post(`${proxy.url}/v1/embeddings`, big);
    expect(a.text).toBe(String(big.length));
    expect(a.headers['x-cache']).toBe('BYPASS');
    // Chunked, no Content-Length: read up to the limit, then the rest streamed on.
    const b = await request(`${proxy.url}/v1/embeddings`, { method: 'POST', body: big, headers: { ...JSON_TYPE, 'transfer-encoding': 'chunked' } });
    expect(b.text).toBe(String(big.length));
    expect(b.headers['x-cache']).toBe('BYPASS');
    expect(origin.count()).toBe(2);
    expect((await post(`${proxy.url}/v1/embeddings`, '{"input":"small"}')).headers['x-cache']).toBe('MISS');
  });

  it('purges POST entries by URL, by prefix and by tag', async () => {
    origin.setHandler((_req, res, recorded) => {
      res.writeHead(200, { 'content-type': 'application/json', 'surrogate-key': 'emb' });
      res.end(recorded.body);
    });
    proxy = await withProxy({});
    const url = `${proxy.url}/v1/embeddings`;
    const purge = (body: object): Promise<TestResponse> => request(`${proxy.adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body), headers: JSON_TYPE });
    const cached = async (): Promise<string | string[] | undefined> => (await post(url, '{"input":"p"}')).headers['x-cache'];
    await post(url, '{"input":"p"}');
    expect(await cached()).toBe('HIT');
    expect((await purge({ urls: [url] })).status).toBe(200);
    expect(await cached()).toBe('MISS');
    await post(url, '{"input":"p"}');
    expect((await purge({ prefixes: ['/v1/'] })).status).toBe(200);
    expect(await cached()).toBe('MISS');
    await post(url, '{"input":"p"}');
    expect((await purge({ tags: ['emb'] })).status).toBe(200);
    expect(await cached()).toBe('MISS');
    // A PUT to the URL (a write) invalidates its POST entries too.
    await post(url, '{"input":"p"}');
    await request(url, { method: 'PUT', body: 'x' });
    expect(await cached()).toBe('MISS');
    expect(await cached()).toBe('HIT');
  });
});

describe('cached POSTs in every tier', () => {
  let origin: TestOrigin;
  let redis: TestRedis;
  beforeAll(async () => {
    origin = await startOrigin(embeddings(() => origin));
    redis = await startRedis();
  });
  afterAll(async () => {
    await origin.close();
    await redis.stop();
  });

  it('are held in memory, on disk and in Redis, and another node finds them in Redis', async () => {
    const config = { cachePost: ['/v1/embeddings'], redis: redis.url, redisPrefix: 'post-test:' };
    const a = await startProxy(origin.url, config);
    const b = await startProxy(origin.url, config);
    try {
      const url = (p: TestProxy): string => `${p.url}/v1/embeddings`;
      // A node new to the purge stream drops its own tiers once it has read it (docs/redis-tier.md): wait for that.
      for (let i = 0; i < 200 && !(a.edgecache.store.localTiersTrusted && b.edgecache.store.localTiersTrusted); i++) await new Promise((r) => setTimeout(r, 25));
      expect((await post(url(a), '{"input":"tiers"}', { host: 'api.test' })).headers['x-cache']).toBe('MISS');
      await a.edgecache.store.flush();
      // (Redis counts no entries of its own: the other node's hit below is what shows it holds this one.)
      for (const tier of a.edgecache.store.stats().filter((t) => t.name !== 'redis')) expect(tier.entries, tier.name).toBe(1);
      // Another node, its own memory and disk: a Redis hit.
      const hit = await post(url(b), '{ "input": "tiers" }', { host: 'api.test' });
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(origin.count()).toBe(1);
      // A GET of the URL is not answered by it anywhere.
      origin.setHandler((_req, res) => {
        res.end('get');
      });
      expect((await request(url(b), { headers: { host: 'api.test' } })).text).toBe('get');
    } finally {
      await b.close();
      await a.close();
    }
  });
});
