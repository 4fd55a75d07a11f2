#!/usr/bin/env node
// `npm run bench:micro -- [--runs N] [--time MS] [--filter TEXT] [--json]`: ops/s of the functions on edgecache's
// request path (key building, header conversion, policy evaluation, Cache-Control parsing), from the compiled
// modules in dist/ (run `npm run build` first). Each case is calibrated to about --time ms per run (default 200),
// run --runs times (default 7) after a warm-up; the median is printed with the min-max spread.
// Numbers are for spotting regressions between two builds on the same machine, not absolute costs; for less
// noise pin it: `taskset -c 0 npm run bench:micro`.
import { performance } from 'node:perf_hooks';
import { parseCacheControl } from '../../dist/policies/http/cache-control.js';
import { normalizeHost, parseRequestTarget, varyKey } from '../../dist/policies/http/cache-key.js';
import { Freshness } from '../../dist/policies/http/freshness.js';
import { endToEndResponseHeaders } from '../../dist/policies/http/intermediary.js';
import { Forwarding } from '../../dist/proxy/origin/forwarding.js';
import { hitHeaders, writeHitHead } from '../../dist/proxy/http/hit-head.js';
import { probeRawHead } from '../../dist/proxy/http/raw-head.js';
import { ProxyMetrics } from '../../dist/proxy/admin/metrics.js';
import { ProxyStats } from '../../dist/proxy/admin/stats.js';
import { OutcomeRecorder } from '../../dist/proxy/pipeline/outcome.js';
import { MemoryTier } from '../../dist/cache-store/memory/memory-tier.js';
import { newEntryMeta } from '../../dist/cache-store/entry.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i === -1 ? dflt : args[i + 1]; };
if (args.includes('--help')) {
  console.log('Usage: npm run bench:micro -- [--runs N (7)] [--time MS per run (200)] [--filter TEXT] [--json]');
  process.exit(0);
}
const RUNS = Number(opt('runs', 7));
const TIME_MS = Number(opt('time', 200));
const FILTER = opt('filter', '');
const JSON_OUT = args.includes('--json');

// ------------------------------------------------------------------ realistic inputs
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);
const URLS = Array.from({ length: 8 }, (_, i) => `/assets/app.${i}c9f2e.js?v=${i}`);
const HOSTS = ['www.example.com', 'WWW.Example.com', 'static.example.com:8080', 'cdn.example.net', 'api.example.org', '127.0.0.1:3000', 'img.example.com', 'example.com'];
const RAW = (host) => ['Host', host, 'User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0', 'Accept', '*/*', 'Accept-Encoding', 'gzip, deflate, br', 'Accept-Language', 'en-US,en;q=0.9'];
const RAWS = HOSTS.map(RAW);
const BROWSER = {
  host: 'www.example.com',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-encoding': 'gzip, deflate, br',
  'accept-language': 'en-US,en;q=0.9',
  connection: 'keep-alive',
  cookie: 'session=abc123; theme=dark',
  'if-none-match': '"abc"',
  'x-forwarded-for': '10.0.0.1',
};
const FORWARDING = new Forwarding({ originHost: 'origin.internal', preserveHost: true, trustForwarded: false, exposeTagHeaders: false });
const TARGET = { scheme: 'http', host: 'www.example.com', path: '/', key: 'www.example.com/' };
const ORIGIN_RESPONSE = {
  'content-type': 'application/javascript; charset=utf-8',
  'content-length': '16384',
  'cache-control': 'public, max-age=3600, stale-while-revalidate=60',
  etag: '"5f2c-18c0e1a2b3"',
  'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT',
  date: new Date(NOW).toUTCString(),
  vary: 'Accept-Encoding',
  'content-encoding': 'br',
  connection: 'keep-alive',
  'keep-alive': 'timeout=5',
  server: 'origin/1.0',
  'x-request-id': '7d1c0e9a-5b7f-4c2e-9a51-0f3b2d1e8c44',
};

const freshness = new Freshness({ cacheSetCookie: false, staleIfErrorGrace: 0, now: () => NOW });
const policyRequest = { method: 'GET', url: URLS[0], headers: BROWSER };
const policyResponse = { status: 200, headers: endToEndResponseHeaders(ORIGIN_RESPONSE) };
const policy = freshness.createPolicy(policyRequest, policyResponse);
const lifetimes = freshness.lifetimes(policy, policyResponse, 0);

