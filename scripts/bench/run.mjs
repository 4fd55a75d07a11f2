#!/usr/bin/env node
// `npm run bench -- [options]`: edgecache's hit path (memory and disk tier) and cold-miss coalescing, measured
// on loopback against a bare node:http ceiling and, optionally, nginx proxy_cache and Varnish. The method
// (pinning, interleaving, freezing idle targets, medians) follows ../shared/bench/bench.sh, the team harness.
// docs/benchmarks.md explains the modes and how to read the tables.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { coalesceBurst, getJson } from './coalesce.mjs';
import { parseDist, requestSequence, urlSet, writeWrkScript } from './many-keys.mjs';
import { renderCompare, renderReport } from './report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const HOST = '127.0.0.1';
const HELP = `Usage: npm run bench -- [options]

Modes (--modes, comma-separated; default memory,disk,coalesce):
  memory    fresh memory-tier hits, one URL per size (--sizes, default 1k,64k,1m)
  disk      hits served by the disk tier: a second edgecache with --memory-max 1mb, a working set of
            --disk-urls distinct URLs (default 2048) rotated by a wrk Lua script, at --disk-sizes (default 16k);
            edgecache with its normal memory tier, node-http (one Buffer for every URL) and node-map (one Buffer
            per URL, the fairer ceiling) run the same script for comparison
  keys      many keys (not in the default): --keys N URLs (default 10000; comma list, e.g. 10000,100000),
            bodies --keys-sizes (default 1k-64k: uniform in that range; or fixed, e.g. 4k, 100), requested
            --keys-dists (default uniform,zipf0.8,zipf1.0) from a precomputed sequence by a wrk Lua script, every
            URL cached before measuring; against node-map (node:http answering the same URLs from a Map, the
            ceiling), edgecache and the peers. Also reports edgecache's memory per entry beyond the bodies
  compress  hits of a JSON body (--compress-sizes, default 100k) with \`Accept-Encoding: br, gzip\` and without
            (identity), not in the default: edgecache serves its stored br form; nginx (--peers nginx) compresses
            with gzip on, gzip_comp_level 6, per response
  misses    cache misses (not in the default): every request names a URL not requested before (a wrk Lua script
            counts), so each one is fetched from the origin and stored, at --miss-sizes (default 1k); edgecache
            (memory and disk tiers, as by default), its variants and the peers; the figure to read is server CPU
            per miss (the origin and wrk share the other CPU)
  coalesce  --coalesce-n (1000) concurrent requests, one connection each, for a new URL whose origin response
            takes --coalesce-delay ms (200); --coalesce-trials (3), --coalesce-sizes (1k)

Options:
  --peers nginx,varnish     also measure these (skipped with one line when not installed); default none
  --reps N (5)  --duration S (10)  --warm S (3)  --connections N (64)
  --edgecache-flags "..."   extra flags for every edgecache started (e.g. "--workers 2"); they come last, so they win
  --disk-flags "..."        extra flags for the disk-mode edgecache only (after --memory-max 1mb --max-object-size 1mb)
  --variants "NAME=FLAGS;…" more edgecache targets in the memory, keys and misses modes, measured interleaved with the
                            plain one, e.g. --variants "log=--access-log on" adds edgecache-log (what a feature costs)
  --baseline DIR            also run edgecache-baseline, another build of edgecache (DIR: a checkout with dist/ built,
                            e.g. a git worktree of an older commit), with the same flags, in the memory, keys and
                            misses modes, interleaved: what a change does, measured in one run
  --edgecache-cpus LIST     CPUs for edgecache (default 0; 0,1 gives 2 workers with --workers auto, sharing CPU 1 with wrk)
  --out FILE.json           results (default bench-results/<timestamp>.json; a .md with the tables is written next to it)
  --compare OLD.json        also print the ratio of each cell to an older run
  --quick                   smoke run: 1 rep of 3 s, 1k only, 1 coalescing trial (about a minute)
  --max-other-cpu PCT (25)  a run during which other processes used more CPU than this (on CPUs 0+1) is redone
  --retries N (2)           ... at most N times, 5 s apart; the quietest attempt counts (0: never redo)
  --no-freeze               do not SIGSTOP idle targets while another one is measured
  --keep-tmp                keep the temp dir (logs, configs) instead of deleting it
  --gc                      run the Node targets (edgecache, node-http, node-map) with --trace-gc-nvp and report what
                            garbage collection cost during each measured run: its main-thread pause and its helper
                            threads' time per request, bytes promoted (counted whatever else the machine runs);
                            it lengthens every collection (the trace measures the heap's free space each time), so
                            compare p99 only between runs without --gc
Needs: npm run build first, taskset, wrk (Debian: apt-get install -y wrk); nginx / varnish for --peers.
`;

// ------------------------------------------------------------------ options
const DEFAULTS = {
  modes: 'memory,disk,coalesce', peers: '', sizes: '1k,64k,1m', diskSizes: '16k', diskUrls: 2048, reps: 5, duration: 10,
  warm: 3, connections: 64, coalesceN: 1000, coalesceDelay: 200, coalesceTrials: 3, coalesceSizes: '1k',
  compressSizes: '100k', missSizes: '1k', keys: '10000', keysSizes: '1k-64k', keysDists: 'uniform,zipf0.8,zipf1.0',
  maxOtherCpu: 25, retries: 2, edgecacheFlags: '', variants: '', baseline: '', diskFlags: '', edgecacheCpus: '0', out: '', compare: '', quick: false, freeze: true, keepTmp: false, gc: false,
};
const QUICK = { reps: 1, duration: 3, warm: 1, sizes: '1k', coalesceTrials: 1 };
const BOOLEAN = new Set(['quick', 'freeze', 'keepTmp', 'gc', 'help']);

