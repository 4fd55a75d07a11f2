#!/usr/bin/env node
// `npm run soak:purge-memory -- [--urls N] [--cycles N] [--hard] [--no-purge] [-- edgecache flags]`: whether purges
// make a worker's memory grow. One edgecache process (--workers 1, --memory-max 32mb), a local origin of 2 KiB
// tagged responses; each cycle requests N URLs (three URL sets in turn, so the disk tier settles at 3N entries) and
// then purges the tag that covers them all (soft unless --hard); after each cycle it prints the process's RssAnon
// and its /stats memory. Run it with and without --no-purge: growth that stops at a level is a high-water mark
// (the largest purge's garbage), growth that goes on with every identical cycle is a leak. See docs/reliability.md.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { rssAnon } from './memory.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: opts, positionals } = parseArgs({
  options: { urls: { type: 'string', default: '4000' }, cycles: { type: 'string', default: '10' }, hard: { type: 'boolean', default: false }, 'no-purge': { type: 'boolean', default: false } },
  allowPositionals: true,
});
const urls = Number(opts.urls);
const cycles = Number(opts.cycles);
if (!(urls > 0 && cycles > 0)) {
  console.error('purge-memory: --urls and --cycles must be positive numbers');
  process.exit(2);
}
const free = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});
const MB = (bytes) => Math.round((bytes ?? 0) / 1048576);

const body = Buffer.alloc(2048, 'x');
const origin = http.createServer((req, res) => {
  res.writeHead(200, { 'cache-control': 'max-age=3600', 'surrogate-key': `all g${(req.url ?? '').length % 7}`, 'content-type': 'text/plain', etag: '"v"' });
  res.end(body);
});
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve));
const [port, admin] = [await free(), await free()];
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-purge-memory-'));
const proxy = spawn(
  process.execPath,
  [path.join(ROOT, 'dist/proxy/cli.js'), '--origin', `http://127.0.0.1:${origin.address().port}`, '--port', String(port), '--admin-port', String(admin),
    '--data-dir', dataDir, '--workers', '1', '--memory-max', '32mb', '--log-level', 'warn', ...positionals],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
const stop = () => {
  proxy.kill();
  origin.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
};
try {
  for (let i = 0; ; i++) {
    if (proxy.exitCode !== null) throw new Error(`edgecache exited (${proxy.exitCode})`);
    if (i > 300) throw new Error('edgecache did not become ready within 30 s');
    const ready = await fetch(`http://127.0.0.1:${admin}/readyz`).then((r) => r.status === 200, () => false);
    if (ready) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const get = (p) => new Promise((resolve) => http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => res.resume().on('end', resolve)).on('error', resolve));
  console.log(`cycle  purged  purge ms  RssAnon MB  heapUsed  heapTotal  arrayBuffers  (${urls} URLs a cycle, ${opts['no-purge'] ? 'no purge' : opts.hard ? 'hard purge' : 'soft purge'})`);
  for (let c = 0; c < cycles; c++) {
    const paths = Array.from({ length: urls }, (_, i) => `/set${c % 3}/${i}`);
    for (let i = 0; i < paths.length; i += 16) await Promise.all(paths.slice(i, i + 16).map(get));
    const started = Date.now();
    let purged = 0;
    if (!opts['no-purge']) {
      const answer = await fetch(`http://127.0.0.1:${admin}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['all'], soft: !opts.hard }) });
      purged = (await answer.json()).purged;
    }
    const ms = Date.now() - started;
    const memory = (await (await fetch(`http://127.0.0.1:${admin}/stats`)).json()).memory ?? {};
    console.log(`${String(c).padStart(5)}  ${String(purged).padStart(6)}  ${String(ms).padStart(8)}  ${String(MB(rssAnon(proxy.pid))).padStart(10)}  ${String(MB(memory.heapUsed)).padStart(8)}  ${String(MB(memory.heapTotal)).padStart(9)}  ${String(MB(memory.arrayBuffers)).padStart(12)}`);
  }
  agent.destroy();
} finally {
  stop();
}
