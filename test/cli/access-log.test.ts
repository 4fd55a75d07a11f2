/**
 * --access-log on: one JSON line per request on stdout (pino), fresh hits included, with method, url, status,
 * cache result, tier, bytes, origin time and total time; never Authorization, Cookie, Set-Cookie, nor the values
 * of the query parameters named in --log-redact-query.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';

let origin: TestOrigin;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url?.startsWith('/private')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': 'session=SETCOOKIESECRET', 'cache-control': 'private' });
      res.end('mine');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60' });
    res.end('shared body');
  });
});

afterAll(async () => {
  await origin.close();
});

interface Line {
  msg: string;
  method: string;
  url: string;
  status: number;
  cache: string | null;
  tier: string | null;
  bytes: number;
  originMs?: number;
  ms: number;
}

describe('--access-log on', () => {
  it('writes one line per request, hits included, and no secrets', async () => {
    const cli = await startCli(['--origin', origin.url, '--workers', '1', '--disk-max', '0', '--access-log', 'on', '--log-redact-query', 'token,sig']);
    const secrets = { authorization: 'Bearer AUTHSECRET', cookie: 'session=COOKIESECRET' };
    const sent: string[] = [];
    try {
      const send = async (path: string): Promise<void> => {
        sent.push(path);
        expect((await request(`${cli.url}${path}`, { headers: secrets })).status).toBe(200);
      };
      // Authorization makes a request unshareable unless the response allows it: use it on the private path only.
      await send('/shared?token=TOKENSECRET&x=1');
      await send('/shared?token=TOKENSECRET&x=1');
      await send('/shared?token=TOKENSECRET&x=1');
      await send('/private?sig=SIGSECRET');
      expect(await cli.stop()).toBe(0);
    } finally {
      cli.process.kill('SIGKILL');
    }
    const output = cli.output();
    for (const secret of ['AUTHSECRET', 'COOKIESECRET', 'SETCOOKIESECRET', 'TOKENSECRET', 'SIGSECRET']) expect(output).not.toContain(secret);
    const lines = output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Line)
      .filter((line) => line.msg === 'request');
    expect(lines).toHaveLength(sent.length);
    expect(lines.map((l) => l.url)).toEqual([
      '/shared?token=[redacted]&x=1',
      '/shared?token=[redacted]&x=1',
      '/shared?token=[redacted]&x=1',
      '/private?sig=[redacted]',
    ]);
    for (const line of lines) {
      expect(line.method).toBe('GET');
      expect(line.status).toBe(200);
      expect(line.bytes).toBeGreaterThan(0);
      expect(line.ms).toBeGreaterThanOrEqual(0);
    }
    const [miss, , , priv] = lines as [Line, Line, Line, Line];
    expect([miss.cache, miss.tier]).toEqual(['miss', 'origin']);
    expect(miss.originMs).toBeGreaterThan(0);
    expect(lines.slice(1, 3).every((l) => l.cache === 'hit' && l.tier === 'memory' && l.originMs === undefined)).toBe(true);
    expect(priv.tier).toBe('origin');
  });

  it('under --workers 2 writes whole lines to the shared stdout, soon and not only at shutdown', async () => {
    const cli = await startCli(['--origin', origin.url, '--workers', '2', '--disk-max', '0', '--access-log', 'on']);
    const total = 4000;
    // Long URLs (about 1 KiB a line) make the workers' batches large; keep-alive connections spread over both.
    const path = `/shared?pad=${'p'.repeat(900)}&n=`;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const requestLines = (): string[] => cli.output().split('\n').filter((line) => line.includes('"msg":"request"'));
    try {
      let next = 0;
      const client = async (): Promise<void> => {
        while (next < total) {
          const n = next++;
          await new Promise<void>((resolve, reject) => {
            http
              .get(`${cli.url}${path}${n % 50}`, { agent }, (res) => {
                res.resume();
                res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
              })
              .on('error', reject);
          });
        }
      };
      await Promise.all(Array.from({ length: 32 }, client));
      // Batched lines are written within about 100 ms, not held until shutdown.
      for (let waited = 0; requestLines().length < total && waited < 10_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      expect(requestLines()).toHaveLength(total);
      expect(await cli.stop()).toBe(0);
    } finally {
      agent.destroy();
      cli.process.kill('SIGKILL');
    }
    const lines = cli
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg":"request"'));
    expect(lines).toHaveLength(total);
    // Every line is one whole JSON object: no two workers' writes interleaved.
    for (const line of lines) expect((JSON.parse(line) as Line).status).toBe(200);
  });

  it('is off by default', async () => {
    const cli = await startCli(['--origin', origin.url, '--workers', '1', '--disk-max', '0']);
    await request(`${cli.url}/shared`);
    expect(await cli.stop()).toBe(0);
    expect(cli.output()).not.toContain('"msg":"request"');
  });
});