function parseArgs(argv) {
  const given = {};
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a} (see --help)`);
    a = a.slice(2);
    let value;
    const eq = a.indexOf('=');
    if (eq !== -1) [a, value] = [a.slice(0, eq), a.slice(eq + 1)];
    let key = a.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (key.startsWith('no') && BOOLEAN.has(key[2]?.toLowerCase() + key.slice(3))) {
      key = key[2].toLowerCase() + key.slice(3);
      value = false;
    }
    if (!(key in DEFAULTS) && key !== 'help') throw new Error(`unknown option --${a} (see --help)`);
    if (BOOLEAN.has(key)) given[key] = value === undefined ? true : value !== false && value !== 'false';
    else {
      if (value === undefined) value = argv[++i];
      if (value === undefined) throw new Error(`--${a} needs a value`);
      given[key] = typeof DEFAULTS[key] === 'number' ? Number(value) : value;
    }
  }
  if (given.help) return { help: true };
  return { ...DEFAULTS, ...(given.quick ? QUICK : {}), ...given };
}

const list = (s) => String(s).split(',').map((x) => x.trim()).filter(Boolean);
const words = (s) => (String(s).match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^(["'])(.*)\1$/, '$2'));
const sizeBytes = (s) => {
  const m = /^(\d+)([km]?)$/i.exec(s);
  if (!m) throw new Error(`bad size ${s} (use e.g. 1k, 64k, 1m)`);
  return Number(m[1]) * ({ k: 1024, m: 1048576 }[m[2].toLowerCase()] ?? 1);
};

// ------------------------------------------------------------------ small helpers
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const stamp = () => new Date().toTimeString().slice(0, 8);
const log = (...a) => console.error(`[${stamp()}]`, ...a);
const PATHS = (process.env.PATH ?? '').split(':').concat(['/usr/local/sbin', '/usr/sbin', '/sbin']);
const which = (bin) => PATHS.map((d) => path.join(d, bin)).find((p) => { try { fs.accessSync(p, fs.constants.X_OK); return fs.statSync(p).isFile(); } catch { return false; } });
const firstLine = (cmd, args) => { const r = spawnSync(cmd, args, { encoding: 'utf8' }); return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim(); };
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** GET through `agent`: status, body length, X-Cache. */
function get(port, p, agent = false) {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path: p, agent }, (res) => {
      let len = 0;
      res.on('data', (c) => { len += c.length; });
      res.on('end', () => resolve({ status: res.statusCode, len, xcache: String(res.headers['x-cache'] ?? '') }));
      res.on('error', (e) => resolve({ status: `ERR:${e.code}`, len, xcache: '' }));
    });
    req.on('error', (e) => resolve({ status: `ERR:${e.code}`, len: 0, xcache: '' }));
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
  });
}

// ------------------------------------------------------------------ /proc
/** Live (non-zombie) processes of a process group, with their CPU ticks. */
function groupProcs(pgid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (d.charCodeAt(0) > 57) continue;
    let st;
    try { st = fs.readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // f[0] = field 3 (state)
    if (Number(f[2]) === pgid && f[0] !== 'Z') out.push({ pid: Number(d), ticks: Number(f[11]) + Number(f[12]) });
  }
  return out;
}
const groupTicks = (pgid) => groupProcs(pgid).reduce((a, p) => a + p.ticks, 0);
/**
 * Resident memory of a target's processes, without file pages (RssAnon + RssShmem: VmRSS less RssFile). File
 * pages are the page cache mapped in: edgecache's disk tier (LMDB maps its data file, and every record written
 * also passes through it) would otherwise count as the process's memory; nginx's keys zone is shared memory and
 * stays counted.
 */
function groupRssKb(pgid) {
  let kb = 0;
  for (const { pid } of groupProcs(pgid)) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
      kb += field('RssAnon') + field('RssShmem');
    } catch { /* exited */ }
  }
  return kb;
}
/** CPU time of this process's waited-for children (wrk), in ticks. */
function childTicks() {
  const st = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return Number(f[13]) + Number(f[14]);
}
function cpuSnap() {
  const out = {};
  for (const l of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)/.exec(l);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    const busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    out[m[1]] = { busy, total: busy + v[3] + v[4] };
  }
  return out;
}
const cpuBusyPct = (a, b, cpu) => (a[cpu] && b[cpu] ? Math.round((100 * (b[cpu].busy - a[cpu].busy)) / (b[cpu].total - a[cpu].total)) : NaN);

// ------------------------------------------------------------------ processes we start (each its own process group)
const groups = [];
let TMP = '';
const extraDirs = []; // temp dirs outside TMP (Varnish's working dir on tmpfs)
let cleaned = false;
let opts;

function launch(name, cpus, argv, { cwd = TMP, env = process.env } = {}) {
  const logFile = path.join(TMP, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn('taskset', ['-c', cpus, ...argv], { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const g = { name, pgid: child.pid, log: logFile, exited: null };
  child.on('exit', (code, signal) => { g.exited = signal ?? code; });
  child.on('error', (e) => { g.exited = e.message; });
  groups.push(g);
  return g;
}

const tail = (file, n = 8) => { try { return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n'); } catch { return ''; } };

async function waitReady(g, port, probe) {
  for (let i = 0; i < 300; i++) {
    if (g.exited !== null) throw new Error(`${g.name} exited (${g.exited}) before listening on :${port}:\n${tail(g.log)}`);
    if (await portOpen(port)) break;
    if (i === 299) throw new Error(`${g.name} did not open :${port} within 30 s; log ${g.log}:\n${tail(g.log)}`);
    await sleep(100);
  }
  for (let i = 0; probe && i < 50; i++) {
    if ((await get(port, probe)).status === 200) return;
    await sleep(200);
  }
}

function signalGroup(g, sig) { try { process.kill(-g.pgid, sig); } catch { /* gone */ } }

function cleanupSync() {
  if (cleaned) return;
  cleaned = true;
  for (const g of groups) { signalGroup(g, 'SIGCONT'); signalGroup(g, 'SIGTERM'); }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && groups.some((g) => groupProcs(g.pgid).length > 0)) sleepSync(100);
  for (const g of groups) if (groupProcs(g.pgid).length > 0) signalGroup(g, 'SIGKILL');
  for (const d of extraDirs) fs.rmSync(d, { recursive: true, force: true });
  if (TMP && !opts?.keepTmp) fs.rmSync(TMP, { recursive: true, force: true });
  else if (TMP) console.error(`temp dir kept: ${TMP}`);
}

// ------------------------------------------------------------------ targets
/** name -> { name, port, adminPort?, group, cpus } */
const targets = new Map();

async function startEdgecache(name, originPort, extra, root = ROOT) {
  const port = await freePort();
  const adminPort = await freePort();
  const dataDir = path.join(TMP, `${name}-data`);
  fs.mkdirSync(dataDir);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EDGECACHE_')));
  const argv = [...nodeCommand(), path.join(root, 'dist/proxy/cli.js'), '--origin', `http://${HOST}:${originPort}`, '--port', String(port),
    '--host', HOST, '--admin-port', String(adminPort), '--log-level', 'warn', '--data-dir', dataDir, ...extra];
  const g = launch(name, opts.edgecacheCpus, argv, { cwd: root, env });
  await waitReady(g, port, '/obj/1k/startup-probe');
  targets.set(name, { name, port, adminPort, group: g, cpus: opts.edgecacheCpus, argv: argv.slice(1) });
}

