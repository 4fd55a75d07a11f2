#!/usr/bin/env node
// Tag purge under load: fills edgecache with N entries sharing one surrogate key, keeps a hit load running on
// other (untagged) URLs, purges the tag through the admin API, and reports how long the purge took and the
// latency of the concurrent hits before and during it.
//
//   npm run build && npm run bench:purge -- [--entries 100000] [--connections 32] [--edgecache-flags "..."]
//
// Loopback only; pins edgecache to CPU 0 and the load and origin to CPU 1 when taskset is available.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const ENTRIES = Number(opt('entries', 100_000));
const CONNECTIONS = Number(opt('connections', 32));
const EXTRA = (opt('edgecache-flags', '') || '').split(/\s+/).filter(Boolean);
const TOKEN = 'bench-token';
const hasTaskset = spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;
const pinned = (cpu, cmd, argv) => (hasTaskset ? ['taskset', ['-c', String(cpu), cmd, ...argv]] : [cmd, argv]);

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const waitFor = async (port) => {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => net.connect(port, '127.0.0.1', function () { this.end(); r(true); }).on('error', () => r(false)));
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} never opened`);
};

// Origin: every /item/N is tagged "all-items item-N"; /hot/N is untagged.
const origin = http.createServer((req, res) => {
  const tagged = req.url.startsWith('/item/');
  res.writeHead(200, {
    'content-type': 'text/plain',
    'cache-control': 'public, max-age=3600',
    ...(tagged && { 'surrogate-key': `all-items item-${req.url.slice(6)}` }),
  });
  res.end(`body of ${req.url}\n`.padEnd(512, '.'));
});
const originPort = await freePort();
await new Promise((r) => origin.listen(originPort, '127.0.0.1', r));

const port = await freePort();
const adminPort = await freePort();
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-purge-bench-'));
const [cmd, argv] = pinned(0, process.execPath, [path.join(root, 'dist/proxy/cli.js'), '--origin', `http://127.0.0.1:${originPort}`, '--port', String(port), '--host', '127.0.0.1', '--admin-port', String(adminPort), '--data-dir', dataDir, '--memory-max', '2gib', '--log-level', 'warn', ...EXTRA]);
const proxy = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, EDGECACHE_ADMIN_TOKEN: TOKEN } });
const cleanup = () => {
  proxy.kill('SIGTERM');
  fs.rmSync(dataDir, { recursive: true, force: true });
};
process.on('exit', cleanup);
await waitFor(port);

const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
const get = (p) =>
  new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    http
      .get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, xcache: res.headers['x-cache'], at: Date.now() }));
      })
      .on('error', reject);
  });

async function pool(total, worker) {
  let next = 0;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (next < total) await worker(next++);
  }));
}

console.log(`filling ${ENTRIES} tagged entries ...`);
let t = Date.now();
await pool(ENTRIES, (i) => get(`/item/${i}`));
await pool(1000, (i) => get(`/hot/${i}`));
console.log(`filled in ${((Date.now() - t) / 1000).toFixed(1)} s`);

// Hit load on the untagged hot set, recorded with timestamps.
const samples = [];
let loading = true;
const load = Promise.all(Array.from({ length: CONNECTIONS }, async (_, c) => {
  let i = c;
  while (loading) {
    const r = await get(`/hot/${i++ % 1000}`);
    samples.push(r);
  }
}));
await new Promise((r) => setTimeout(r, 3000));
const purgeStart = Date.now();
const purged = await new Promise((resolve, reject) => {
  const body = JSON.stringify({ tags: ['all-items'] });
  const req = http.request({ host: '127.0.0.1', port: adminPort, path: '/purge', method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, 'content-length': Buffer.byteLength(body) } }, (res) => {
    let text = '';
    res.on('data', (c) => (text += c));
    res.on('end', () => resolve(JSON.parse(text)));
  });
  req.on('error', reject);
  req.end(body);
});
const purgeEnd = Date.now();
await new Promise((r) => setTimeout(r, 1000));
loading = false;
await load;

const p = (list, q) => {
  const sorted = list.map((s) => s.ms).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
};
const before = samples.filter((s) => s.at < purgeStart);
const during = samples.filter((s) => s.at >= purgeStart && s.at <= purgeEnd);
const nonHits = samples.filter((s) => s.xcache !== 'HIT').length;
const check = await get('/item/1');
console.log(`\n| entries purged | purge time | hit p50 / p99 before | hit p50 / p99 during purge | hits during purge | non-HIT answers |`);
console.log(`|---:|---:|---:|---:|---:|---:|`);
console.log(`| ${purged.purged} | ${((purgeEnd - purgeStart) / 1000).toFixed(2)} s | ${p(before, 0.5).toFixed(2)} / ${p(before, 0.99).toFixed(2)} ms | ${p(during, 0.5).toFixed(2)} / ${p(during, 0.99).toFixed(2)} ms | ${during.length} | ${nonHits} |`);
console.log(`\nafter the purge /item/1 is a ${check.xcache} (expected MISS)`);
origin.close();
agent.destroy();
process.exit(0);
