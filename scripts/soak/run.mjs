#!/usr/bin/env node
// npm run soak -- --minutes N: edgecache (the real CLI, with workers) in front of a soak origin on loopback, under
// mixed traffic for N minutes, checking every answer; purges through the admin API, one worker killed midway,
// anonymous RSS of every process sampled. Prints a summary; exits 1 on any wrong answer, hang or crash, or when
// RSS did not level off. See docs/reliability.md.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { childrenOf, levelling, rssAnon } from './memory.mjs';
import { startOrigin } from './origin.mjs';
import { EXPECTED, HOT_GROUPS, HOT_PER_GROUP, hotPath, prng, Traffic } from './traffic.mjs';

const HELP = `npm run soak -- [options]

Runs edgecache (dist/proxy/cli.js, build it first) in front of a soak origin on 127.0.0.1 and sends it mixed
traffic: hits on a hot set, misses, revalidations, Vary, HEAD, conditional requests, 404s, 500s, origin resets
and stalls, a few large bodies; purges by URL, prefix and tag, soft and hard, through the admin API; one worker
killed with SIGKILL midway. Every answer is checked against the URL and version the origin serves; every
request has a deadline. RssAnon of every process is sampled. Exits 0 when nothing was wrong, nothing hung or
crashed and RSS levelled off; 1 otherwise; 2 on bad options.

  --minutes N             how long the traffic runs (default 2; fractions allowed)
  --concurrency N         clients sending requests at once (default 8)
  --workers N             edgecache worker processes (default 2)
  --memory-max SIZE       edgecache --memory-max (default 32mb: small enough to fill during a run)
  --disk-max SIZE         edgecache --disk-max (default 256mb)
  --headers-timeout MS    edgecache --origin-headers-timeout in ms; stalls last twice this plus 1 s (default 2000)
  --deadline MS           longest any request may take before it counts as a hang (default 15000)
  --sample SECONDS        RSS sampling period (default 5)
  --purge-every MS        one purge per this many ms (default 2000)
  --no-kill               do not kill a worker midway
  --seed N                seed of the request mix (default: random, printed)
  --json FILE             also write the full results (samples, errors, /stats) as JSON
  --keep                  keep the temporary directory (data dir and edgecache's log)
  --help                  this text
`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(root, 'dist/proxy/cli.js');

