#!/usr/bin/env node
// `npm run demo:post`: starts the example embeddings API (scripts/example-embeddings.mjs) and edgecache in front of
// it with --cache-post /v1/, then shows with curl a MISS and a HIT for the same JSON body sent with its keys in
// another order, and a streamed completion replayed from the cache. Leaves both running until Ctrl-C (--exit:
// stop after the show). Ports: origin 3000, proxy 8080, admin 8081 (the next free ones if taken).
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

children.push(spawn(process.execPath, [path.join(root, 'scripts/example-embeddings.mjs'), String(originPort), '--delay', '500'], { stdio: 'inherit' }));
children.push(
  spawn(
    process.execPath,
    [cli, '--origin', `http://127.0.0.1:${originPort}`, '--port', String(proxyPort), '--host', '127.0.0.1', '--admin-port', String(adminPort), '--data-dir', dataDir, '--log-level', 'warn', '--cache-post', '/v1/'],
    { stdio: 'inherit' },
  ),
);
await waitFor(originPort);
await waitFor(proxyPort);

const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
async function show(label, urlPath, body) {
  const url = `http://127.0.0.1:${proxyPort}${urlPath}`;
  console.log(`\n$ curl -s -i ${url} -H 'Content-Type: application/json' -d '${body}'    # ${label}`);
  const started = Date.now();
  if (hasCurl) {
    spawnSync('curl', ['-s', '-i', url, '-H', 'Content-Type: application/json', '-H', 'Authorization: Bearer demo-key', '-d', body], { stdio: 'inherit' });
  } else {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer demo-key' }, body });
    console.log(`HTTP/1.1 ${res.status} ${res.statusText}`);
    for (const [k, v] of res.headers) console.log(`${k}: ${v}`);
    console.log(`\n${await res.text()}`);
  }
  console.log(`\n(${Date.now() - started} ms)`);
}
console.log(`\nedgecache POST-cache demo: embeddings API http://127.0.0.1:${originPort} (500 ms per model call), proxy http://127.0.0.1:${proxyPort}`);
await show('first request: X-Cache: MISS, the model is called', '/v1/embeddings', '{"model":"demo-embed","input":"hello world","dimensions":4}');
await show('same JSON, keys in another order and spaced: X-Cache: HIT, no model call', '/v1/embeddings', '{ "dimensions": 4, "input": "hello world", "model": "demo-embed" }');
await show('a streamed completion: relayed as it arrives, stored once complete', '/v1/completions', '{"prompt":"tokens arrive one by one","stream":true}');
await show('the same completion again: replayed from the cache, byte for byte', '/v1/completions', '{"stream":true,"prompt":"tokens arrive one by one"}');
if (process.argv.includes('--exit')) {
  stop();
  process.exit(0);
}
console.log(`\nBoth servers keep running; press Ctrl-C to stop.`);
