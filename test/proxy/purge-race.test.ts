/**
 * A fill in flight when a purge answers: its response predates the purge, so it is never stored as fresh and
 * nobody arriving after the purge is handed it. The origin holds the first answer for each path until the test
 * opens its gate (after the purge has answered): no sleeps racing each other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, sleep } from '../helpers/http.js';

let origin: TestOrigin;
let proxy: TestProxy;
const gates = new Map<string, () => void>();

/** The origin's first answer for `path` waits for release(path); later ones are immediate. */
function holdFirst(path: string): void {
  let open = (): void => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  gates.set(path, open);
  held.set(path, opened);
}
const held = new Map<string, Promise<void>>();

beforeAll(async () => {
  origin = await startOrigin(async (req, res, recorded) => {
    const url = new URL(recorded.url, 'http://x');
    const n = origin.count(recorded.url);
    if (n === 1) await held.get(url.pathname);
    const etag = `"v${n}"`;
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': 'max-age=600', etag };
    const sk = url.searchParams.get('sk');
    if (sk) headers['surrogate-key'] = sk;
    if (req.headers['if-none-match'] !== undefined && req.headers['if-none-match'] === `"v${n - 1}"`) {
      // A 304 carries the validator of the representation it validates (RFC 9111 §4.3.4 selects by it).
      res.writeHead(304, { ...headers, etag: req.headers['if-none-match'] });
      res.end();
      return;
    }
    res.writeHead(200, headers);
    res.end(`${url.pathname} v${n}`);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  for (const open of gates.values()) open();
  await proxy.close();
  await origin.close();
});

async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(5);
  }
}

async function adminPurge(body: unknown): Promise<void> {
  const res = await request(`${proxy.adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  expect(res.status).toBe(200);
}

describe('a fill in flight when a purge answers', () => {
  it.each([
    ['by URL', '/race/url', { urls: ['/race/url'] }],
    ['by prefix', '/race/prefix', { prefixes: ['/race/pre'] }],
    ['by tag, before its headers named the tag', '/race/tag?sk=race-tag', { tags: ['race-tag'] }],
    ['of everything', '/race/all', { all: true }],
  ])('hard purge %s: not stored, and not handed to requests that come after the purge', async (_name, path, selector) => {
    const pathname = path.split('?')[0] as string;
    holdFirst(pathname);
    const before = request(`${proxy.url}${path}`);
    await until(() => origin.count(path) === 1);
    await adminPurge(selector);
    // Asked after the purge answered, while the old fill is still in flight: a fill of its own (joining the
    // old one would wait for its gate, and time out).
    const after = await request(`${proxy.url}${path}`, { timeout: 3000 });
    expect([after.headers['x-cache'], after.text]).toEqual(['MISS', `${pathname} v2`]);
    gates.get(pathname)?.();
    const first = await before;
    expect([first.headers['x-cache'], first.text]).toEqual(['MISS', `${pathname} v1`]);
    await proxy.edgecache.pipeline.idle();
    // What the purge left is what is served: the response fetched after it, never the one in flight.
    const next = await request(`${proxy.url}${path}`);
    expect([next.headers['x-cache'], next.text]).toEqual(['HIT', `${pathname} v2`]);
    expect(origin.count(path)).toBe(2);
  });

  it('soft purge: the response in flight is stored already stale, so the next request revalidates it', async () => {
    const path = '/race/soft?sk=soft-tag';
    holdFirst('/race/soft');
    const before = request(`${proxy.url}${path}`);
    await until(() => origin.count(path) === 1);
    await adminPurge({ tags: ['soft-tag'], soft: true });
    gates.get('/race/soft')?.();
    expect((await before).text).toBe('/race/soft v1');
    await proxy.edgecache.pipeline.idle();
    const next = await request(`${proxy.url}${path}`);
    expect([next.headers['x-cache'], next.text]).toEqual(['REVALIDATED', '/race/soft v1']);
    expect(origin.requests.at(-1)?.headers['if-none-match']).toBe('"v1"');
  });
});
