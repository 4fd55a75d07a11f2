#!/usr/bin/env node
// `npm run demo`: starts the example origin and edgecache in front of it, shows a MISS and then a HIT with curl,
// and leaves both running until Ctrl-C. Ports: origin 3000, proxy 8080, admin 8081 (the next free ones if taken).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist/proxy/cli.js');
if (!fs.existsSync(cli)) {
  console.error('demo: dist/ is missing; run `npm ci` (or `npm run build`) first');
  process.exit(2);
}

function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer().once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
async function pickPort(preferred, taken = []) {
  for (let p = preferred; p < preferred + 100; p++) if (!taken.includes(p) && (await portFree(p))) return p;
  throw new Error(`no free port near ${preferred}`);
}
async function waitFor(port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.end(() => resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${port}`);
}

const originPort = await pickPort(3000);
const proxyPort = await pickPort(8080, [originPort]);
const adminPort = await pickPort(8081, [originPort, proxyPort]);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-demo-'));

const children = [];
const stop = () => {
  for (const child of children) child.kill('SIGTERM');
  fs.rmSync(dataDir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  console.log('\nstopping the demo');
  stop();
  process.exit(0);
});
process.on('SIGTERM', () => {
  stop();
  process.exit(0);
});

children.push(spawn(process.execPath, [path.join(root, 'scripts/example-origin.mjs'), String(originPort)], { stdio: 'inherit' }));
children.push(
  spawn(process.execPath, [cli, '--origin', `http://127.0.0.1:${originPort}`, '--port', String(proxyPort), '--host', '127.0.0.1', '--admin-port', String(adminPort), '--data-dir', dataDir, '--log-level', 'warn'], {
    stdio: 'inherit',
  }),
);
await waitFor(originPort);
await waitFor(proxyPort);

const url = `http://127.0.0.1:${proxyPort}/hello`;
const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
async function show(label) {
  console.log(`\n$ curl -i ${url}    # ${label}`);
  if (hasCurl) {
    spawnSync('curl', ['-s', '-i', url], { stdio: 'inherit' });
    return;
  }
  const res = await fetch(url);
  console.log(`HTTP/1.1 ${res.status} ${res.statusText}`);
  for (const [k, v] of res.headers) console.log(`${k}: ${v}`);
  console.log(`\n${await res.text()}`);
}
console.log(`\nedgecache demo: origin http://127.0.0.1:${originPort}, proxy http://127.0.0.1:${proxyPort}, admin http://127.0.0.1:${adminPort}`);
await show('first request: X-Cache: MISS, fetched from the origin and stored');
await show('second request: X-Cache: HIT, served from memory, with Age and Cache-Status');
console.log(`Try more:
  curl -i http://127.0.0.1:${proxyPort}/api/time        # max-age=5 + stale-while-revalidate
  curl -i http://127.0.0.1:${proxyPort}/private         # never stored: Cache-Status says detail=private
  curl -i -H 'Accept-Language: fr' http://127.0.0.1:${proxyPort}/lang   # one variant per language
  curl -s http://127.0.0.1:${adminPort}/stats           # counters
Both servers keep running; press Ctrl-C to stop.`);