/** A stored entry as the memory tier holds it: 16 KiB body (or `size`), stored headers, lifetimes. */
function makeEntry(size = 16384) {
  const headers = endToEndResponseHeaders(ORIGIN_RESPONSE);
  return {
    kind: 'entry',
    meta: { ...lifetimes, key: `www.example.com${URLS[0]}`, primaryKey: `www.example.com${URLS[0]}`, status: 200, headers, storedAt: NOW, vary: ['accept-encoding'], tags: [], deletableAt: Infinity },
    body: Buffer.alloc(size, 'x'),
    policy,
  };
}
const entry = makeEntry();
// The many-keys hit head: 10,000 entries hit in turn, so with a new second of Age each entry is seen again in a
// new second (the case of 10,000 hot URLs at 10,000 req/s), written into a keep-alive response's internals.
await probeRawHead();
const MANY = Array.from({ length: 10_000 }, () => makeEntry(64));
const RES = { shouldKeepAlive: true, _defaultKeepAlive: true, _keepAliveTimeout: 5000, _maxRequestsPerSocket: 0, maxRequestsOnConnectionReached: false, _header: null, _hasBody: true, statusCode: 200, writeHead() { throw new Error('prepared heads not in use'); } };
const hitHead = (e, now) => { writeHitHead(RES, e, now); return RES._header.length; };
// Every entry hit often enough in one second that it keeps that second's head (hit-head.ts HEAD_KEEP_HITS).
const hitHeadSameSecond = (i) => hitHead(MANY[i % 10_000], NOW + 1500);
hitHeadSameSecond.setup = () => { for (let r = 0; r < 16; r++) for (const e of MANY) hitHead(e, NOW + 1500); };
let tick = 0; // across batches, so each entry's next hit is always in a later second
const hitHeadNewSecond = () => { const k = tick++; return hitHead(MANY[k % 10_000], NOW + Math.floor(k / 10_000) * 1000); };
const CC_SIMPLE = 'public, max-age=3600';
const CC_COMPLEX = 'private, no-cache="set-cookie, x-foo", max-age=0, s-maxage=600, stale-while-revalidate=30, stale-if-error=86400, MUST-REVALIDATE';
// 1,024 distinct values in turn: far more than parseCacheControl remembers (the last 16), so each parse is a first one.
const CC_UNSEEN = Array.from({ length: 1024 }, (_, i) => `public, max-age=${3600 + i}`);
const RELOAD = { ...BROWSER, 'cache-control': 'max-age=0' };
delete RELOAD['if-none-match'];
const PLAIN = { ...BROWSER };
delete PLAIN['if-none-match'];

// ------------------------------------------------------------------ cases: fn(i) returns something (kept in a sink)
// What a fresh hit costs in statistics and metrics (edgecache_requests_total, the duration histogram): the whole of
// OutcomeRecorder.hit without the access log, with the clock read the hit path makes for it, against the stats
// counter alone; the difference is what /metrics costs a hit.
const STATS = new ProxyStats();
const OUTCOMES = new OutcomeRecorder(STATS, new ProxyMetrics(STATS, undefined), undefined);
const HIT_REQ = { socket: { bytesWritten: 0 } };
const HIT_RES = { statusCode: 200 };

/**
 * MemoryTier.get over `n` resident keys (the default tinylfu policy) in a random order, each lookup with a key string
 * made for it by concatenation as the hit path makes one: the lookup and the policy's bookkeeping of a hit, with
 * the cache misses of a large index. Built only when the case runs (a million entries take a few seconds and
 * about 700 MB).
 */
function tierGets(n) {
  let tier;
  let parts;
  const order = new Uint32Array(1 << 20);
  const fn = (i) => {
    const k = parts[order[i & (order.length - 1)]];
    return tier.get(k[0] + k[1]);
  };
  fn.setup = () => {
    tier = new MemoryTier({ maxBytes: 1e12, policy: 'tinylfu' });
    parts = [];
    for (let i = 0; i < n; i++) {
      const key = `www.example.com/obj/100/${i}`;
      parts.push(['www.example.com', `/obj/100/${i}`]);
      const meta = newEntryMeta(lifetimes, { key, primaryKey: key, status: 200, headers: { 'content-type': 'application/json', etag: `"${i}"` }, storedAt: NOW, vary: null, tags: [], deletableAt: Infinity });
      tier.set(key, { kind: 'entry', meta, body: Buffer.alloc(100, 'x') });
    }
    for (let i = 0; i < order.length; i++) order[i] = Math.floor(Math.random() * n);
  };
  return fn;
}

