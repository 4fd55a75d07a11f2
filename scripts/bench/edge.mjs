#!/usr/bin/env node
// `npm run bench:edge -- [--reps N] [--duration S] [--no-nginx]`: 1 KiB cached hits over TLS, with HTTP/1.1 (wrk)
// and HTTP/2 (h2load -c64 -m10 -t1), edgecache (--workers 1, --tls-cert) beside nginx proxy_cache (ssl, http2) and
// the ceilings: a bare node:https server and a bare node:http2 server using the core stream API, each answering a
// 1 KiB Buffer. Same self-signed certificate (openssl) for all; servers on CPU 0, the load generator on CPU 1;
// reps interleaved; medians of req/s and of server CPU per request (from /proc). Loopback only; stops by itself.
// Needs: npm run build, taskset, openssl, wrk, h2load (Debian nghttp2-client); nginx unless --no-nginx.
import { execFileSync, spawn } from 'node:child_process';
import { benchRun, freePort, groupStats, HOST, waitPort } from './process-groups.mjs';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: opts } = parseArgs({
  options: { reps: { type: 'string', default: '3' }, duration: { type: 'string', default: '5' }, 'no-nginx': { type: 'boolean', default: false } },
});
const reps = Number(opts.reps);
const seconds = Number(opts.duration);
if (!(reps > 0 && seconds > 0)) {
  console.error('bench:edge: --reps and --duration must be positive numbers');
  process.exit(2);
}
const PATH = '/obj/1k/edge-1';
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
const { tmp, launch } = benchRun('edgecache-bench-edge-', ROOT);
const log = (...a) => console.error(`[${new Date().toTimeString().slice(0, 8)}]`, ...a);

