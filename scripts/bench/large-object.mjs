#!/usr/bin/env node
// `npm run bench:large -- [--size MiB] [--reps N] [--no-nginx] [--tls]`: one large cached object (default 1 GiB)
// streamed to one client, edgecache (--workers 1, disk tier) beside nginx proxy_cache. Each cache fetches the object
// once from the origin (the miss, timed), then it is downloaded --reps times (default 3) by curl (to /dev/null),
// the targets interleaved and the idle one frozen (SIGSTOP). Reports MB/s of the hits (median), the time of the
// miss, and the server's anonymous RSS (RssAnon in /proc/PID/status: the process's own memory, not the file pages
// LMDB or nginx read through mmap / the page cache) before and at its peak during the hits, sampled every 20 ms.
// Servers on CPU 0, origin and curl on CPU 1. Loopback only; stops by itself.
// Needs: npm run build, taskset, curl; nginx unless --no-nginx; openssl with --tls.
import { execFileSync, spawn } from 'node:child_process';
import { benchRun, freePort, groupStats, HOST, waitPort } from './process-groups.mjs';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: opts } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    reps: { type: 'string', default: '3' },
    'no-nginx': { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
  },
});
const sizeMiB = Number(opts.size);
const reps = Number(opts.reps);
if (!(Number.isInteger(sizeMiB) && sizeMiB > 0 && sizeMiB <= 3072 && reps > 0)) {
  console.error('bench:large: --size takes MiB (1 to 3072) and --reps a positive number');
  process.exit(2);
}
const PATH = `/obj/${sizeMiB}m/large-1`;
const scheme = opts.tls ? 'https' : 'http';
const { tmp, launch } = benchRun('edgecache-bench-large-', ROOT);
const log = (...a) => console.error(`[${new Date().toTimeString().slice(0, 8)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** RssAnon of every process of the group (taskset's child and nginx's workers), in bytes. */
function groupRssAnon(pgid) {
  let bytes = 0;
  for (const { pid } of groupStats(pgid)) {
    try {
      bytes += Number(/RssAnon:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // gone
    }
  }
  return bytes;
}

/** One download by curl on CPU 1: status, bytes, seconds and X-Cache. */
function download(url) {
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', '1', 'curl', '-sk', '-o', '/dev/null', '-D', '-', '-w', 'RESULT %{http_code} %{size_download} %{time_total}\n', url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('close', () => {
      clearTimeout(timer);
      const [, status, bytes, seconds] = /RESULT (\d+) (\d+) ([\d.]+)/.exec(out) ?? [];
      resolve({ status: Number(status), bytes: Number(bytes), seconds: Number(seconds), xcache: /x-cache: (\S+)/i.exec(out)?.[1] ?? '-' });
    });
  });
}

// ---------------------------------------------------------------- set-up
let tlsFlags = [];
let nginxTls = '';
if (opts.tls) {
  const cert = path.join(tmp, 'cert.pem');
  const key = path.join(tmp, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  tlsFlags = ['--tls-cert', cert, '--tls-key', key];
  nginxTls = ` ssl;\n    ssl_certificate ${cert}; ssl_certificate_key ${key}; ssl_protocols TLSv1.2 TLSv1.3`;
}
const originPort = await freePort();
launch('origin', '1', [process.execPath, path.join(ROOT, 'scripts/bench/origin.mjs'), String(originPort)]);
await waitPort(originPort);

const targets = [];
{
  const port = await freePort();
  const g = launch('edgecache', '0', [
    process.execPath, path.join(ROOT, 'dist/proxy/cli.js'), '--origin', `http://${HOST}:${originPort}`, '--host', HOST, '--port', String(port),
    '--admin-port', '0', '--workers', '1', '--log-level', 'warn', '--data-dir', path.join(tmp, 'edgecache-data'),
    '--disk-max', `${sizeMiB * 2 + 256}mib`, '--max-object-size', `${sizeMiB + 16}mib`, ...tlsFlags,
  ]);
  await waitPort(port);
  targets.push({ name: 'edgecache', port, pgid: g.pgid });
}
if (!opts['no-nginx']) {
  const port = await freePort();
  const run = path.join(tmp, 'nginx');
  fs.mkdirSync(run);
  fs.writeFileSync(path.join(run, 'nginx.conf'), `worker_processes 1; daemon off; pid ${run}/nginx.pid; error_log ${run}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nodelay on; keepalive_timeout 65;
  client_body_temp_path ${run}/cb; proxy_temp_path ${run}/pt; fastcgi_temp_path ${run}/f; uwsgi_temp_path ${run}/u; scgi_temp_path ${run}/s;
  proxy_cache_path ${run}/cache levels=1:2 keys_zone=c:8m max_size=${sizeMiB * 2 + 256}m inactive=60m use_temp_path=off;
  upstream origin { server ${HOST}:${originPort}; keepalive 8; }
  proxy_http_version 1.1; proxy_set_header Connection ""; proxy_cache c; proxy_cache_valid 200 1h;
  proxy_max_temp_file_size 0;
  server {
    listen ${HOST}:${port}${nginxTls};
    location / { proxy_pass http://origin; add_header X-Cache $upstream_cache_status; }
  }
}
`);
  const g = launch('nginx', '0', ['nginx', '-e', path.join(run, 'error.log'), '-c', path.join(run, 'nginx.conf'), '-p', run]);
  await waitPort(port);
  targets.push({ name: 'nginx', port, pgid: g.pgid });
}