/** Cache sizes of the peers, raised for the many-keys mode (nginx: about 4,000 keys per MiB of keys zone). */
const peerSizing = { keysZoneMb: 32, diskMb: 2048, mallocMb: 512 };

async function startPeer(name, originPort, cpus) {
  const port = await freePort();
  const dir = path.join(TMP, name);
  fs.mkdirSync(dir, { mode: 0o755 });
  let argv;
  if (name === 'nginx') {
    const conf = fs.readFileSync(path.join(HERE, 'configs/nginx.conf.tmpl'), 'utf8')
      .replaceAll('@PORT@', String(port)).replaceAll('@RUN@', dir).replaceAll('@ORIGIN_PORT@', String(originPort))
      .replace('keys_zone=c:32m', `keys_zone=c:${peerSizing.keysZoneMb}m`).replace('max_size=2g', `max_size=${peerSizing.diskMb}m`);
    fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
    argv = [which('nginx'), '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf'), '-p', dir];
  } else {
    const vcl = fs.readFileSync(path.join(HERE, 'configs/varnish.vcl'), 'utf8').replaceAll('@ORIGIN_PORT@', String(originPort));
    fs.writeFileSync(path.join(dir, 'default.vcl'), vcl, { mode: 0o644 });
    // The working dir holds Varnish's shared-memory log, rewritten all the time: on a disk it costs writeback I/O
    // (about 50 MB/s here), so it goes on tmpfs, as Varnish recommends.
    let work = path.join(dir, 'instance');
    try { work = fs.mkdtempSync('/dev/shm/edgecache-bench-varnish-'); fs.chmodSync(work, 0o755); extraDirs.push(work); } catch { /* no /dev/shm */ }
    argv = [which('varnishd'), '-F', '-n', work, '-a', `${HOST}:${port}`, '-f', path.join(dir, 'default.vcl'), '-s', `malloc,${peerSizing.mallocMb}m`, '-T', 'none'];
  }
  const g = launch(name, cpus, argv);
  try {
    await waitReady(g, port, '/obj/1k/startup-probe');
  } catch (e) {
    signalGroup(g, 'SIGKILL'); // not measured: it must not keep running beside the others
    throw e;
  }
  targets.set(name, { name, port, group: g, cpus });
}

/** SIGSTOP every target except `keep` (the origin is never frozen), or SIGCONT them all. */
function freezeOthers(keep) {
  if (!opts.freeze) return;
  for (const t of targets.values()) if (t.name !== keep) signalGroup(t.group, 'SIGSTOP');
}
function thawAll() {
  for (const t of targets.values()) signalGroup(t.group, 'SIGCONT');
}

async function edgecacheStats(t) {
  if (!t.adminPort) return null;
  try { return await getJson(t.adminPort, '/stats'); } catch { return null; }
}
function statsDelta(a, b) {
  if (!a || !b) return null;
  const out = {};
  for (const k of ['hits', 'misses', 'stale', 'bypass', 'originFetches', 'originErrors', 'coalesced', 'stored', 'notStored']) {
    if (typeof b[k] === 'number') out[k] = b[k] - (a[k] ?? 0);
  }
  for (const [name, tier] of Object.entries(b.tiers ?? {})) {
    out[`${name}.evictions`] = tier.evictions - (a.tiers?.[name]?.evictions ?? 0);
    out[`${name}.entries`] = tier.entries;
  }
  return out;
}

// ------------------------------------------------------------------ wrk
let CLIENT_CPU = '1';

function runWrk(url, seconds, script, headers = []) {
  return new Promise((resolve) => {
    const args = ['-c', CLIENT_CPU, 'wrk', '-t1', `-c${opts.connections}`, `-d${seconds}s`, '--latency', ...(script ? ['-s', script] : []), ...headers.flatMap((h) => ['-H', h]), url];
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('close', () => { clearTimeout(timer); resolve({ out, cmd: `taskset ${args.join(' ')}` }); });
  });
}

function parseWrk(text) {
  const ms = (v, unit) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? 1);
  const lat = (p) => { const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(text); return m ? ms(m[1], m[2]) : NaN; };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN),
    requests: Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN),
    p50_ms: lat(50), p99_ms: lat(99),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    sockerr: se ? se.slice(1).reduce((a, x) => a + Number(x), 0) : 0,
  };
}

// ------------------------------------------------------------------ hit path
let ORIGIN_PORT = 0;
/** The origin's process group (its CPU is the origin's work, not noise, in the misses mode). */
let originGroup = null;
const originTotal = async () => (await getJson(ORIGIN_PORT, '/__count?path=/none')).total;
const results = { version: 1, meta: {}, settings: {}, runs: [], checks: [], coalesce: [], keysMemory: [], notes: [] };

function check(cell, target, what, ok, detail) {
  results.checks.push({ mode: cell.mode, size: cell.size, target, what, ok, detail });
  (ok ? log : (...a) => log('WARN', ...a))(`${cell.mode} ${cell.size} ${target}: ${what}: ${ok ? 'ok' : 'FAILED'} (${detail})`);
}

const diskPath = (size, i) => `/obj/${size}/ws-${i}`;

async function warmMemory(cell, t) {
  const want = sizeBytes(cell.size);
  let r;
  for (let i = 0; i < 6; i++) r = await get(t.port, cell.path);
  if (r.status !== 200 || r.len !== want) {
    check(cell, t.name, '200 and exact length', false, `got ${r.status} ${r.len} B, want 200 ${want} B`);
    return false;
  }
  const o0 = await originTotal();
  await runWrk(`http://${HOST}:${t.port}${cell.path}`, opts.warm);
  const d = (await originTotal()) - o0;
  check(cell, t.name, 'warm-up: 200, exact length, origin silent', d === 0, `200 ${want} B, X-Cache ${r.xcache || '-'}; origin +${d} during ${opts.warm} s of wrk`);
  return true;
}