const CASES = [
  ['memory-tier', 'MemoryTier.get, 10,000 keys', tierGets(10_000)],
  ['memory-tier', 'MemoryTier.get, 1,000,000 keys', tierGets(1_000_000)],
  ['outcome', 'a hit counted: clock + OutcomeRecorder.hit (stats, metrics)', (i) => OUTCOMES.hit(HIT_REQ, HIT_RES, i & 1, performance.now())],
  ['outcome', 'a hit counted without metrics (the stats counter only)', () => STATS.hits++],
  ['cache-key', 'parseRequestTarget', (i) => parseRequestTarget(URLS[i & 7], HOSTS[i & 7], RAWS[i & 7], 'http')],
  ['cache-key', 'normalizeHost (memoized)', (i) => normalizeHost(HOSTS[i & 7], 'http')],
  ['cache-key', 'varyKey (accept-encoding)', () => varyKey(['accept-encoding'], BROWSER)],
  ['cache-key', 'varyKey (3 fields)', () => varyKey(['accept', 'accept-encoding', 'accept-language'], BROWSER)],
  ['headers', 'Forwarding.requestHeaders (fill)', () => FORWARDING.requestHeaders(BROWSER, TARGET, '127.0.0.1', true)],
  ['headers', 'endToEndResponseHeaders', () => endToEndResponseHeaders(ORIGIN_RESPONSE)],
  ['headers', 'hitHeaders (same second)', () => hitHeaders(entry, NOW + 1500)],
  ['headers', 'hitHeaders (Age changes)', (i) => hitHeaders(entry, NOW + (i & 1023) * 1000)],
  ['headers', 'writeHitHead, 10,000 entries (same second, head kept)', hitHeadSameSecond],
  ['headers', 'writeHitHead, 10,000 entries (new Age second per hit)', hitHeadNewSecond],
  ['policy', 'Freshness.evaluate (no request directives)', () => freshness.evaluate(entry.meta, PLAIN, NOW + 5000)],
  ['policy', 'Freshness.evaluate (max-age=0 reload)', () => freshness.evaluate(entry.meta, RELOAD, NOW + 5000)],
  ['policy', 'createPolicy + notStorableReason', () => {
    const p = freshness.createPolicy(policyRequest, policyResponse);
    return freshness.notStorableReason(p, policyRequest, policyResponse) ?? p;
  }],
  ['cache-control', 'parseCacheControl (public, max-age; remembered)', () => parseCacheControl(CC_SIMPLE)],
  ['cache-control', 'parseCacheControl (7 directives, quoted; remembered)', () => parseCacheControl(CC_COMPLEX)],
  ['cache-control', 'parseCacheControl (public, max-age; a value not seen lately)', (i) => parseCacheControl(CC_UNSEEN[i & 1023])],
];

// ------------------------------------------------------------------ timing
let sink = 0;
function batch(fn, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) if (fn(i) === undefined) sink++;
  return performance.now() - t0;
}
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

const rows = [];
for (const [group, name, fn] of CASES) {
  if (FILTER && !`${group} ${name}`.toLowerCase().includes(FILTER.toLowerCase())) continue;
  fn.setup?.();
  // warm-up and calibration: grow n until one batch takes >= 20 ms, then scale to TIME_MS per run
  let n = 1000;
  let ms = batch(fn, n);
  while (ms < 20) { n *= 4; ms = batch(fn, n); }
  n = Math.max(1, Math.round((n * TIME_MS) / ms));
  batch(fn, n);
  const opsPerSec = [];
  for (let r = 0; r < RUNS; r++) opsPerSec.push((n / batch(fn, n)) * 1000);
  const med = median(opsPerSec);
  rows.push({ group, name, ops_per_sec: Math.round(med), ns_per_op: +(1e9 / med).toFixed(1), min: Math.round(Math.min(...opsPerSec)), max: Math.round(Math.max(...opsPerSec)), runs: RUNS, iterations: n });
}

if (JSON_OUT) {
  console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, runs: RUNS, time_ms: TIME_MS, results: rows }, null, 1));
} else {
  const k = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(0)}k`);
  console.log(`edgecache micro-benchmarks (node ${process.version}, ${RUNS} runs of ~${TIME_MS} ms, median)\n`);
  console.log('| group | function | ops/s median | min–max | ns/op |');
  console.log('|---|---|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.group} | ${r.name} | ${k(r.ops_per_sec)} | ${k(r.min)}–${k(r.max)} | ${r.ns_per_op} |`);
}
if (sink < 0) console.log(sink);
