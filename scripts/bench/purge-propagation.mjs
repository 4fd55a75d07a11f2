#!/usr/bin/env node
// Purge propagation across nodes: three edgecache processes (the real command, dist/) on one redis-server, all on
// loopback. Each round stores a URL on nodes B and C, purges it through node A's admin API, and polls B and C
// (Cache-Control: only-if-cached, so polling never refills) until their copy is gone. Reports p50/p99 of the time
// from sending the purge to its effect on the other nodes.
//
//   npm run build && npm run bench:purge-propagation -- [--rounds 200]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const i = args.indexOf('--rounds');
const ROUNDS = i === -1 ? 200 : Number(args[i + 1]);
const HOST = 'prop.test';

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const waitFor = async (port) => {
  for (let n = 0; n < 1200; n++) {
    const ok = await new Promise((r) => net.connect(port, '127.0.0.1', function () { this.end(); r(true); }).on('error', () => r(false)));
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} never opened`);
};
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const call = (port, method, p, headers = {}, body) =>
  new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: { host: HOST, ...headers }, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });

const origin = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=3600' });
  res.end(`body of ${req.url}`);
});
const originPort = await freePort();
await new Promise((r) => origin.listen(originPort, '127.0.0.1', r));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-prop-'));
const redisPort = await freePort();
const children = [];
const samples = [];
/** Prints p50/p99 of the rounds done so far (also when stopped early). */
function report() {
  if (samples.length === 0) return;
  const sorted = [...samples].sort((x, y) => x - y);
  const q = (f) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))].toFixed(2);
  console.log(`purge on A → gone on B and C, ${sorted.length} rounds: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${sorted.at(-1).toFixed(2)} ms`);
}
// Whatever happens, no process is left behind.
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
process.on('SIGTERM', () => {
  report();
  process.exit(1);
});
process.on('SIGINT', () => process.exit(1));
process.on('uncaughtException', (err) => {
  console.error(err);
  process.exit(1);
});
children.push(spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' }));
await waitFor(redisPort);
const nodes = [];
for (const name of ['a', 'b', 'c']) {
  const port = await freePort();
  const adminPort = await freePort();
  const argv = [path.join(root, 'dist/proxy/cli.js'), '--origin', `http://127.0.0.1:${originPort}`, '--port', String(port), '--admin-port', String(adminPort),
    '--host', '127.0.0.1', '--workers', '1', '--data-dir', path.join(tmp, name), '--redis', `redis://127.0.0.1:${redisPort}`, '--log-level', 'warn'];
  children.push(spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'inherit'] }));
  nodes.push({ port, adminPort });
}
for (const n of nodes) await waitFor(n.adminPort);
console.error('nodes listening; warming up');
// Until every node has read the purge stream (its own tiers answer again).
const [a, ...others] = nodes;
for (const n of others) {
  for (;;) {
    await call(n.port, 'GET', '/warm');
    if ((await call(n.port, 'GET', '/warm', { 'cache-control': 'only-if-cached' })) === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
}

try {
  for (let round = 0; round < ROUNDS; round++) {
    const p = `/item/${round}`;
    for (const n of others) await call(n.port, 'GET', p);
    const body = JSON.stringify({ urls: [`http://${HOST}${p}`] });
    const started = process.hrtime.bigint();
    await call(a.adminPort, 'POST', '/purge', { 'content-type': 'application/json' }, body);
    for (const n of others) {
      // Polled every millisecond or so: a tight loop would take the CPU the nodes need to apply the purge.
      while ((await call(n.port, 'GET', p, { 'cache-control': 'only-if-cached' })) === 200) await new Promise((r) => setTimeout(r, 1));
    }
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
} finally {
  for (const c of children) c.kill('SIGTERM');
  origin.close();
  agent.destroy();
}
report();
setTimeout(() => fs.rmSync(tmp, { recursive: true, force: true }), 500);