async function forAll(n, concurrency, fn) {
  let next = 1;
  await Promise.all(Array.from({ length: concurrency }, async () => { while (next <= n) await fn(next++); }));
}

async function warmDisk(cell, t) {
  const want = sizeBytes(cell.size);
  const n = opts.diskUrls;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  let bad = 0;
  await forAll(n, 8, async (i) => { const r = await get(t.port, diskPath(cell.size, i), agent); if (r.status !== 200 || r.len !== want) bad++; });
  if (bad) {
    agent.destroy();
    check(cell, t.name, `fill ${n} URLs`, false, `${bad} responses were not 200 with ${want} B`);
    return false;
  }
  let d = -1;
  let xc = {};
  for (let pass = 0; pass < 2 && d !== 0; pass++) {
    await sleep(1000 * (pass + 1)); // let asynchronous disk writes land
    xc = {};
    const o0 = await originTotal();
    await forAll(n, 8, async (i) => { const r = await get(t.port, diskPath(cell.size, i), agent); xc[r.xcache || '-'] = (xc[r.xcache || '-'] ?? 0) + 1; });
    d = (await originTotal()) - o0;
  }
  agent.destroy();
  const s = await edgecacheStats(t);
  const tiers = s ? Object.entries(s.tiers ?? {}).map(([k, v]) => `${k} ${v.entries} entries ${(v.bytes / 1048576).toFixed(1)}/${(v.maxBytes / 1048576).toFixed(1)} MiB`).join(', ') : '';
  const xcs = Object.entries(xc).map(([k, v]) => `${k}×${v}`).join(' ');
  check(cell, t.name, `re-read of the ${n}-URL working set served from cache`, d === 0, `origin +${d}; X-Cache ${xcs}${tiers ? `; tiers: ${tiers}` : ''}`);
  if (d !== 0) {
    results.notes.push(`${cell.mode} ${cell.size}: ${t.name} dropped: the origin saw ${d} requests while the ${n}-URL working set was re-read, so it was not kept in cache${t.name === 'edgecache-disk' ? ' (with --memory-max 1mb only a disk tier can hold it: is the LMDB tier wired in?)' : ''}.`);
    return false;
  }
  await runWrk(`http://${HOST}:${t.port}/`, opts.warm, cell.script);
  return true;
}

const pathBytes = (p) => Number(p.split('/')[2]);

/** GET with request headers: status, Content-Encoding, body length (as sent), X-Cache. */
function getWith(port, p, headers) {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path: p, headers, agent: false }, (res) => {
      let len = 0;
      res.on('data', (c) => { len += c.length; });
      res.on('end', () => resolve({ status: res.statusCode, len, coding: String(res.headers['content-encoding'] ?? 'identity'), xcache: String(res.headers['x-cache'] ?? '') }));
      res.on('error', (e) => resolve({ status: `ERR:${e.code}`, len, coding: '', xcache: '' }));
    });
    req.on('error', (e) => resolve({ status: `ERR:${e.code}`, len: 0, coding: '', xcache: '' }));
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
  });
}

/**
 * Compression warm-up: the JSON fetched (edgecache compresses it once, in the background), then the coding each
 * target answers this cell's Accept-Encoding with is checked and noted with the bytes per response.
 */
async function warmCompress(cell, t) {
  const want = sizeBytes(cell.baseSize);
  const headers = Object.fromEntries(cell.headers.map((h) => h.split(/:\s*/)));
  await get(t.port, cell.path);
  await sleep(1000);
  let r;
  for (let i = 0; i < 6; i++) r = await getWith(t.port, cell.path, headers);
  const identity = cell.headers.length === 0;
  const ok = r.status === 200 && (identity ? r.coding === 'identity' && r.len === want : r.coding !== 'identity' && r.len < want);
  check(cell, t.name, identity ? '200 identity, exact length' : '200 compressed', ok, `${r.status} ${r.coding} ${r.len} B (identity ${want} B), X-Cache ${r.xcache || '-'}`);
  if (!ok) return false;
  results.notes.push(`compress ${cell.size}: ${t.name} answers ${r.coding}, ${r.len} B per response (identity ${want} B)`);
  const o0 = await originTotal();
  await runWrk(`http://${HOST}:${t.port}${cell.path}`, opts.warm, undefined, cell.headers);
  const d = (await originTotal()) - o0;
  check(cell, t.name, 'warm-up: origin silent', d === 0, `origin +${d} during ${opts.warm} s of wrk`);
  return true;
}

/**
 * The misses mode's wrk script: every request a URL never requested before. The run's tag (the time, and a random
 * number seeded by it) keeps each wrk run, warm-up and reps, on URLs of its own.
 */
function writeMissScript(dir, size) {
  const file = path.join(dir, `misses-${size}.lua`);
  fs.writeFileSync(file, `-- a URL not requested before, every request (generated by scripts/bench/run.mjs)
math.randomseed(os.time())
local tag, n = os.time() .. "-" .. math.random(1, 1000000000), 0
request = function()
  n = n + 1
  return wrk.format("GET", "/obj/${size}/miss-" .. tag .. "-" .. n)
end
`);
  return file;
}

/** Misses warm-up: a first miss answered 200 with the right length, then a discarded wrk run (to compile the miss path). */
async function warmMisses(cell, t) {
  const want = sizeBytes(cell.size);
  const r = await get(t.port, `/obj/${cell.size}/miss-warm-${Date.now()}`);
  const ok = r.status === 200 && r.len === want;
  check(cell, t.name, 'a miss is answered 200, exact length', ok, `${r.status}, ${r.len} B (want ${want}), X-Cache ${r.xcache || '-'}`);
  if (!ok) return false;
  await runWrk(`http://${HOST}:${t.port}/`, opts.warm, cell.script);
  return true;
}

/**
 * Many-keys warm-up: every URL of the cell's set fetched once (per target and set), then re-read (all of it, or
 * 20,000 URLs spread over it) with the origin silent; then the memory it took, and a discarded wrk run.
 */
