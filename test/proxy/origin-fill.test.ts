/**
 * The origin fill's state machine on its own (proxy/pipeline/origin-fill.ts), driven against a real origin on
 * loopback through a real undici Pool (OriginClient) into a real CacheStore, with recording consumers in place
 * of clients: the owner, waiters that join before the headers, late joiners during and after the body, a
 * consumer that leaves, origin failures before and after the headers, responses waiters may not share, and
 * revalidations (304, stale-if-error). The end-to-end suites check the same through the proxy.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheStore } from '../../cache-store/cache-store.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import { MemoryTier } from '../../cache-store/memory/memory-tier.js';
import { Freshness } from '../../policies/http/freshness.js';
import { OriginClient } from '../../proxy/origin/origin-client.js';
import { OriginFill, type EntryOutcome, type FillConsumer, type FillOutcome } from '../../proxy/pipeline/origin-fill.js';
import { sleep } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';

/** A consumer that writes down what it is given. */
class Recorder implements FillConsumer {
  readonly events: string[] = [];
  readonly chunks: Buffer[] = [];
  outcome: FillOutcome | undefined;
  failure: { err: unknown; fallback: EntryOutcome | undefined } | undefined;

  head(outcome: FillOutcome): void {
    this.outcome = outcome;
    this.events.push(outcome.kind === 'stream' ? `head ${outcome.status}` : `entry ${outcome.how}`);
  }

  data(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    if (this.events.at(-1) !== 'data') this.events.push('data');
    return true;
  }

  end(): void {
    this.events.push('end');
  }

  error(err: unknown, fallback?: EntryOutcome): void {
    this.failure = { err, fallback };
    this.events.push('error');
  }

  detached(): void {
    this.events.push('detached');
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

let origin: TestOrigin;
/** Released by the test: the /held paths send their first half, then wait for it. */
let release: () => void = () => undefined;
let originClosed: Promise<void> = Promise.resolve();

beforeAll(async () => {
  origin = await startOrigin(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://o.test');
    const cc = url.searchParams.get('cc') ?? 'max-age=60';
    if (url.pathname === '/revalidate') {
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=120', 'x-refreshed': 'yes' });
        res.end();
        return;
      }
      res.writeHead(200, { etag: '"v1"', 'cache-control': cc, 'content-type': 'text/plain' });
      res.end('stored body');
      return;
    }
    if (url.pathname === '/failing') {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down');
      return;
    }
    if (url.pathname === '/vary') {
      res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language', 'content-length': '2' });
      res.end(String(req.headers['accept-language'] ?? '--').slice(0, 2));
      return;
    }
    if (url.pathname === '/reset') {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '100' });
      res.write('partial');
      await sleep(20);
      res.destroy();
      return;
    }
    if (url.pathname.startsWith('/held')) {
      originClosed = new Promise((resolve) => res.on('close', () => resolve()));
      res.writeHead(200, { 'cache-control': cc, 'content-type': 'text/plain', 'content-length': '10' });
      res.write('first');
      await new Promise<void>((resolve) => (release = resolve));
      res.end('-last');
      return;
    }
    res.writeHead(200, { 'cache-control': cc, 'content-type': 'text/plain', 'content-length': '11' });
    res.write('hello ');
    await sleep(10);
    res.end('world');
  });
});

afterAll(async () => {
  await origin.close();
});

function setup(originUrl = origin.url) {
  let time = Date.now();
  const now = () => time;
  const freshness = new Freshness({ cacheSetCookie: false, now });
  const store = new CacheStore({ memory: new MemoryTier({ maxBytes: 64 * 1024 * 1024, now, policy: 'lru' }), maxVariants: 4 });
  const client = new OriginClient({ origin: originUrl, connections: 8, connectTimeout: 1_000, headersTimeout: 2_000, bodyTimeout: 2_000 });
  const deps = { origin: client, store, freshness, maxObjectSize: 1024 * 1024, jitter: () => 0, now, exposeTagHeaders: false };
  const fill = (path: string, clientHeaders: IncomingHttpHeaders = {}, stale?: CacheEntry) =>
    // (The origin is sent the client's fields as they are: forwarding.ts is tested on its own.)
    new OriginFill(deps, { primaryKey: `o.test${path}`, path, headers: { ...(clientHeaders as Record<string, string>), host: 'o.test' }, clientHeaders, ...(stale && { stale }) });
  return { store, fill, advance: (ms: number) => (time += ms), close: () => client.close() };
}

