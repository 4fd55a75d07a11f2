/**
 * Under --workers 2, a stored response one worker revalidated is fresh for the other workers too: each worker
 * keeps its own memory copy, and one that finds its copy stale first looks at the shared disk tier, where the
 * other left the freshened entry, instead of asking the origin again (one 304 per URL, not one per worker).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { request, sleep } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';

let origin: TestOrigin;
let dataDir: string;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    // Fresh for an hour (a soft purge makes every copy stale); revalidations get a 304.
    const conditional = req.headers['if-none-match'] === '"v1"';
    const fields = { 'cache-control': 'max-age=3600', etag: '"v1"', date: new Date().toUTCString() };
    if (conditional) {
      res.writeHead(304, fields).end();
      return;
    }
    res.writeHead(200, { ...fields, 'content-type': 'text/plain' }).end(`body of ${req.url}`);
  });
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-revalidation-'));
});

afterAll(async () => {
  await origin.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('revalidation under --workers 2', () => {
  it('one 304 per URL freshens the entry for every worker', async () => {
    const proxy = await startCli(['--origin', origin.url, '--data-dir', dataDir, '--workers', '2']);
    try {
      while ((await request(`${proxy.adminUrl}/readyz`)).status !== 200) await sleep(20);
      const paths = Array.from({ length: 6 }, (_, i) => `/r${i}`);
      // New connections each time: the two workers share them, and both end up with a copy in memory.
      const get = (p: string) => request(`${proxy.url}${p}`, { headers: { connection: 'close' } });
      const conditional = (p: string) => origin.requests.filter((r) => r.url === p && r.headers['if-none-match'] !== undefined).length;
      for (const p of paths) for (let i = 0; i < 4; i++) expect((await get(p)).status).toBe(200);
      expect(origin.requests.filter((r) => r.headers['if-none-match'] === undefined)).toHaveLength(paths.length);
      const stats = JSON.parse((await request(`${proxy.adminUrl}/stats`)).text) as { processes: Array<{ hits: number; misses: number }> };
      expect(stats.processes.every((p) => p.hits + p.misses > 0)).toBe(true);

      // A soft purge makes every copy stale, in both workers' memory and on disk.
      const purged = await request(`${proxy.adminUrl}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prefixes: ['/r'], soft: true }) });
      expect(purged.status).toBe(200);
      for (const p of paths) expect((await get(p)).headers['x-cache']).toBe('REVALIDATED');
      await sleep(300); // the freshened entries' disk writes commit

      for (const p of paths) {
        for (let i = 0; i < 4; i++) {
          const res = await get(p);
          expect([res.headers['x-cache'], res.text]).toEqual(['HIT', `body of ${p}`]);
        }
        // One revalidation per URL, whichever worker made it: the other one took the freshened copy from disk.
        expect(conditional(p), p).toBe(1);
      }
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  }, 40_000);
});
