/**
 * A burst of requests for a cold key whose origin answers something that is not stored: an error (500, a 404
 * without a lifetime) is shared with every waiter; an answer that may not be shared (private...) is fetched by
 * each waiter for itself, but only a few at a time. The origin holds every answer until all the requests are
 * waiting (a gate the test opens), so the counts are exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, sleep, type TestResponse } from '../helpers/http.js';
import { DETACHED_FETCHES_PER_KEY } from '../../proxy/pipeline/cache-pipeline.js';

let origin: TestOrigin;
let proxy: TestProxy;
let open: () => void = () => undefined;
let gate: Promise<void> = Promise.resolve();
/** Origin requests being answered right now, and the most at once, per path. */
const inFlight = new Map<string, number>();
const most = new Map<string, number>();

function closeGate(): void {
  gate = new Promise((resolve) => {
    open = resolve;
  });
}

beforeAll(async () => {
  origin = await startOrigin(async (req, res, recorded) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = recorded.url;
    const n = origin.count(path);
    inFlight.set(path, (inFlight.get(path) ?? 0) + 1);
    most.set(path, Math.max(most.get(path) ?? 0, inFlight.get(path) as number));
    res.on('finish', () => inFlight.set(path, (inFlight.get(path) as number) - 1));
    await gate;
    // A little work per answer, so that answers fetched one after another overlap when they can.
    await sleep(Number(url.searchParams.get('work') ?? 0));
    const headers: Record<string, string> = { 'content-type': 'text/plain' };
    const cc = url.searchParams.get('cc');
    if (cc) headers['cache-control'] = cc;
    if (url.searchParams.has('cookie')) headers['set-cookie'] = `id=${n}`;
    res.writeHead(Number(url.searchParams.get('status') ?? 200), headers);
    res.end(`${url.pathname} answer #${n}`);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  open();
  await proxy.close();
  await origin.close();
});

async function until(condition: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(5);
  }
}

/** n concurrent requests, all waiting before the origin answers the first. */
async function gatedBurst(path: string, n: number): Promise<TestResponse[]> {
  closeGate();
  const coalesced = proxy.edgecache.stats.coalesced;
  const responses = Promise.all(Array.from({ length: n }, () => request(`${proxy.url}${path}`, { timeout: 30_000 })));
  await until(() => proxy.edgecache.stats.coalesced === coalesced + n - 1);
  open();
  return responses;
}

describe('an answer that is not stored but may be shared goes to every waiter', () => {
  it.each([
    ['a 500', '/cold-500?status=500', 500, 'not-cacheable'],
    ['a 404 without a lifetime', '/cold-404?status=404', 404, 'zero-ttl'],
    ['a 200 with max-age=0 and no validator', '/cold-zero?cc=max-age%3D0', 200, 'zero-ttl'],
  ])('%s: 200 concurrent requests cost one origin request', async (_name, path, status, detail) => {
    const hitForMiss = proxy.edgecache.stats.hitForMiss;
    const responses = await gatedBurst(path, 200);
    expect(origin.count(path)).toBe(1);
    const expected = `${path.split('?')[0]} answer #1`;
    expect(responses.every((r) => r.status === status && r.text === expected)).toBe(true);
    const statuses = responses.map((r) => r.headers['cache-status']);
    expect(statuses.filter((s) => s === `edgecache; fwd=uri-miss; fwd-status=${status}; collapsed; detail=${detail}`)).toHaveLength(199);
    expect(statuses.filter((s) => s === `edgecache; fwd=uri-miss; fwd-status=${status}; detail=${detail}`)).toHaveLength(1);
    // Not stored, and not "unshareable" either: the next burst collapses again (no hit-for-miss).
    const again = await gatedBurst(path, 50);
    expect(origin.count(path)).toBe(2);
    expect(again.every((r) => r.text === `${path.split('?')[0]} answer #2`)).toBe(true);
    expect(proxy.edgecache.stats.hitForMiss).toBe(hitForMiss);
    expect(proxy.edgecache.store.memory.stats().entries).toBe(0);
  });
});

describe('an answer that may not be shared: each waiter fetches its own, a few at a time', () => {
  it.each([
    ['private', '/own-private?cc=private&work=10', 200],
    ['Set-Cookie on a 500', '/own-cookie?status=500&cookie&work=10', 500],
    ['no-cache without a validator', '/own-no-cache?cc=no-cache&work=10', 200],
  ])('%s: 200 waiters, every one answered with its own response; the origin never sees more than the limit at once', async (_name, path, status) => {
    const detached = proxy.edgecache.stats.coalesceDetached;
    const responses = await gatedBurst(path, 200);
    expect(origin.count(path)).toBe(200);
    expect(responses.every((r) => r.status === status)).toBe(true);
    expect(new Set(responses.map((r) => r.text)).size).toBe(200);
    expect(proxy.edgecache.stats.coalesceDetached - detached).toBe(199);
    // The owner's answer, then the 199 detached waiters at most DETACHED_FETCHES_PER_KEY at a time.
    expect(most.get(path)).toBeLessThanOrEqual(DETACHED_FETCHES_PER_KEY);
    expect(proxy.edgecache.store.memory.stats().entries).toBe(0);
  });
});