/** Waits (polling) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(2);
  }
}

describe('OriginFill', () => {
  it('the owner and the waiters that joined before the headers receive the same stream; the response is stored', async () => {
    const { store, fill: newFill, close } = setup();
    try {
      const fill = newFill('/plain');
      const owner = new Recorder();
      const waiters = [new Recorder(), new Recorder()];
      expect(fill.join(owner, true, {})).toBe(true);
      for (const waiter of waiters) expect(fill.join(waiter, false, {})).toBe(true);
      fill.start();
      await fill.done;
      for (const consumer of [owner, ...waiters]) {
        expect([consumer.events, consumer.text]).toEqual([['head 200', 'data', 'end'], 'hello world']);
        expect(consumer.outcome).toMatchObject({ kind: 'stream', stored: true, storedKnown: true, shareable: true });
      }
      expect(fill.summary).toBe('stored');
      const { entry } = await store.lookup('o.test/plain', {});
      expect(entry?.body.toString()).toBe('hello world');
    } finally {
      await close();
    }
  });

  it('a late joiner gets the bytes already read, then the rest; one joining after the end gets it all at once', async () => {
    const { fill: newFill, close } = setup();
    try {
      const fill = newFill('/held-a');
      const owner = new Recorder();
      fill.join(owner, true, {});
      fill.start();
      await until(() => owner.text === 'first');
      const late = new Recorder();
      expect(fill.join(late, false, {})).toBe(true);
      expect([late.events, late.text]).toEqual([['head 200', 'data'], 'first']);
      release();
      await fill.done;
      expect([owner.text, late.text, late.events.at(-1)]).toEqual(['first-last', 'first-last', 'end']);
      const after = new Recorder();
      expect(fill.join(after, false, {})).toBe(true);
      expect([after.events, after.text]).toEqual([['head 200', 'data', 'end'], 'first-last']);
    } finally {
      await close();
    }
  });

  it('an unstored fill that nobody reads any more is aborted: the origin connection is closed', async () => {
    const { fill: newFill, close } = setup();
    try {
      const fill = newFill('/held-b?cc=private');
      const owner = new Recorder();
      fill.join(owner, true, {});
      fill.start();
      await until(() => owner.text === 'first');
      expect(owner.outcome).toMatchObject({ stored: false, reason: 'private', shareable: false });
      fill.leave(owner);
      await originClosed;
      await fill.done;
      expect(owner.events).toEqual(['head 200', 'data']);
    } finally {
      release();
      await close();
    }
  });

  it('a response that may not be shared goes to its owner; waiters are detached, late ones refused', async () => {
    const { fill: newFill, close } = setup();
    try {
      const fill = newFill('/plain?cc=private');
      const owner = new Recorder();
      const waiter = new Recorder();
      fill.join(owner, true, {});
      fill.join(waiter, false, {});
      fill.start();
      await fill.done;
      expect([owner.events, owner.text, waiter.events]).toEqual([['head 200', 'data', 'end'], 'hello world', ['detached']]);
      expect(fill.unshareable).toBe('private');
      expect(fill.summary).toBe('not-stored');
      expect(fill.join(new Recorder(), false, {})).toBe(false);
    } finally {
      await close();
    }
  });

  it('a waiter whose request selects another Vary variant is detached', async () => {
    const { fill: newFill, close } = setup();
    try {
      const fill = newFill('/vary', { 'accept-language': 'en' });
      const owner = new Recorder();
      const same = new Recorder();
      const other = new Recorder();
      fill.join(owner, true, { 'accept-language': 'en' });
      fill.join(same, false, { 'accept-language': 'en' });
      fill.join(other, false, { 'accept-language': 'fr' });
      fill.start();
      await fill.done;
      expect([owner.text, same.text, other.events]).toEqual(['en', 'en', ['detached']]);
    } finally {
      await close();
    }
  });

  it('an origin that cannot be reached fails every consumer before any head; nothing is stored', async () => {
    // A port nothing listens on: the test origin's, once closed.
    const gone = await startOrigin(() => undefined);
    await gone.close();
    const { store, fill: newFill, close } = setup(gone.url);
    try {
      const fill = newFill('/plain');
      const owner = new Recorder();
      const waiter = new Recorder();
      fill.join(owner, true, {});
      fill.join(waiter, false, {});
      fill.start();
      await fill.done;
      for (const consumer of [owner, waiter]) expect(consumer.events).toEqual(['error']);
      expect((owner.failure?.err as { code?: string }).code).toBe('ECONNREFUSED');
      expect(fill.summary).toBe('failed');
      expect(fill.join(new Recorder(), false, {})).toBe(false);
      expect((await store.lookup('o.test/plain', {})).entry).toBeUndefined();
    } finally {
      await close();
    }
  });

  it('an origin that breaks off the body fails the consumers after the head, and nothing is stored', async () => {
    const { store, fill: newFill, close } = setup();
    try {
      const fill = newFill('/reset');
      const owner = new Recorder();
      fill.join(owner, true, {});
      fill.start();
      await fill.done;
      expect(owner.events).toEqual(['head 200', 'data', 'error']);
      expect(fill.summary).toBe('failed');
      expect((await store.lookup('o.test/reset', {})).entry).toBeUndefined();
    } finally {
      await close();
    }
  });

  it('a revalidation answered 304 hands every consumer the refreshed entry and stores it', async () => {
    const { store, fill: newFill, advance, close } = setup();
    try {
      const first = newFill('/revalidate');
      first.join(new Recorder(), true, {});
      first.start();
      await first.done;
      const { entry: stale } = await store.lookup('o.test/revalidate', {});
      advance(120_000);
      const fill = newFill('/revalidate', {}, stale);
      const owner = new Recorder();
      const waiter = new Recorder();
      fill.join(owner, true, {});
      fill.join(waiter, false, {});
      fill.start();
      await fill.done;
      for (const consumer of [owner, waiter]) expect(consumer.events).toEqual(['entry revalidated']);
      const outcome = owner.outcome as EntryOutcome;
      expect([outcome.entry.meta.headers['x-refreshed'], outcome.entry.body.toString(), outcome.originStatus]).toEqual(['yes', 'stored body', 304]);
      await until(() => store.memory.get('o.test/revalidate')?.kind === 'entry' && (store.memory.get('o.test/revalidate') as CacheEntry).meta.headers['x-refreshed'] === 'yes');
      expect(fill.summary).toBe('entry');
    } finally {
      await close();
    }
  });

  it('a revalidation the origin answers 503 serves the stale entry when stale-if-error allows it', async () => {
    const { store, fill: newFill, advance, close } = setup();
    try {
      const first = newFill('/revalidate?cc=max-age=1,stale-if-error=600');
      first.join(new Recorder(), true, {});
      first.start();
      await first.done;
      const { entry: stale } = await store.lookup('o.test/revalidate?cc=max-age=1,stale-if-error=600', {});
      expect(stale).toBeDefined();
      advance(5_000);
      // The stale entry, refreshed against a failing URL.
      const fill = new OriginFill(
        { origin: new OriginClient({ origin: origin.url, connections: 1, connectTimeout: 1_000, headersTimeout: 2_000, bodyTimeout: 2_000 }), store, freshness: new Freshness({ cacheSetCookie: false, now: () => Date.now() + 5_000 }), maxObjectSize: 1024, jitter: () => 0, now: () => Date.now() + 5_000, exposeTagHeaders: false },
        { primaryKey: 'o.test/failing', path: '/failing', headers: { host: 'o.test' }, clientHeaders: {}, stale: stale as CacheEntry },
      );
      const owner = new Recorder();
      fill.join(owner, true, {});
      fill.start();
      await fill.done;
      expect(owner.events).toEqual(['entry stale-if-error']);
      expect((owner.outcome as EntryOutcome).originStatus).toBe(503);
    } finally {
      await close();
    }
  });
});