async function warmKeys(cell, t) {
  const set = cell.set;
  t.warmedSets ??= new Map();
  let ok = t.warmedSets.get(set.id);
  if (ok === undefined) {
    const n = set.paths.length;
    const s0 = await edgecacheStats(t);
    const rss0 = groupRssKb(t.group.pgid);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    let bad = 0;
    let first = '';
    const t0 = Date.now();
    await forAll(n, 16, async (i) => {
      const p = set.paths[i - 1];
      const r = await get(t.port, p, agent);
      if (r.status !== 200 || r.len !== pathBytes(p)) { bad++; first ||= `${p}: ${r.status} ${r.len} B`; }
    });
    const fillS = (Date.now() - t0) / 1000;
    ok = bad === 0;
    if (!ok) check(cell, t.name, `fill ${n} URLs`, false, `${bad} responses were not 200 with the exact length, e.g. ${first}`);
    const step = Math.max(1, Math.ceil(n / 20000));
    let d = -1;
    for (let pass = 0; ok && pass < 2 && d !== 0; pass++) {
      await sleep(1000 * (pass + 1));
      const o0 = await originTotal();
      await forAll(Math.ceil(n / step), 16, async (j) => { await get(t.port, set.paths[(j - 1) * step], agent); });
      d = (await originTotal()) - o0;
    }
    agent.destroy();
    if (ok) {
      ok = d === 0;
      check(cell, t.name, `${n} URLs fetched (${fillS.toFixed(0)} s), ${Math.ceil(n / step)} re-read from cache`, ok, `origin +${d} on the re-read`);
      if (!ok) results.notes.push(`${set.id}: ${t.name} dropped: the origin saw ${d} requests while the URL set was re-read, so it was not all kept in cache.`);
    }
    const s1 = await edgecacheStats(t);
    const rss1 = groupRssKb(t.group.pgid);
    const mem = { set: set.id, target: t.name, entries: n, body_bytes: set.bytes, rss_growth_per_entry: ((rss1 - rss0) * 1024) / n };
    const m = s1?.tiers?.memory;
    if (m) mem.tier_charge_per_entry = (m.bytes - (s0?.tiers?.memory?.bytes ?? 0) - set.bytes) / n;
    results.keysMemory.push(mem);
    log(`keys ${set.id} ${t.name}: RSS +${((rss1 - rss0) / 1024).toFixed(0)} MB for ${n} entries (${(set.bytes / n).toFixed(0)} B body each)${m ? `; memory tier charged ${mem.tier_charge_per_entry.toFixed(0)} B/entry beyond the body` : ''}`);
    t.warmedSets.set(set.id, ok);
  }
  if (ok) await runWrk(`http://${HOST}:${t.port}/`, opts.warm, cell.script);
  return ok;
}

/** `node`, with --gc traced into the target's log (see gcBetween). */
const nodeCommand = () => (opts.gc ? ['node', '--trace-gc-nvp'] : ['node']);

const fileSize = (file) => { try { return fs.statSync(file).size; } catch { return 0; } };

/**
 * What garbage collection cost in a target between two offsets of its log (--gc: one --trace-gc-nvp line per
 * collection): the main-thread pause and the helper threads' time (every `background.*` phase), bytes promoted.
 */
function gcBetween(file, from, to) {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(Math.max(0, to - from));
  fs.readSync(fd, buf, 0, buf.length, from);
  fs.closeSync(fd);
  const gc = { collections: 0, full: 0, pause_ms: 0, background_ms: 0, promoted_mb: 0 };
  for (const line of buf.toString('latin1').split('\n')) {
    if (!/ gc=\w+/.test(line)) continue;
    gc.collections++;
    if (!/ gc=s /.test(line)) gc.full++;
    for (const [, name, value] of line.matchAll(/ ([\w.]+)=([\d.]+)/g)) {
      if (name === 'pause') gc.pause_ms += Number(value);
      else if (name.startsWith('background.')) gc.background_ms += Number(value);
      else if (name === 'promoted') gc.promoted_mb += Number(value) / 1e6;
    }
  }
  return gc;
}

async function measure(cell, t, rep) {
  freezeOthers(t.name);
  await sleep(300);
  const url = `http://${HOST}:${t.port}${cell.path ?? '/'}`;
  const o0 = await originTotal();
  const s0 = await edgecacheStats(t);
  const k0 = groupTicks(t.group.pgid);
  const g0 = originGroup ? groupTicks(originGroup.pgid) : 0;
  const c0 = cpuSnap();
  const w0 = childTicks();
  let peak = groupRssKb(t.group.pgid);
  const sampler = setInterval(() => { peak = Math.max(peak, groupRssKb(t.group.pgid)); }, 500);
  const gc0 = opts.gc ? fileSize(t.group.log) : 0;
  const { out, cmd } = await runWrk(url, opts.duration, cell.script, cell.headers);
  const gc1 = opts.gc ? fileSize(t.group.log) : 0;
  clearInterval(sampler);
  peak = Math.max(peak, groupRssKb(t.group.pgid));
  const k1 = groupTicks(t.group.pgid);
  const g1 = originGroup ? groupTicks(originGroup.pgid) : 0;
  const c1 = cpuSnap();
  const w1 = childTicks();
  const s1 = await edgecacheStats(t);
  const o1 = await originTotal();
  thawAll();
  const w = parseWrk(out);
  const run = {
    mode: cell.mode, size: cell.size, target: t.name, rep, ...w,
    origin_delta: o1 - o0,
    srv_cpu_s: (k1 - k0) / CLK_TCK,
    srv_us_per_req: (((k1 - k0) / CLK_TCK) * 1e6) / w.requests,
    wrk_cpu_pct: Math.round((100 * (w1 - w0)) / CLK_TCK / opts.duration),
    cpu0_pct: cpuBusyPct(c0, c1, '0'), cpu1_pct: cpuBusyPct(c0, c1, '1'),
    rss_peak_kb: peak, stats_delta: statsDelta(s0, s1), cmd,
  };
  const gc = opts.gc && gc1 > gc0 ? gcBetween(t.group.log, gc0, gc1) : undefined;
  if (gc !== undefined && gc.collections > 0) {
    run.gc = gc;
    run.gc_us_per_req = ((run.gc.pause_ms + run.gc.background_ms) * 1000) / w.requests;
  }
  // CPU time on CPUs 0 and 1 that neither the server nor wrk used: other processes on a shared machine (plus the
  // idle origin, this harness and unattributed kernel work, a few % when the machine is quiet). Misses keep the
  // origin busy: its CPU is then counted apart.
  run.origin_cpu_pct = Math.round((100 * (g1 - g0)) / CLK_TCK / opts.duration);
  const originWork = cell.mode === 'misses' ? run.origin_cpu_pct : 0;
  run.other_cpu_pct = Math.round(run.cpu0_pct + run.cpu1_pct - (100 * run.srv_cpu_s) / opts.duration - run.wrk_cpu_pct - originWork);
  if (!Number.isFinite(w.rps)) run.wrk_output = out.slice(-2000);
  results.runs.push(run);
  const warn = (run.origin_delta && cell.mode !== 'misses') || run.non2xx || run.sockerr ? '  <-- CHECK' : '';
  const noisy = opts.maxOtherCpu > 0 && run.other_cpu_pct > opts.maxOtherCpu ? `  other CPU ${run.other_cpu_pct}%` : '';
  log(`${cell.mode} ${cell.size} ${t.name.padEnd(14)} r${rep} ${Math.round(w.rps).toLocaleString('en-US').padStart(8)} req/s  p50 ${w.p50_ms.toFixed(2)} ms  p99 ${w.p99_ms.toFixed(2)} ms  ${run.srv_us_per_req.toFixed(1)} µs/req  rss ${(peak / 1024).toFixed(0)} MB  wrk ${run.wrk_cpu_pct}%  origin +${run.origin_delta}  non2xx ${w.non2xx} sockerr ${w.sockerr}${warn}${noisy}`);
  if (run.gc) log(`  GC: ${run.gc.collections} collections (${run.gc.full} full), pause ${run.gc.pause_ms.toFixed(0)} ms, helper threads ${run.gc.background_ms.toFixed(0)} ms, ${run.gc_us_per_req.toFixed(2)} µs/req, promoted ${run.gc.promoted_mb.toFixed(1)} MB`);
  if (!Number.isFinite(w.rps)) log(`wrk output:\n${out}`);
  return run;
}