/** CPU ticks of every live process in a process group. */
function groupTicks(pgid) {
  return groupStats(pgid).reduce((ticks, { fields }) => ticks + Number(fields[11]) + Number(fields[12]), 0);
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', '1', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

// ---------------------------------------------------------------- set-up
const cert = path.join(tmp, 'cert.pem');
const key = path.join(tmp, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
const originPort = await freePort();
launch('origin', '1', [process.execPath, path.join(ROOT, 'scripts/bench/origin.mjs'), String(originPort)]);
await waitPort(originPort);

const targets = [];
async function target(name, protocols, argvFor) {
  const port = await freePort();
  const g = launch(name, '0', argvFor(port));
  await waitPort(port);
  targets.push({ name, protocols, port, pgid: g.pgid });
}
const bare = (kind) => `
const fs = require('node:fs');
const body = Buffer.alloc(1024, 'x');
const tls = { key: fs.readFileSync(${JSON.stringify(key)}), cert: fs.readFileSync(${JSON.stringify(cert)}) };
if (${JSON.stringify(kind)} === 'https') {
  require('node:https').createServer(tls, (req, res) => { res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1024 }); res.end(body); }).listen(Number(process.argv[1]), '${HOST}');
} else {
  const server = require('node:http2').createSecureServer({ ...tls, allowHTTP1: false, settings: { maxConcurrentStreams: 100 } });
  server.on('stream', (stream) => { stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'content-length': 1024 }); stream.end(body); });
  server.listen(Number(process.argv[1]), '${HOST}');
}`;
await target('node-https', ['h1'], (port) => [process.execPath, '-e', bare('https'), String(port)]);
await target('node-http2', ['h2'], (port) => [process.execPath, '-e', bare('h2'), String(port)]);
await target('edgecache', ['h1', 'h2'], (port) => [
  process.execPath, path.join(ROOT, 'dist/proxy/cli.js'), '--origin', `http://${HOST}:${originPort}`, '--host', HOST, '--port', String(port),
  '--admin-port', '0', '--workers', '1', '--log-level', 'warn', '--data-dir', path.join(tmp, 'edgecache-data'), '--tls-cert', cert, '--tls-key', key,
]);
if (!opts['no-nginx']) {
  const port = await freePort();
  const run = path.join(tmp, 'nginx');
  fs.mkdirSync(run);
  fs.writeFileSync(path.join(run, 'nginx.conf'), `worker_processes 1; daemon off; pid ${run}/nginx.pid; error_log ${run}/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
  access_log off; sendfile on; tcp_nodelay on; keepalive_timeout 65; keepalive_requests 10000000;
  client_body_temp_path ${run}/cb; proxy_temp_path ${run}/pt; fastcgi_temp_path ${run}/f; uwsgi_temp_path ${run}/u; scgi_temp_path ${run}/s;
  proxy_cache_path ${run}/cache levels=1:2 keys_zone=c:32m max_size=1g inactive=60m use_temp_path=off;
  upstream origin { server ${HOST}:${originPort}; keepalive 64; }
  proxy_http_version 1.1; proxy_set_header Connection ""; proxy_cache c; proxy_cache_valid 200 1h;
  server {
    listen ${HOST}:${port} ssl http2 backlog=4096;
    ssl_certificate ${cert}; ssl_certificate_key ${key}; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:S:10m;
    location / { proxy_pass http://origin; }
  }
}
`);
  const g = launch('nginx', '0', ['nginx', '-e', path.join(run, 'error.log'), '-c', path.join(run, 'nginx.conf'), '-p', run]);
  await waitPort(port);
  targets.push({ name: 'nginx', protocols: ['h1', 'h2'], port, pgid: g.pgid });
}
// Every cache fetches the object once before measuring.
for (const t of targets) await run('curl', ['-sk', '-o', '/dev/null', `https://${HOST}:${t.port}${PATH}`]);
for (const t of targets) await run('curl', ['-sk', '-o', '/dev/null', `https://${HOST}:${t.port}${PATH}`]);

// ---------------------------------------------------------------- measuring
const results = new Map(); // "name h1" -> [{ rps, cpuUs }]
function freezeOthers(keep) {
  for (const t of targets) {
    try {
      process.kill(-t.pgid, t === keep ? 'SIGCONT' : 'SIGSTOP');
    } catch {
      // gone
    }
  }
}
for (let rep = 1; rep <= reps; rep++) {
  for (const protocol of ['h1', 'h2']) {
    for (const t of targets.filter((x) => x.protocols.includes(protocol))) {
      freezeOthers(t);
      const url = `https://${HOST}:${t.port}${PATH}`;
      const before = groupTicks(t.pgid);
      const out =
        protocol === 'h1'
          ? await run('wrk', ['-t1', '-c64', `-d${seconds}s`, url])
          : await run('h2load', ['-c64', '-m10', '-t1', '-D', String(seconds), url]);
      const ticks = groupTicks(t.pgid) - before;
      const rps = Number((protocol === 'h1' ? /Requests\/sec:\s+([\d.]+)/ : /finished in [\d.]+s, ([\d.]+) req\/s/).exec(out)?.[1] ?? NaN);
      const failed = protocol === 'h2' ? Number(/(\d+) failed/.exec(out)?.[1] ?? 0) : Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      const cpuUs = rps > 0 ? ((ticks / CLK_TCK) * 1e6) / (rps * seconds) : NaN;
      const list = results.get(`${t.name} ${protocol}`) ?? [];
      list.push({ rps, cpuUs, failed });
      results.set(`${t.name} ${protocol}`, list);
      log(`${protocol} ${t.name.padEnd(10)} rep ${rep}: ${Math.round(rps).toLocaleString('en')} req/s, ${cpuUs.toFixed(1)} µs CPU/req${failed ? `, ${failed} failed` : ''}`);
    }
  }
}
for (const t of targets) {
  try {
    process.kill(-t.pgid, 'SIGCONT');
  } catch {
    // gone
  }
}

// ---------------------------------------------------------------- report
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cell = (name, protocol) => {
  const list = results.get(`${name} ${protocol}`);
  return list && { rps: median(list.map((r) => r.rps)), cpuUs: median(list.map((r) => r.cpuUs)), failed: list.reduce((n, r) => n + r.failed, 0) };
};
console.log(`\n1 KiB hits over TLS (self-signed RSA-2048), ${reps} interleaved reps of ${seconds} s, medians; servers on CPU 0, client on CPU 1`);
console.log('| protocol | target | req/s | server CPU µs/req | × ceiling | × nginx | failed |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const protocol of ['h1', 'h2']) {
  const ceiling = cell(protocol === 'h1' ? 'node-https' : 'node-http2', protocol);
  const nginx = cell('nginx', protocol);
  for (const t of targets.filter((x) => x.protocols.includes(protocol))) {
    const c = cell(t.name, protocol);
    const ratio = (other) => (other ? (c.rps / other.rps).toFixed(2) : '–');
    console.log(`| ${protocol === 'h1' ? 'HTTP/1.1 (wrk -c64)' : 'HTTP/2 (h2load -c64 -m10)'} | ${t.name} | ${Math.round(c.rps).toLocaleString('en')} | ${c.cpuUs.toFixed(1)} | ${ratio(ceiling)} | ${ratio(nginx)} | ${c.failed} |`);
  }
}
process.exit(0);
