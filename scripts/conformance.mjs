#!/usr/bin/env node
// Runs the public HTTP cache test suite (npm http-cache-tests, the suite behind cache-tests.fyi) through
// edgecache and counts the results the way cache-tests.fyi does.
//
//   npm run conformance                 run, print the summary, write conformance-results/<timestamp>.json
//   npm run conformance -- --check      ... and exit 1 when a pass count is below conformance-floor.json
//   npm run conformance -- --fails      ... and list every test that did not pass
//   npm run conformance -- --update-floor   raise the floor to this run's counts
//
// The suite's test origin listens on 127.0.0.1:8000 (the suite's default); edgecache runs from dist/ on a free
// port in front of it, with a temporary data directory.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const suiteDir = path.join(root, 'node_modules/http-cache-tests');
const floorFile = path.join(root, 'conformance-floor.json');
const args = new Set(process.argv.slice(2));
const ORIGIN_PORT = Number(process.env.CONFORMANCE_ORIGIN_PORT || 8000);

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitForPort(port, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${port} after ${ms} ms`);
}

function run(cmd, argv, options) {
  return spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

if (!fs.existsSync(path.join(root, 'dist/proxy/cli.js'))) {
  console.error('conformance: dist/ is missing; run `npm run build` first');
  process.exit(2);
}
if (!fs.existsSync(suiteDir)) {
  console.error('conformance: node_modules/http-cache-tests is missing; run `npm ci` first');
  process.exit(2);
}

const children = [];
const cleanup = () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const pidFile = path.join(os.tmpdir(), `edgecache-hct-${process.pid}.pid`);
const origin = run(process.execPath, ['server/server.mjs'], {
  cwd: suiteDir,
  env: { ...process.env, npm_config_protocol: 'http', npm_config_port: String(ORIGIN_PORT), npm_config_pidfile: pidFile },
});
children.push(origin);
origin.stderr.pipe(process.stderr);

const proxyPort = await freePort();
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-conformance-'));
const proxy = run(process.execPath, [path.join(root, 'dist/proxy/cli.js'), '--origin', `http://127.0.0.1:${ORIGIN_PORT}`, '--port', String(proxyPort), '--host', '127.0.0.1', '--admin-port', '0', '--data-dir', dataDir, '--log-level', 'error'], { cwd: root });
children.push(proxy);
proxy.stderr.pipe(process.stderr);

await waitForPort(ORIGIN_PORT);
await waitForPort(proxyPort);

const base = `http://127.0.0.1:${proxyPort}`;
const started = Date.now();
const cli = run(process.execPath, ['--no-warnings', 'cli.mjs'], {
  cwd: suiteDir,
  env: { ...process.env, npm_config_base: base, npm_package_config_base: base, npm_config_id: '', npm_package_config_id: '' },
});
children.push(cli);
let output = '';
cli.stdout.on('data', (chunk) => {
  output += chunk;
});
cli.stderr.pipe(process.stderr);
const timer = setTimeout(() => {
  console.error('conformance: the suite did not finish in 300 s (a request hung?)');
  cli.kill('SIGKILL');
}, 300_000);
const code = await new Promise((resolve) => cli.on('close', resolve));
clearTimeout(timer);
cleanup();
fs.rmSync(dataDir, { recursive: true, force: true });

let results;
try {
  results = JSON.parse(output);
} catch {
  console.error(`conformance: the suite's CLI exited with ${code} without JSON results`);
  process.exit(1);
}
const outDir = path.join(root, 'conformance-results');
fs.mkdirSync(outDir, { recursive: true });
const resultFile = path.join(outDir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(resultFile, JSON.stringify(results, null, 2));
fs.copyFileSync(resultFile, path.join(outDir, 'latest.json'));

const summarizer = path.join(root, 'scripts/conformance/summarize.mjs');
const summaryArgs = [summarizer, '--suite', suiteDir, ...(args.has('--fails') ? ['--fails'] : []), resultFile];
const printed = spawn(process.execPath, summaryArgs, { stdio: 'inherit' });
await new Promise((resolve) => printed.on('close', resolve));

const json = await new Promise((resolve) => {
  const child = run(process.execPath, [summarizer, '--suite', suiteDir, '--json', resultFile], {});
  let text = '';
  child.stdout.on('data', (c) => {
    text += c;
  });
  child.on('close', () => resolve(JSON.parse(text)[0]));
});
const counts = {
  passed: json.passed,
  requiredPassed: json.byKind.required?.passed ?? 0,
  optimalPassed: json.byKind.optimal?.passed ?? 0,
  checkYes: json.byKind.check?.passed ?? 0,
  fyiPass: json.categories.pass ?? 0,
};
console.log(`\nedgecache: ${counts.requiredPassed}/${json.byKind.required?.total ?? 0} required, ${counts.fyiPass} fyi pass, ${counts.passed}/${json.total} raw, in ${((Date.now() - started) / 1000).toFixed(1)} s; results in ${path.relative(root, resultFile)}`);

if (args.has('--update-floor')) {
  fs.writeFileSync(floorFile, `${JSON.stringify(counts, null, 2)}\n`);
  console.log(`conformance: floor written to ${path.relative(root, floorFile)}`);
}
if (args.has('--check')) {
  const floor = JSON.parse(fs.readFileSync(floorFile, 'utf8'));
  const drops = Object.entries(floor).filter(([k, v]) => (counts[k] ?? 0) < v);
  if (drops.length) {
    console.error(`conformance: below the floor in ${path.relative(root, floorFile)}: ${drops.map(([k, v]) => `${k} ${counts[k]} < ${v}`).join(', ')}`);
    process.exit(1);
  }
  console.log('conformance: at or above the floor');
}
