/**
 * Stored partial content (RFC 9111 §3.3): a single-part 206 an origin answered a fill with is kept apart from the
 * URL's entries and answers later Range requests that lie wholly within it; nothing else.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRoutedOrigin, type PathHandler, type RoutedOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';
import { partialKey } from '../../policies/http/ranges.js';

let origin: RoutedOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startRoutedOrigin('/p');
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

const path = (handler: PathHandler): string => origin.path(handler);

/** An origin that answers every GET with bytes 4-9 of "0123456789" (as a server that ignores the request's range). */
function partialOrigin(extra: Record<string, string> = {}): PathHandler {
  return (_req, res) => {
    res.writeHead(206, { 'cache-control': 'max-age=3600', 'content-range': 'bytes 4-9/10', 'content-type': 'text/plain', 'x-a': '1', ...extra });
    res.end('456789');
  };
}

describe('stored partial content (RFC 9111 §3.3)', () => {
  it('a 206 is stored and answers Range requests within it: one range, a suffix, an open end, several', async () => {
    const p = path(partialOrigin());
    const first = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=-6' } });
    expect([first.status, first.text, first.headers['content-range']]).toEqual([206, '456789', 'bytes 4-9/10']);
    await proxy.edgecache.pipeline.idle();
    const one = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=6-8' } });
    expect([one.status, one.text, one.headers['content-range'], one.headers['content-length'], one.headers['x-cache'], one.headers['x-a']]).toEqual([206, '678', 'bytes 6-8/10', '3', 'HIT', '1']);
    const suffix = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=-2' } });
    expect([suffix.status, suffix.text, suffix.headers['content-range']]).toEqual([206, '89', 'bytes 8-9/10']);
    const open = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-' } });
    expect([open.status, open.text, open.headers['content-range']]).toEqual([206, '56789', 'bytes 5-9/10']);
    const several = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=4-4,9-9' } });
    expect(several.status).toBe(206);
    expect(several.headers['content-type']).toMatch(/^multipart\/byteranges; boundary=/);
    expect(several.text).toContain('Content-Range: bytes 4-4/10\r\n\r\n4\r\n');
    expect(several.text).toContain('Content-Range: bytes 9-9/10\r\n\r\n9\r\n');
    // only-if-cached (RFC 9111 §5.2.1.7): a range within the stored part is answered from it; anything else is a 504.
    const cachedOnly = { 'cache-control': 'only-if-cached' };
    const within = await request(`${proxy.url}${p}`, { headers: { ...cachedOnly, range: 'bytes=5-6' } });
    expect([within.status, within.text, within.headers['x-cache']]).toEqual([206, '56', 'HIT']);
    const outside = await request(`${proxy.url}${p}`, { headers: { ...cachedOnly, range: 'bytes=0-5' } });
    const whole = await request(`${proxy.url}${p}`, { headers: cachedOnly });
    expect([outside.status, whole.status]).toEqual([504, 504]);
    expect(origin.count(p)).toBe(1);
  });

  it('a range outside the stored part, a request without Range, or a conditional one goes to the origin', async () => {
    const p = path(partialOrigin());
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=4-' } });
    await proxy.edgecache.pipeline.idle();
    // The rest is asked for (bytes=0-3); the origin's 206 has no validator to combine it by, so the whole is
    // fetched with a plain GET (here the same 206 again, relayed).
    const outside = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=3-5' } });
    expect(outside.headers['x-cache']).toBe('MISS');
    expect(origin.count(p)).toBe(3);
    await proxy.edgecache.pipeline.idle();
    const whole = await request(`${proxy.url}${p}`);
    // Never the part for the whole: the origin's answer (here the same 206) is relayed.
    expect([whole.status, whole.headers['x-cache'], whole.headers['content-range']]).toEqual([206, 'MISS', 'bytes 4-9/10']);
    expect(origin.count(p)).toBe(5);
    await proxy.edgecache.pipeline.idle();
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6', 'if-none-match': '"x"' } });
    expect(origin.count(p)).toBe(7);
  });

  it('is not stored when its length and Content-Range disagree, when it varies, or when a 200 with its fields would not be', async () => {
    const short = path((_req, res) => {
      res.writeHead(206, { 'cache-control': 'max-age=3600', 'content-range': 'bytes 4-9/10' });
      res.end('01234');
    });
    const varies = path(partialOrigin({ vary: 'accept' }));
    const noStore = path(partialOrigin({ 'cache-control': 'no-store' }));
    for (const p of [short, varies, noStore]) {
      await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
      await proxy.edgecache.pipeline.idle();
      await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
      expect(origin.count(p)).toBe(2);
    }
  });

  it('a purge of the URL removes it; once stale it is not used', async () => {
    const p = path(partialOrigin({ 'cache-control': 'max-age=10' }));
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
    await proxy.edgecache.pipeline.idle();
    expect((await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } })).headers['x-cache']).toBe('HIT');
    const purged = await request(`${proxy.adminUrl}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ urls: [p] }) });
    expect(purged.status).toBe(200);
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
    expect(origin.count(p)).toBe(2);
    await proxy.edgecache.pipeline.idle();
    proxy.advance(20_000);
    await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-6' } });
    expect(origin.count(p)).toBe(3);
  });
});

const REP = '0123456789';

interface RangedOptions {
  /** The part the first request (the fill) is answered with, as an origin that sends part of it unasked. */
  first: [number, number];
  /** The representation's ETag for request n (1-based); none when undefined. */
  etag?: (n: number) => string | undefined;
  /** The representation for request n. */
  body?: (n: number) => string;
  /** Most bytes one 206 carries (an origin that sends large objects in pieces). */
  maxPart?: number;
  /** Honour Range at all (else every later request gets the whole 200). */
  ranges?: boolean;
  /** Headers the origin saw, per request. */
  seen: Array<Record<string, string | string[] | undefined>>;
}

/**
 * A representation of ten bytes: the first request is answered with part of it (206); later ones honour Range
 * (and If-Range with a strong ETag: a failed one gets the whole 200), or get the whole 200.
 */
function rangedOrigin(o: RangedOptions): PathHandler {
  return (req, res, n) => {
    o.seen.push({ ...req.headers });
    const etag = o.etag?.(n);
    const body = o.body?.(n) ?? REP;
    const fields: Record<string, string> = { 'cache-control': 'max-age=3600', 'content-type': 'text/plain', 'x-n': String(n), ...(etag !== undefined && { etag }) };
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    let part: [number, number] | undefined = n === 1 ? o.first : undefined;
    if (n > 1 && range && o.ranges !== false && (ifRange === undefined || ifRange === etag)) {
      const [, a, b] = range as unknown as [string, string, string];
      part = a === '' ? [body.length - Number(b), body.length - 1] : [Number(a), b === '' ? body.length - 1 : Number(b)];
    }
    if (part === undefined) {
      res.writeHead(200, fields);
      res.end(body);
      return;
    }
    const end = o.maxPart === undefined || n === 1 ? part[1] : Math.min(part[1], part[0] + o.maxPart - 1);
    res.writeHead(206, { ...fields, 'content-range': `bytes ${part[0]}-${end}/${body.length}` });
    res.end(body.slice(part[0], end + 1));
  };
}

describe('completing and combining stored partial content (RFC 9111 §3.4)', () => {
  const seed = async (p: string): Promise<void> => {
    const first = await request(`${proxy.url}${p}`);
    expect(first.status).toBe(206);
    await proxy.edgecache.pipeline.idle();
  };

  it('a GET without Range asks only for the rest, with If-Range; a matching 206 is combined, stored whole, and the part dropped', async () => {
    const seen: RangedOptions['seen'] = [];
    const p = path(rangedOrigin({ first: [0, 4], etag: () => '"v1"', seen }));
    await seed(p);
    expect(await proxy.edgecache.store.lookupExact(partialKey(`127.0.0.1:${proxy.port}${p}`))).toBeDefined();
    const whole = await request(`${proxy.url}${p}`);
    expect([whole.status, whole.text, whole.headers['content-length'], whole.headers['content-range'], whole.headers['x-n']]).toEqual([200, REP, '10', undefined, '2']);
    expect([seen[1]?.range, seen[1]?.['if-range']]).toEqual(['bytes=5-', '"v1"']);
    await proxy.edgecache.pipeline.idle();
    const hit = await request(`${proxy.url}${p}`);
    expect([hit.status, hit.text, hit.headers['x-cache'], hit.headers['x-n']]).toEqual([200, REP, 'HIT', '2']);
    const range = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=2-7' } });
    expect([range.status, range.text, range.headers['x-cache']]).toEqual([206, '234567', 'HIT']);
    expect(origin.count(p)).toBe(2);
    // The stored part is gone.
    expect(await proxy.edgecache.store.lookupExact(partialKey(`127.0.0.1:${proxy.port}${p}`))).toBeUndefined();
  });

  it('a Range outside the part is fetched as the rest: the client gets its range of the combined whole', async () => {
    const seen: RangedOptions['seen'] = [];
    const p = path(rangedOrigin({ first: [4, 9], etag: () => '"v1"', seen }));
    await seed(p);
    const r = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=1-5' } });
    expect([r.status, r.text, r.headers['content-range']]).toEqual([206, '12345', 'bytes 1-5/10']);
    expect([seen[1]?.range, seen[1]?.['if-range']]).toEqual(['bytes=0-3', '"v1"']);
    await proxy.edgecache.pipeline.idle();
    const hit = await request(`${proxy.url}${p}`);
    expect([hit.status, Buffer.from(hit.text).equals(Buffer.from(REP)), hit.headers['x-cache']]).toEqual([200, true, 'HIT']);
    expect(origin.count(p)).toBe(2);
  });

  it('a changed representation (If-Range fails) comes back whole as a 200, stored and served as any fill', async () => {
    const seen: RangedOptions['seen'] = [];
    const p = path(rangedOrigin({ first: [0, 4], etag: (n) => (n === 1 ? '"v1"' : '"v2"'), body: (n) => (n === 1 ? REP : 'abcdefghij'), seen }));
    await seed(p);
    const whole = await request(`${proxy.url}${p}`);
    expect([whole.status, whole.text, whole.headers.etag]).toEqual([200, 'abcdefghij', '"v2"']);
    expect(seen[1]?.['if-range']).toBe('"v1"');
    await proxy.edgecache.pipeline.idle();
    expect((await request(`${proxy.url}${p}`)).headers['x-cache']).toBe('HIT');
    expect(origin.count(p)).toBe(2);
  });

  it('a 206 with another strong validator is never combined: the whole is fetched with a plain GET', async () => {
    const seen: RangedOptions['seen'] = [];
    // An origin that ignores If-Range: its 206 is of another representation.
    const changed: PathHandler = rangedOrigin({ first: [0, 4], etag: (n) => (n === 1 ? '"v1"' : '"v2"'), body: (n) => (n === 1 ? REP : 'abcdefghij'), seen });
    const p = path((req, res, n) => {
      delete req.headers['if-range'];
      changed(req, res, n);
    });
    await seed(p);
    const whole = await request(`${proxy.url}${p}`);
    expect([whole.status, whole.text, whole.headers.etag]).toEqual([200, 'abcdefghij', '"v2"']);
    expect(origin.count(p)).toBe(3);
    expect([seen[1]?.range, seen[2]?.range, seen[2]?.['if-range']]).toEqual(['bytes=5-', undefined, undefined]);
    await proxy.edgecache.pipeline.idle();
    expect((await request(`${proxy.url}${p}`)).text).toBe('abcdefghij');
    expect(origin.count(p)).toBe(3);
  });

  it('a stored part without a strong validator is asked for the rest without If-Range, and never combined', async () => {
    for (const etag of [undefined, 'W/"w1"']) {
      const seen: RangedOptions['seen'] = [];
      const p = path(rangedOrigin({ first: [0, 4], etag: () => etag, seen }));
      await seed(p);
      const whole = await request(`${proxy.url}${p}`);
      expect([whole.status, whole.text, whole.headers['x-n']]).toEqual([200, REP, '3']);
      expect([seen[1]?.range, seen[1]?.['if-range'], seen[2]?.range]).toEqual(['bytes=5-', undefined, undefined]);
      expect(origin.count(p)).toBe(3);
    }
  });

  it('a 200 answering the request for the rest is the whole object, stored and served', async () => {
    const seen: RangedOptions['seen'] = [];
    const p = path(rangedOrigin({ first: [0, 4], etag: () => '"v1"', ranges: false, seen }));
    await seed(p);
    const whole = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=6-' } });
    expect([whole.status, whole.text, whole.headers['content-range']]).toEqual([206, '6789', 'bytes 6-9/10']);
    expect(seen[1]?.range).toBe('bytes=5-');
    await proxy.edgecache.pipeline.idle();
    expect((await request(`${proxy.url}${p}`)).headers['x-cache']).toBe('HIT');
    expect(origin.count(p)).toBe(2);
  });

  it('two parts with the same strong validator are combined into a larger part, then into the whole', async () => {
    const seen: RangedOptions['seen'] = [];
    const p = path(rangedOrigin({ first: [0, 4], etag: () => '"v1"', maxPart: 3, seen }));
    await seed(p);
    const second = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=5-7' } });
    expect([second.status, second.text, second.headers['content-range']]).toEqual([206, '567', 'bytes 5-7/10']);
    expect(seen[1]?.range).toBe('bytes=5-');
    await proxy.edgecache.pipeline.idle();
    const union = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=2-7' } });
    expect([union.status, union.text, union.headers['content-range'], union.headers['x-cache']]).toEqual([206, '234567', 'bytes 2-7/10', 'HIT']);
    expect(origin.count(p)).toBe(2);
    const last = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=8-9' } });
    expect([last.status, last.text]).toEqual([206, '89']);
    expect(seen[2]?.range).toBe('bytes=8-');
    await proxy.edgecache.pipeline.idle();
    const whole = await request(`${proxy.url}${p}`);
    expect([whole.status, whole.text, whole.headers['x-cache']]).toEqual([200, REP, 'HIT']);
    expect(origin.count(p)).toBe(3);
  });

  it('a part that does not answer a GET without Range is not combined: the whole is fetched', async () => {
    const seen: RangedOptions['seen'] = [];
    const p = path(rangedOrigin({ first: [0, 4], etag: () => '"v1"', maxPart: 3, seen }));
    await seed(p);
    const whole = await request(`${proxy.url}${p}`);
    expect([whole.status, whole.text]).toEqual([200, REP]);
    expect([seen[1]?.range, seen[2]?.range]).toEqual(['bytes=5-', undefined]);
  });

  it('a new part whose body is shorter than its Content-Range is never combined or stored: the response is cut off', async () => {
    const p = path((_req, res, n) => {
      const fields = { 'cache-control': 'max-age=3600', etag: '"v1"' };
      if (n === 1) {
        res.writeHead(206, { ...fields, 'content-range': 'bytes 0-4/10' });
        res.end('01234');
      } else if (n === 2) {
        // Chunked: no Content-Length tells the proxy's HTTP client it ended short.
        res.writeHead(206, { ...fields, 'content-range': 'bytes 5-9/10', 'transfer-encoding': 'chunked' });
        res.end('567');
      } else {
        res.writeHead(200, fields);
        res.end(REP);
      }
    });
    await seed(p);
    await expect(request(`${proxy.url}${p}`)).rejects.toThrow(/aborted/);
    await proxy.edgecache.pipeline.idle();
    const next = await request(`${proxy.url}${p}`);
    expect([next.status, next.text, next.headers['x-cache']]).toEqual([200, REP, 'MISS']);
  });

  it('a strong Last-Modified (no ETag) is the validator: If-Range carries the date, and a matching 206 is combined', async () => {
    const modified = new Date(Date.now() - 3_600_000).toUTCString();
    const seen: RangedOptions['seen'] = [];
    const p = path((req, res, n) => {
      seen.push({ ...req.headers });
      const fields = { 'cache-control': 'max-age=3600', 'last-modified': modified };
      const [start, end] = n === 1 ? [0, 4] : req.headers['if-range'] === modified && req.headers.range === 'bytes=5-' ? [5, 9] : [0, 9];
      if (end - start === 9) res.writeHead(200, fields);
      else res.writeHead(206, { ...fields, 'content-range': `bytes ${start}-${end}/10` });
      res.end(REP.slice(start, end + 1));
    });
    await seed(p);
    const whole = await request(`${proxy.url}${p}`);
    expect([whole.status, whole.text]).toEqual([200, REP]);
    expect([seen[1]?.range, seen[1]?.['if-range']]).toEqual(['bytes=5-', modified]);
    expect(origin.count(p)).toBe(2);
  });

  it("a conditional GET is answered from the combined response: 304 when the client's validator matches", async () => {
    const seen: RangedOptions['seen'] = [];
    const p = path(rangedOrigin({ first: [0, 4], etag: () => '"v1"', seen }));
    await seed(p);
    const notModified = await request(`${proxy.url}${p}`, { headers: { 'if-none-match': '"v1"' } });
    expect([notModified.status, notModified.headers.etag]).toEqual([304, '"v1"']);
    // The origin was asked for the rest, without the client's validator.
    expect([seen[1]?.range, seen[1]?.['if-none-match']]).toEqual(['bytes=5-', undefined]);
    await proxy.edgecache.pipeline.idle();
    expect((await request(`${proxy.url}${p}`)).headers['x-cache']).toBe('HIT');
    expect(origin.count(p)).toBe(2);
  });

  it('concurrent requests completing one part share one request for the rest', async () => {
    const seen: RangedOptions['seen'] = [];
    const inner = rangedOrigin({ first: [0, 4], etag: () => '"v1"', seen });
    const p = path((req, res, n) => {
      if (n === 1) inner(req, res, n);
      else setTimeout(() => inner(req, res, n), 100);
    });
    await seed(p);
    const all = await Promise.all([request(`${proxy.url}${p}`), request(`${proxy.url}${p}`, { headers: { range: 'bytes=1-2' } }), request(`${proxy.url}${p}`)]);
    expect(all.map((r) => [r.status, r.text])).toEqual([
      [200, REP],
      [206, '12'],
      [200, REP],
    ]);
    expect(origin.count(p)).toBe(2);
    expect(seen[1]?.range).toBe('bytes=5-');
  });
});

describe('stored partial content on the disk tier', () => {
  it('a part read back from disk after a restart is completed byte for byte', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'edgecache-partial-'));
    const seen: RangedOptions['seen'] = [];
    const p = origin.path(rangedOrigin({ first: [0, 4], etag: () => '"v1"', seen }));
    const host = { host: 'partial.test' };
    try {
      let disk = await startProxy(origin.url, { dataDir });
      expect((await request(`${disk.url}${p}`, { headers: host })).status).toBe(206);
      await disk.edgecache.pipeline.idle();
      await disk.close();
      disk = await startProxy(origin.url, { dataDir });
      try {
        const whole = await request(`${disk.url}${p}`, { headers: host });
        expect([whole.status, whole.text]).toEqual([200, REP]);
        expect(seen.map((h) => h.range)).toEqual([undefined, 'bytes=5-']);
      } finally {
        await disk.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a 206 from the origin that is not what its Content-Range says', () => {
  it('is relayed as it is, never cut down or stored (as in the 0.4.5 suite partial-store-partial-reuse-* tests)', async () => {
    const p = path((_req, res) => {
      res.writeHead(206, { 'cache-control': 'max-age=3600', 'content-range': 'bytes 4-9/10', 'content-length': '5' });
      res.end('01234');
    });
    const first = await request(`${proxy.url}${p}`, { headers: { range: 'bytes=-5' } });
    expect([first.status, first.text, first.headers['content-range']]).toEqual([206, '01234', 'bytes 4-9/10']);
  });
});