function freezeOthers(keep) {
  for (const t of targets) {
    try {
      process.kill(-t.pgid, t === keep ? 'SIGCONT' : 'SIGSTOP');
    } catch {
      // gone
    }
  }
}

// ---------------------------------------------------------------- the miss, then the hits
const MB = 1e6;
for (const t of targets) {
  freezeOthers(t);
  const url = `${scheme}://${HOST}:${t.port}${PATH}`;
  t.rssBefore = groupRssAnon(t.pgid);
  const miss = await download(url);
  t.miss = miss;
  log(`${t.name.padEnd(9)} miss: ${miss.status} ${miss.bytes} B in ${miss.seconds.toFixed(2)} s (${miss.xcache})`);
  // Let the cache finish writing the object (nginx renames its temp file; edgecache commits its last chunk).
  await sleep(2000);
  t.hits = [];
  t.peakRss = groupRssAnon(t.pgid);
  t.rssIdle = t.peakRss;
}
for (let rep = 1; rep <= reps; rep++) {
  for (const t of targets) {
    freezeOthers(t);
    const url = `${scheme}://${HOST}:${t.port}${PATH}`;
    const sampler = setInterval(() => (t.peakRss = Math.max(t.peakRss, groupRssAnon(t.pgid))), 20);
    const hit = await download(url);
    clearInterval(sampler);
    t.peakRss = Math.max(t.peakRss, groupRssAnon(t.pgid));
    t.hits.push(hit);
    log(`${t.name.padEnd(9)} rep ${rep}: ${hit.status} ${hit.xcache} ${(hit.bytes / hit.seconds / MB).toFixed(0)} MB/s`);
  }
}
freezeOthers(undefined);
for (const t of targets) {
  try {
    process.kill(-t.pgid, 'SIGCONT');
  } catch {
    // gone
  }
}

// ---------------------------------------------------------------- report
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const nginx = targets.find((t) => t.name === 'nginx');
const rate = (t) => median(t.hits.map((h) => h.bytes / h.seconds / MB));
console.log(`\nOne ${sizeMiB} MiB cached object to one client (curl, ${scheme}), ${reps} interleaved downloads, median; servers on CPU 0, origin and curl on CPU 1`);
console.log('| target | hits MB/s (min–max) | × nginx | miss s | hit answers | RssAnon before the miss MB | idle after it MB | peak during hits MB | growth over idle MB |');
console.log('|---|---:|---:|---:|---|---:|---:|---:|---:|');
for (const t of targets) {
  const rates = t.hits.map((h) => h.bytes / h.seconds / MB);
  const complete = t.hits.every((h) => h.status === 200 && h.bytes === sizeMiB * 1048576);
  console.log(
    `| ${t.name} | ${rate(t).toFixed(0)} (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}) | ${nginx ? (rate(t) / rate(nginx)).toFixed(2) : '–'} | ${t.miss.seconds.toFixed(2)} | ${complete ? 'all 200, whole' : 'INCOMPLETE'} ${[...new Set(t.hits.map((h) => h.xcache))].join(',')} | ${(t.rssBefore / MB).toFixed(0)} | ${(t.rssIdle / MB).toFixed(0)} | ${(t.peakRss / MB).toFixed(0)} | ${((t.peakRss - t.rssIdle) / MB).toFixed(0)} |`,
  );
}
process.exit(0);
