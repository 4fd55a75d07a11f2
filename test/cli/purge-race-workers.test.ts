/**
 * --workers: a fill in flight in one worker when a purge (applied through the cluster primary) answers is not
 * stored afterwards, in that worker's memory or in the shared disk tier. The origin holds the first answer until
 * the purge has answered; the requests before and after it share one keep-alive connection, so they reach the
 * same worker.
 */
import http from 'node:http';
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
  origin = await startOrigin(async (req, res) => {
    const n = origin.count(req.url);
    if (n === 1) await gate;
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' });
    res.end(`${req.url} v${n}`);
  });
});

afterAll(async () => {
  open();
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

/** GET over the given agent (one connection: one worker). */
function get(url: string, agent: http.Agent): Promise<{ xcache: string; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ xcache: String(res.headers['x-cache']), text }));
      })
      .on('error', reject);
  });
}

it('a purge answered while a worker fetches: the fetched response is not stored in that worker or on disk', async () => {
  const proxy = await startCli(['--origin', origin.url, '--data-dir', dir, '--workers', '2']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const before = get(`${proxy.url}/race`, agent);
    while (origin.count('/race') === 0) await sleep(5);
    const purge = await request(`${proxy.adminUrl}/purge`, { method: 'POST', body: JSON.stringify({ urls: ['/race'] }), headers: { 'content-type': 'application/json' } });
    expect(purge.status).toBe(200);
    open();
    expect(await before).toEqual({ xcache: 'MISS', text: '/race v1' });
    // Same connection, same worker: its memory must not answer with what it fetched before the purge.
    expect(await get(`${proxy.url}/race`, agent)).toEqual({ xcache: 'MISS', text: '/race v2' });
    // Any worker, from memory or disk: the response fetched after the purge.
    for (let i = 0; i < 10; i++) expect((await request(`${proxy.url}/race`)).text).toBe('/race v2');
    expect(origin.count('/race')).toBe(2);
  } finally {
    agent.destroy();
    await proxy.stop();
  }
});