/** measure(), repeated (after a pause) while other processes took more than --max-other-cpu %; the quietest run counts. */
async function measureQuiet(cell, t, rep) {
  const tries = [];
  for (let attempt = 0; attempt <= opts.retries; attempt++) {
    if (attempt > 0) { log(`  noisy (other processes used ${tries[attempt - 1].other_cpu_pct}% CPU): retrying in 5 s`); await sleep(5000); }
    const run = await measure(cell, t, rep);
    tries.push(run);
    if (!(opts.maxOtherCpu > 0 && run.other_cpu_pct > opts.maxOtherCpu)) break;
  }
  const best = tries.reduce((a, b) => (b.other_cpu_pct < a.other_cpu_pct ? b : a));
  for (const r of tries) if (r !== best) r.discarded = true;
}

// ------------------------------------------------------------------ coalescing
async function coalesce(names) {
  // One untimed burst per target first: the first burst after start-up also pays for compiling the miss path.
  for (const name of names) {
    freezeOthers(name);
    await sleep(300);
    const size = list(opts.coalesceSizes)[0];
    const r = await coalesceBurst({ port: targets.get(name).port, path: `/obj/${size}/coalwarm-${name}-${Date.now()}?delay=${opts.coalesceDelay}`, n: opts.coalesceN, originPort: ORIGIN_PORT });
    thawAll();
    log(`coalesce warm-up burst (not counted) ${name}: origin fetches ${r.origin_fetches}, p99 ${r.lat_ms.p99} ms`);
    await sleep(500);
  }
  for (let trial = 1; trial <= opts.coalesceTrials; trial++) {
    for (const size of list(opts.coalesceSizes)) {
      for (const name of names) {
        const t = targets.get(name);
        freezeOthers(name);
        await sleep(300);
        const p = `/obj/${size}/coal-${name}-${Date.now()}-${trial}?delay=${opts.coalesceDelay}`;
        const s0 = await edgecacheStats(t);
        const r = await coalesceBurst({ port: t.port, path: p, n: opts.coalesceN, originPort: ORIGIN_PORT });
        const s1 = await edgecacheStats(t);
        thawAll();
        const row = { target: name, size, trial, delay_ms: opts.coalesceDelay, ...r, stats_delta: statsDelta(s0, s1) };
        results.coalesce.push(row);
        log(`coalesce ${size} ${name.padEnd(10)} t${trial}: origin fetches ${r.origin_fetches}, statuses ${JSON.stringify(r.statuses)}, p50 ${r.lat_ms.p50} p99 ${r.lat_ms.p99} max ${r.lat_ms.max} ms (connect phase ${r.connect_ms} ms, not timed)`);
        await sleep(500);
      }
    }
  }
}