function fail(message) {
  process.stderr.write(`soak: ${message}\n`);
  process.exit(2);
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        minutes: { type: 'string', default: '2' },
        concurrency: { type: 'string', default: '8' },
        workers: { type: 'string', default: '2' },
        'memory-max': { type: 'string', default: '32mb' },
        'disk-max': { type: 'string', default: '256mb' },
        'headers-timeout': { type: 'string', default: '2000' },
        deadline: { type: 'string', default: '15000' },
        sample: { type: 'string', default: '5' },
        'purge-every': { type: 'string', default: '2000' },
        'no-kill': { type: 'boolean', default: false },
        seed: { type: 'string' },
        json: { type: 'string' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    fail(`${err.message} (see --help)`);
  }
  if (parsed.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const number = (name, { min = 0, integer = true } = {}) => {
    const value = Number(parsed[name]);
    if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) fail(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${parsed[name]}`);
    return value;
  };
  return {
    minutes: number('minutes', { min: 0.1, integer: false }),
    concurrency: number('concurrency', { min: 1 }),
    workers: number('workers', { min: 1 }),
    memoryMax: parsed['memory-max'],
    diskMax: parsed['disk-max'],
    headersTimeoutMs: number('headers-timeout', { min: 100 }),
    deadlineMs: number('deadline', { min: 1000 }),
    sampleMs: number('sample', { min: 1, integer: false }) * 1000,
    purgeEveryMs: number('purge-every', { min: 100 }),
    kill: !parsed['no-kill'],
    seed: parsed.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : number('seed'),
    json: parsed.json,
    keep: parsed.keep,
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const clock = () => `${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s`;
const say = (line) => process.stdout.write(`[soak ${clock()}] ${line}\n`);
const mb = (bytes) => (bytes === undefined ? '-' : (bytes / 1048576).toFixed(0));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function fetchJson(url, init = {}, timeoutMs = 5000) {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

function portOpen(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

function percentile(values, p) {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function table(rows, header) {
  const widths = header.map((h, i) => Math.max(String(h).length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

async function main() {
  const opts = options();
  if (!existsSync(CLI)) fail(`${path.relative(process.cwd(), CLI)} is missing: run npm run build first`);
  const durationMs = Math.round(opts.minutes * 60_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-soak-'));
  const logFile = path.join(dir, 'edgecache.log');
  const logStream = createWriteStream(logFile);
  const random = prng(opts.seed);
  // undici checks its headers timeout on a coarse timer (a tick every 499 ms, lib/util/timers.js): it may fire up
  // to about a second late, more on a loaded machine. A stall only a second longer than the timeout then raced it.
  const origin = await startOrigin({ stallMs: 2 * opts.headersTimeoutMs + 1000 });
  const [port, adminPort] = [await freePort(), await freePort()];
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const args = [
    CLI,
    '--origin', origin.url,
    '--host', '127.0.0.1', '--port', String(port),
    '--admin-port', String(adminPort),
    '--workers', String(opts.workers),
    '--data-dir', path.join(dir, 'data'),
    '--memory-max', opts.memoryMax,
    '--disk-max', opts.diskMax,
    '--origin-headers-timeout', `${opts.headersTimeoutMs}ms`,
    '--log-level', 'warn',
  ];
  say(`seed ${opts.seed}; ${opts.minutes} min, ${opts.concurrency} clients, edgecache ${args.slice(1).join(' ')}`);
  say(`temporary directory ${dir}`);

  const logCounts = new Map();
  let workerDeaths = 0;
  let exitInfo;
  const edgecache = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onOutput = (chunk) => {
    logStream.write(chunk);
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      let level = 'text';
      let msg = line.slice(0, 120);
      try {
        const entry = JSON.parse(line);
        level = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }[entry.level] ?? String(entry.level);
        msg = entry.msg;
      } catch {
        // Not pino's JSON (a crash's stack trace, say): counted as text.
      }
      if (msg === 'worker died; starting another') workerDeaths++;
      const key = `${level}: ${msg}`;
      logCounts.set(key, (logCounts.get(key) ?? 0) + 1);
    }
  };
  edgecache.stdout.on('data', onOutput);
  edgecache.stderr.on('data', onOutput);
  const exited = new Promise((resolve) => edgecache.on('exit', (code, signal) => resolve((exitInfo = { code, signal, at: Date.now() }))));

  // Ready: the admin API says ok and the proxy port accepts (item 10 of issue 11: the first can come first).
  const readyBy = Date.now() + 30_000;
  let healthyAt;
  let acceptingAt;
  while (Date.now() < readyBy && (healthyAt === undefined || acceptingAt === undefined) && exitInfo === undefined) {
    if (healthyAt === undefined) healthyAt = await fetchJson(`${adminUrl}/healthz`, {}, 1000).then((r) => (r.status === 200 ? Date.now() : undefined), () => undefined);
    if (acceptingAt === undefined && (await portOpen(port))) acceptingAt = Date.now();
    await sleep(20);
  }
  if (healthyAt === undefined || acceptingAt === undefined) {
    say(`edgecache did not start (see ${logFile})`);
    edgecache.kill('SIGKILL');
    process.exit(1);
  }
  say(`edgecache ready: /healthz ok ${healthyAt <= acceptingAt ? `${acceptingAt - healthyAt} ms before` : `${healthyAt - acceptingAt} ms after`} the proxy port accepted`);

  const traffic = new Traffic({ port, origin, concurrency: opts.concurrency, deadlineMs: opts.deadlineMs, random, log: say });

  // RSS sampling: the primary, and the workers as /stats (or the process tree) names them.
  const samples = [];
  const roles = new Map([[edgecache.pid, 'primary']]);
  let workerCount = 0;
  const sample = async () => {
    const stats = await fetchJson(`${adminUrl}/stats`, {}, 3000).catch(() => undefined);
    const listed = Array.isArray(stats?.json?.processes) ? stats.json.processes : [];
    const pids = [edgecache.pid, ...(listed.length > 0 ? listed.map((p) => p.pid) : childrenOf(edgecache.pid))];
    const row = { t: Date.now(), elapsed: Date.now() - started, processes: {} };
    for (const pid of pids) {
      if (!roles.has(pid)) roles.set(pid, `worker${++workerCount}`);
      const heap = pid === edgecache.pid ? stats?.json?.memory : listed.find((p) => p.pid === pid)?.memory;
      const anon = rssAnon(pid);
      if (anon !== undefined) row.processes[pid] = { role: roles.get(pid), rssAnon: anon, heapUsed: heap?.heapUsed, heapTotal: heap?.heapTotal, external: heap?.external };
    }
    samples.push(row);
  };
  await sample();
  const sampler = setInterval(() => void sample(), opts.sampleMs);

  // Purges: bump the origin's version of what is purged, purge, and from the answer on nothing older may be served.
  let purging = true;
  // events: when each purge was sent and answered, how long it took and what it affected (to line up with the RSS curve).
  const purgeStats = { sent: 0, failed: 0, byKind: {}, events: [] };
  const purger = (async () => {
    while (purging) {
      await sleep(opts.purgeEveryMs);
      if (!purging) break;
      const soft = random() < 0.4;
      const group = Math.floor(random() * HOT_GROUPS);
      const member = Math.floor(random() * HOT_PER_GROUP);
      const groupPaths = Array.from({ length: HOT_PER_GROUP }, (_, n) => hotPath(group, n));
      const which = random();
      let selection;
      let paths;
      let kind;
      if (which < 0.4) [kind, selection, paths] = ['url', { urls: [hotPath(group, member)] }, [hotPath(group, member)]];
      else if (which < 0.65) [kind, selection, paths] = ['prefix', { prefixes: [`/hot/g${group}/`] }, groupPaths];
      else if (which < 0.95) [kind, selection, paths] = ['tag', { tags: [`g${group}`] }, groupPaths];
      else [kind, selection, paths] = ['tag-miss', { tags: ['miss'] }, []];
      kind = `${kind}-${soft ? 'soft' : 'hard'}`;
      origin.bump(paths);
      const sentAt = Date.now();
      const answer = await fetchJson(`${adminUrl}/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...selection, soft }) }, 30_000).catch((err) => ({ status: 0, text: String(err) }));
      const at = Date.now();
      purgeStats.sent++;
      purgeStats.byKind[kind] = (purgeStats.byKind[kind] ?? 0) + 1;
      purgeStats.events.push({ elapsed: sentAt - started, kind, ms: at - sentAt, status: answer.status, purged: answer.json?.purged });
      if (answer.status !== 200) {
        purgeStats.failed++;
        traffic.error('purge-failed', { kind: 'purge', method: 'POST', path: '/purge', status: answer.status, detail: `${JSON.stringify(selection)}: ${answer.text.slice(0, 80)}`, at });
        continue;
      }
      for (const p of paths) {
        const floor = { version: origin.versionOf(p), at, soft };
        const previous = traffic.floors.get(p);
        if (previous === undefined || previous.version <= floor.version) traffic.floors.set(p, floor);
      }
    }
  })();

  // One worker killed midway.
  let killed;
  const killer = opts.kill
    ? setTimeout(async () => {
        const stats = await fetchJson(`${adminUrl}/stats`, {}, 3000).catch(() => undefined);
        const pid = stats?.json?.processes?.[0]?.pid ?? childrenOf(edgecache.pid)[0];
        if (pid === undefined) return traffic.error('kill-failed', { kind: 'kill', method: '-', path: '-', detail: 'no worker pid found', at: Date.now() });
        const at = Date.now();
        process.kill(pid, 'SIGKILL');
        killed = { pid, at };
        traffic.killWindows.push([at, at + 3000]);
        say(`killed worker ${pid} (SIGKILL)`);
        // Back to full strength?
        for (let i = 0; i < 100; i++) {
          await sleep(100);
          const after = await fetchJson(`${adminUrl}/stats`, {}, 3000).catch(() => undefined);
          if (after?.json?.workers === opts.workers && !after.json.processes.some((p) => p.pid === pid)) {
            killed.replacedAfterMs = Date.now() - at;
            say(`a new worker serves after ${killed.replacedAfterMs} ms`);
            break;
          }
        }
      }, durationMs / 2)
    : undefined;

  const progress = setInterval(() => {
    const last = samples[samples.length - 1];
    const rss = last ? Object.values(last.processes).map((p) => `${p.role} ${mb(p.rssAnon)}`).join(', ') : '';
    const errors = [...traffic.errors].filter(([k]) => !EXPECTED.has(k)).reduce((n, [, e]) => n + e.count, 0);
    say(`${traffic.total} requests, ${errors} errors, ${purgeStats.sent} purges; RssAnon MB: ${rss}`);
  }, 30_000);

  const running = traffic.run();
  await Promise.race([sleep(durationMs), exited]);
  traffic.stopping = true;
  purging = false;
  clearTimeout(killer);
  clearInterval(progress);
  await Promise.all([running, purger]);
  clearInterval(sampler);
  await sample();

  // Still answering after all that?
  const after = {};
  if (exitInfo === undefined) {
    after.healthz = (await fetchJson(`${adminUrl}/healthz`).catch(() => ({ status: 0 }))).status;
    const check = await traffic.send({ method: 'GET', path: hotPath(0, 0) });
    after.get = check.hung ? 'hung' : (check.status ?? check.error);
    after.stats = (await fetchJson(`${adminUrl}/stats`).catch(() => undefined))?.json;
    if (after.healthz !== 200) traffic.error('not-healthy-after', { kind: 'final', method: 'GET', path: '/healthz', status: after.healthz, at: Date.now() });
    if (after.get !== 200) traffic.error('not-answering-after', { kind: 'final', method: 'GET', path: hotPath(0, 0), status: after.get, at: Date.now() });
    edgecache.kill('SIGTERM');
    const stoppedIn = await Promise.race([exited.then(() => 'exited'), sleep(15_000).then(() => 'timeout')]);
    if (stoppedIn === 'timeout') {
      traffic.error('shutdown-hang', { kind: 'final', method: 'SIGTERM', path: '-', detail: 'not exited 15 s after SIGTERM', at: Date.now() });
      edgecache.kill('SIGKILL');
      await exited;
    } else if (exitInfo.code !== 0) {
      traffic.error('shutdown-failed', { kind: 'final', method: 'SIGTERM', path: '-', detail: `exit code ${exitInfo.code}`, at: Date.now() });
    }
  } else {
    traffic.error('edgecache-exited', { kind: 'final', method: '-', path: '-', detail: `code ${exitInfo.code} signal ${exitInfo.signal}`, at: exitInfo.at });
  }
  const unexpectedDeaths = workerDeaths - (killed ? 1 : 0);
  if (unexpectedDeaths > 0) traffic.error('worker-crash', { kind: 'process', method: '-', path: '-', detail: `${unexpectedDeaths} worker death(s) besides the one killed on purpose`, at: Date.now() });
  traffic.close();
  await origin.close();
  logStream.end();

  // The summary.
  const out = [];
  out.push('', `edgecache soak: ${opts.minutes} min, ${opts.workers} workers, ${opts.concurrency} clients, --memory-max ${opts.memoryMax}, --disk-max ${opts.diskMax}, seed ${opts.seed}`);
  const kinds = [...traffic.byKind].sort((a, b) => b[1].requests - a[1].requests);
  const outcomes = ['HIT', 'MISS', 'STALE', 'REVALIDATED', 'BYPASS', 'none'];
  out.push('', 'Requests by kind and outcome (X-Cache; none: no answer or no X-Cache):');
  out.push(
    table(
      kinds.map(([kind, s]) => [kind, s.requests, s.ok, s.errors, ...outcomes.map((o) => s.xcache[o] ?? 0), percentile(s.ms, 50), percentile(s.ms, 99)]),
      ['kind', 'requests', 'ok', 'errors', ...outcomes, 'p50 ms', 'p99 ms'],
    ),
  );
  const totalRequests = kinds.reduce((n, [, s]) => n + s.requests, 0);
  out.push(`total ${totalRequests} requests in ${(durationMs / 1000).toFixed(0)} s; purges ${purgeStats.sent} (${Object.entries(purgeStats.byKind).map(([k, n]) => `${k} ${n}`).join(', ')}), ${purgeStats.failed} failed`);
  const largest = [...purgeStats.events].sort((a, b) => (b.purged ?? 0) - (a.purged ?? 0)).slice(0, 5);
  out.push(`largest purges: ${largest.map((e) => `${e.kind} of ${e.purged ?? '?'} at ${(e.elapsed / 1000).toFixed(0)} s (${e.ms} ms)`).join('; ')}`);
  out.push('', 'Errors by kind:');
  const errorRows = [...traffic.errors].sort((a, b) => b[1].count - a[1].count);
  if (errorRows.length === 0) out.push('  none');
  else out.push(table(errorRows.map(([kind, e]) => [kind + (EXPECTED.has(kind) ? ' (expected)' : ''), e.count, `${e.examples[0].method} ${e.examples[0].path} → ${e.examples[0].status ?? '-'} ${e.examples[0].detail ?? ''}`.slice(0, 110)]), ['error', 'count', 'first example']));
  if (killed) out.push(`worker ${killed.pid} killed at ${((killed.at - started) / 1000).toFixed(0)} s; replaced after ${killed.replacedAfterMs ?? '?'} ms`);

  // RSS curve: one column per process, about 15 rows.
  const pids = [...roles.keys()].filter((pid) => samples.some((s) => s.processes[pid]));
  const step = Math.max(1, Math.ceil(samples.length / 15));
  const rows = samples.filter((_, i) => i % step === 0 || i === samples.length - 1).map((s) => [`${(s.elapsed / 1000).toFixed(0)}`, ...pids.map((pid) => (s.processes[pid] ? `${mb(s.processes[pid].rssAnon)} (${mb(s.processes[pid].heapUsed)}/${mb(s.processes[pid].heapTotal)}/${mb(s.processes[pid].external)})` : '-'))]);
  out.push('', `RssAnon MB per process (JS heap used/reserved, external memory MB), sampled every ${opts.sampleMs / 1000} s:`);
  out.push(table(rows, ['t s', ...pids.map((pid) => `${roles.get(pid)} ${pid}`)]));
  const levels = pids.map((pid) => {
    const series = samples.filter((s) => s.processes[pid]).map((s) => [s.t, s.processes[pid].rssAnon]);
    const lifetime = series.length > 0 ? series[series.length - 1][0] - series[0][0] : 0;
    return { pid, role: roles.get(pid), fullRun: lifetime >= 0.9 * durationMs, ...levelling(series) };
  });
  out.push('', 'Levelled off (mean RssAnon per third of the run: a, b, c; levelled when c - b <= max(25 % of b - a, 5 % of b, 10 MB), or when the last third is flat in itself: its second half within max(5 %, 10 MB) of its first):');
  for (const l of levels) {
    if (l.firstThird === undefined) out.push(`  ${l.role} ${l.pid}: ${l.verdict}`);
    else out.push(`  ${l.role} ${l.pid}: a ${mb(l.firstThird)} MB, b ${mb(l.middleThird)} MB, c ${mb(l.lastThird)} MB → ${l.levelled ? (l.flatAtEnd && !(l.growthLate <= l.allowed) ? 'levelled off (a step, then flat)' : 'levelled off') : 'STILL GROWING'}${l.fullRun ? '' : ' (not alive for the whole run: not judged)'}`);
  }
  const judged = levels.filter((l) => l.fullRun);
  const levelled = judged.every((l) => l.levelled);
  out.push(`RSS levelled off: ${levelled ? 'yes' : 'no'}`);
  if (logCounts.size > 0) {
    out.push('', "edgecache's log (warn and above), by message:");
    for (const [line, count] of [...logCounts].filter(([k]) => !k.startsWith('info') && !k.startsWith('debug')).sort((a, b) => b[1] - a[1]).slice(0, 12)) out.push(`  ${String(count).padStart(6)}  ${line}`);
  }
  const s = after.stats;
  if (s) {
    out.push('', `/stats at the end: originFetches ${s.originFetches}, stored ${s.stored}, notStored ${s.notStored}, coalesced ${s.coalesced}, originErrors ${s.originErrors}, purges ${s.purges}, memory tier ${s.tiers?.memory?.entries} entries ${mb(s.tiers?.memory?.bytes)} MB, disk ${s.tiers?.disk?.entries} entries ${mb(s.tiers?.disk?.bytes)} MB (file ${mb(s.tiers?.disk?.fileBytes)} MB), disk write failures ${s.tiers?.disk?.writeFailures}`);
  }
  const failures = errorRows.filter(([kind]) => !EXPECTED.has(kind)).reduce((n, [, e]) => n + e.count, 0);
  out.push('', `Result: ${failures === 0 && levelled ? 'PASS' : 'FAIL'} (${failures} failed requests or checks${levelled ? '' : ', RSS still growing'})`);
  process.stdout.write(`${out.join('\n')}\n`);

  if (opts.json) {
    writeFileSync(
      opts.json,
      `${JSON.stringify(
        {
          options: opts,
          edgecacheArgs: args.slice(1),
          durationMs,
          requests: Object.fromEntries(kinds.map(([kind, st]) => [kind, { ...st, ms: undefined, p50: percentile(st.ms, 50), p99: percentile(st.ms, 99) }])),
          errors: Object.fromEntries(errorRows),
          purges: purgeStats,
          killed,
          samples,
          levels,
          levelled,
          log: Object.fromEntries(logCounts),
          stats: after.stats,
          pass: failures === 0 && levelled,
        },
        null,
        1,
      )}\n`,
    );
    say(`results written to ${opts.json}`);
  }
  if (opts.keep) say(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
  process.exit(failures === 0 && levelled ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`soak: ${err.stack ?? err}\n`);
  process.exit(1);
});
