/**
 * --workers: a burst for a cold key whose origin answers 500 costs at most one origin request per worker. The
 * worker holding the cross-process fill lock shares the 500 with its own waiters; it is not stored, so the
 * lock's release tells the other workers to fetch, and each does so once for all of its waiters.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { request, sleep } from '../helpers/http.js';

let origin: TestOrigin;
let open: () => void = () => undefined;
const gate = new Promise<void>((resolve) => {
  open = resolve;
});
const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-cli-'));

beforeAll(async () => {
  origin = await startOrigin(async (_req, res) => {
    await gate;
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('origin is down');
  });
});

afterAll(async () => {
  open();
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

it('100 concurrent requests for a cold 500 over 2 workers: at most 2 origin requests, every client gets the 500', async () => {
  const proxy = await startCli(['--origin', origin.url, '--data-dir', dir, '--workers', '2']);
  try {
    const responses = Promise.all(Array.from({ length: 100 }, () => request(`${proxy.url}/down`, { timeout: 20_000 })));
    // Every request is waiting: all but one per worker have joined a fill (the rest wait for the fill lock).
    for (;;) {
      const stats = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as { coalesced: number };
      if (stats.coalesced >= 98 && origin.count('/down') === 1) break;
      await sleep(10);
    }
    open();
    const all = await responses;
    expect(all.every((r) => r.status === 500 && r.text === 'origin is down')).toBe(true);
    expect(origin.count('/down')).toBeLessThanOrEqual(2);
  } finally {
    await proxy.stop();
  }
});