// ------------------------------------------------------------------ main
async function main() {
  let parsed;
  try { parsed = parseArgs(process.argv.slice(2)); } catch (e) { console.error(`bench: ${e.message}`); process.exit(2); }
  if (parsed.help) { process.stdout.write(HELP); return; }
  opts = parsed;
  const modes = list(opts.modes);
  for (const m of modes) if (!['memory', 'disk', 'keys', 'compress', 'misses', 'coalesce'].includes(m)) throw new Error(`unknown mode ${m} (memory, disk, keys, compress, misses, coalesce)`);
  const keySets = [];
  if (modes.includes('keys')) {
    for (const d of list(opts.keysDists)) parseDist(d);
    for (const n of list(opts.keys).map(Number)) {
      if (!(Number.isInteger(n) && n > 0 && n <= 10_000_000)) throw new Error(`bad --keys ${n} (1..10000000)`);
      for (const spec of list(opts.keysSizes)) keySets.push({ id: `${n}×${spec}`, n, spec, ...urlSet(n, spec) });
    }
  }
  for (const s of [...list(opts.sizes), ...list(opts.diskSizes), ...list(opts.compressSizes), ...list(opts.missSizes), ...list(opts.coalesceSizes)]) sizeBytes(s);
  if (opts.compare && !fs.existsSync(opts.compare)) throw new Error(`--compare ${opts.compare}: no such file`);
  if (!fs.existsSync(path.join(ROOT, 'dist/proxy/cli.js'))) throw new Error('dist/proxy/cli.js not found: run `npm run build` first');
  if (!which('taskset')) throw new Error('taskset not found (Debian: apt-get install -y util-linux)');
  const ncpu = os.availableParallelism();
  CLIENT_CPU = ncpu >= 2 ? '1' : '0';
  if (ncpu < 2) log('WARN only 1 CPU: server and load generator share it; numbers are not comparable with 2-CPU runs');
  let hitModes = modes.filter((m) => m !== 'coalesce');
  if (hitModes.length && !which('wrk')) {
    log(`SKIP ${hitModes.join(', ')}: wrk not installed (Debian: apt-get install -y wrk); the autocannon fallback is not implemented`);
    results.notes.push(`${hitModes.join(', ')} skipped: wrk not installed`);
    hitModes = [];
  }
  const peers = [];
  for (const p of list(opts.peers === 'all' ? 'nginx,varnish' : opts.peers)) {
    const bin = { nginx: 'nginx', varnish: 'varnishd' }[p];
    if (!bin) log(`SKIP ${p}: unknown peer (supported: nginx, varnish)`);
    else if (!which(bin)) { log(`SKIP ${p}: ${bin} not installed (Debian: apt-get install -y ${p})`); results.notes.push(`${p} skipped: not installed`); }
    else peers.push(p);
  }
  spawnSync('taskset', ['-a', '-cp', CLIENT_CPU, String(process.pid)]); // the harness runs beside wrk and the origin
  TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-bench-'));
  fs.chmodSync(TMP, 0o755); // nginx workers and varnishd drop privileges

  const started = new Date();
  const outFile = path.resolve(opts.out || path.join(ROOT, 'bench-results', `${started.toISOString().replace(/:/g, '-').slice(0, 19)}.json`));
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim();
  results.meta = {
    date: started.toISOString(),
    command: `npm run bench --${process.argv.slice(2).map((a) => (/\s/.test(a) ? ` "${a}"` : ` ${a}`)).join('')}`,
    host: `${os.type()} ${os.release()} ${os.arch()}, ${ncpu} CPUs, ${os.cpus()[0]?.model?.trim() ?? ''}`,
    node: process.version, commit: rev || 'unknown',
    dist_built: fs.statSync(path.join(ROOT, 'dist/proxy/cli.js')).mtime.toISOString(),
    wrk: which('wrk') ? firstLine('wrk', ['--version']).replace(/ Copyright.*/, '') : undefined,
    nginx: peers.includes('nginx') ? firstLine(which('nginx'), ['-v']) : undefined,
    varnish: peers.includes('varnish') ? firstLine(which('varnishd'), ['-V']).replace(/ revision.*/, ')') : undefined,
    loadavg_at_start: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    busy_at_start: spawnSync('ps', ['-e', '-o', 'pcpu=,comm=', '--sort=-pcpu'], { encoding: 'utf8' }).stdout.split('\n').slice(0, 5).map((l) => l.trim()).filter(Boolean),
    pinning: `servers on CPU 0 (edgecache: ${opts.edgecacheCpus}), wrk + origin + harness on CPU ${CLIENT_CPU}`,
  };
  results.settings = { ...opts, modes, peers };
  log(`temp dir ${TMP}; results -> ${outFile}`);

  // processes
  ORIGIN_PORT = await freePort();
  const og = launch('origin', CLIENT_CPU, ['node', path.join(HERE, 'origin.mjs'), String(ORIGIN_PORT)]);
  originGroup = og;
  await waitReady(og, ORIGIN_PORT);
  if (hitModes.includes('memory') || hitModes.includes('disk')) {
    const port = await freePort();
    const g = launch('node-http', '0', [...nodeCommand(), path.join(HERE, 'targets/node-http.mjs'), String(port)]);
    await waitReady(g, port, '/obj/1k/x');
    targets.set('node-http', { name: 'node-http', port, group: g, cpus: '0' });
  }
  if (hitModes.includes('keys') || hitModes.includes('disk')) {
    const port = await freePort();
    const g = launch('node-map', '0', [...nodeCommand(), path.join(HERE, 'targets/node-map.mjs'), String(port)]);
    await waitReady(g, port);
    targets.set('node-map', { name: 'node-map', port, group: g, cpus: '0' });
  }
  const extra = words(opts.edgecacheFlags);
  let keysFlags = [];
  if (keySets.length) {
    // Room for every set (bodies, header text, the per-entry charge) with a margin; --edgecache-flags still win.
    const bytes = keySets.reduce((a, k) => a + k.bytes, 0);
    const entries = keySets.reduce((a, k) => a + k.n, 0);
    keysFlags = ['--memory-max', `${Math.ceil(((bytes + entries * 2048) * 1.25) / 1048576) + 64}mib`];
    peerSizing.keysZoneMb = Math.max(32, Math.ceil(entries / 4000) + 8);
    peerSizing.diskMb = Math.max(2048, Math.ceil((2 * bytes) / 1048576));
    peerSizing.mallocMb = Math.max(512, Math.ceil((bytes * 1.5 + entries * 1024) / 1048576));
  }
  await startEdgecache('edgecache', ORIGIN_PORT, [...keysFlags, ...extra]);
  const variantNames = [];
  for (const spec of String(opts.variants).split(';').map((v) => v.trim()).filter(Boolean)) {
    const eq = spec.indexOf('=');
    const name = `edgecache-${eq < 0 ? spec : spec.slice(0, eq).trim()}`;
    if (!/^edgecache-[a-z0-9-]+$/i.test(name) || targets.has(name)) throw new Error(`bad --variants entry "${spec}" (NAME=FLAGS; NAME: letters, digits, dashes; each once)`);
    await startEdgecache(name, ORIGIN_PORT, [...keysFlags, ...extra, ...words(eq < 0 ? '' : spec.slice(eq + 1))]);
    variantNames.push(name);
  }
  if (opts.baseline) {
    const root = path.resolve(String(opts.baseline));
    if (!fs.existsSync(path.join(root, 'dist/proxy/cli.js'))) throw new Error(`--baseline ${root}: no dist/proxy/cli.js there (build it first)`);
    await startEdgecache('edgecache-baseline', ORIGIN_PORT, [...keysFlags, ...extra], root);
    variantNames.push('edgecache-baseline');
  }
  if (hitModes.includes('disk')) await startEdgecache('edgecache-disk', ORIGIN_PORT, ['--memory-max', '1mb', '--max-object-size', '1mb', ...extra, ...words(opts.diskFlags)]);
  for (const p of peers) {
    try { await startPeer(p, ORIGIN_PORT, '0'); } catch (e) { log(`SKIP ${p}: ${e.message}`); results.notes.push(`${p} skipped: failed to start`); }
  }
  const peerNames = peers.filter((p) => targets.has(p));
  for (const t of targets.values()) log(`${t.name} on :${t.port} (CPUs ${t.cpus}, pgid ${t.group.pgid})${t.argv ? `: node ${t.argv.join(' ')}` : ''}`);

  // hit-path matrix: for rep: for (mode, size): for target
  const cells = [];
  if (hitModes.includes('memory')) {
    for (const size of list(opts.sizes)) cells.push({ mode: 'memory', size, path: `/obj/${size}/bench-1`, targets: ['node-http', 'edgecache', ...variantNames, ...peerNames] });
  }
  if (hitModes.includes('disk')) {
    for (const size of list(opts.diskSizes)) {
      const script = path.join(TMP, `rotate-${size}.lua`);
      fs.writeFileSync(script, `-- rotate over ${opts.diskUrls} distinct URLs (generated by scripts/bench/run.mjs)\nlocal n, i = ${opts.diskUrls}, 0\nrequest = function()\n  i = i + 1\n  if i > n then i = 1 end\n  return wrk.format("GET", "/obj/${size}/ws-" .. i)\nend\n`);
      // node-http answers every URL with one Buffer (its bytes stay in the CPU's cache); node-map keeps one per URL,
      // as a cache does: the fairer ceiling for a working set.
      cells.push({ mode: 'disk', size, script, targets: ['node-http', 'node-map', 'edgecache', 'edgecache-disk', ...peerNames] });
    }
  }
  if (hitModes.includes('compress')) {
    for (const size of list(opts.compressSizes)) {
      const p = `/obj/${size}/compress-1?type=json`;
      for (const [label, headers] of [['br, gzip', ['Accept-Encoding: br, gzip']], ['identity', []]]) {
        cells.push({ mode: 'compress', size: `${size} ${label}`, baseSize: size, path: p, headers, targets: ['edgecache', ...peerNames] });
      }
    }
  }
  if (hitModes.includes('misses')) {
    for (const size of list(opts.missSizes)) {
      cells.push({ mode: 'misses', size, script: writeMissScript(TMP, size), targets: ['edgecache', ...variantNames, ...peerNames] });
    }
  }
  for (const set of keySets) {
    for (const dist of list(opts.keysDists)) {
      const name = `keys-${set.n}-${set.spec}-${dist}`.replace(/[^0-9a-z.-]/gi, '');
      const script = writeWrkScript(TMP, name, set.paths, requestSequence(set.n, parseDist(dist)));
      cells.push({ mode: 'keys', size: `${set.id} ${dist}`, set, script, targets: ['node-map', 'edgecache', ...variantNames, ...peerNames] });
    }
  }
  for (const cell of cells) {
    const ok = [];
    for (const name of cell.targets) {
      const t = targets.get(name);
      freezeOthers(name);
      const good =
        cell.mode === 'memory' ? await warmMemory(cell, t)
        : cell.mode === 'keys' ? await warmKeys(cell, t)
        : cell.mode === 'compress' ? await warmCompress(cell, t)
        : cell.mode === 'misses' ? await warmMisses(cell, t)
        : await warmDisk(cell, t);
      thawAll();
      if (good) ok.push(name);
    }
    cell.targets = ok;
  }
  for (let rep = 1; rep <= opts.reps; rep++) {
    for (const cell of cells) for (const name of cell.targets) await measureQuiet(cell, targets.get(name), rep);
  }
  for (const cell of cells) {
    for (const name of cell.targets.filter((n) => n.startsWith('edgecache'))) {
      const rs = results.runs.filter((r) => !r.discarded && r.mode === cell.mode && r.size === cell.size && r.target === name && r.stats_delta);
      if (rs.length === 0) continue;
      const sum = (f) => rs.reduce((a, r) => a + (f(r) ?? 0), 0);
      const req = sum((r) => r.requests);
      if (cell.mode === 'misses') {
        // wrk stops with requests in flight: their origin fetches are counted, their responses are not.
        const fetched = sum((r) => r.origin_delta);
        check(cell, name, 'measured runs: every response a miss fetched from the origin', fetched >= req && sum((r) => r.stats_delta.hits) === 0,
          `${fetched} origin fetches for ${req} responses wrk completed; hits +${sum((r) => r.stats_delta.hits)}; stored +${sum((r) => r.stats_delta.stored)}`);
        continue;
      }
      const hits = sum((r) => r.stats_delta.hits);
      const origin = sum((r) => r.origin_delta);
      const ev = sum((r) => r.stats_delta['memory.evictions']);
      check(cell, name, 'measured runs: every response a hit (/stats), origin silent', origin === 0 && hits >= req,
        `${hits} hits for ${req} responses wrk completed; misses +${sum((r) => r.stats_delta.misses)}; origin +${origin}; memory-tier evictions +${ev}`);
    }
  }
  for (const t of targets.values()) {
    const s = await edgecacheStats(t);
    if (!s) continue;
    const tiers = Object.entries(s.tiers ?? {}).map(([k, v]) => `${k}: ${v.entries} entries, ${(v.bytes / 1048576).toFixed(1)} MiB, ${v.evictions} evictions${v.rejections !== undefined ? `, ${v.rejections} rejections` : ''}`).join('; ');
    results.notes.push(`${t.name} /stats after the hit-path runs: hits ${s.hits}, misses ${s.misses}, originFetches ${s.originFetches}, originErrors ${s.originErrors}, stored ${s.stored}; ${tiers}`);
  }

  if (modes.includes('coalesce')) await coalesce(['edgecache', ...peerNames]);

  results.meta.loadavg_at_end = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  for (const g of groups) if (g.exited !== null) results.notes.push(`${g.name} exited during the run (${g.exited}); log tail: ${tail(g.log, 3)}`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, `${JSON.stringify(results, null, 1)}\n`);
  let md = renderReport(results);
  if (opts.compare) md += `\n\n${renderCompare(results, JSON.parse(fs.readFileSync(opts.compare, 'utf8')))}`;
  fs.writeFileSync(outFile.replace(/\.json$/, '') + '.md', `${md}\n`);
  console.log(`\n${md}\n`);
  log(`results: ${outFile} (+ .md)`);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { console.error(`\n${sig}: stopping everything this run started`); cleanupSync(); process.exit(130); });
}
process.on('exit', cleanupSync);
main().then(
  () => { cleanupSync(); },
  (err) => { console.error(`bench: ${err.message}`); cleanupSync(); process.exitCode = 1; },
);
