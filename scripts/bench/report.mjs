// Markdown tables from a results JSON written by run.mjs (hit-path runs and coalescing trials), and the
// cell-by-cell comparison with an older results file.
// CLI: node scripts/bench/report.mjs results.json [--compare old.json]
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const median = (a) => {
  const s = a.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 0) => (x === undefined || x === null || Number.isNaN(x) ? '-' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const kfmt = (x) => (!Number.isFinite(x) ? '-' : x >= 10_000 ? `${fmt(x / 1000, 1)}k` : fmt(x));

/** One row per (mode, size, target): medians over the reps, ratio to node-http of the same mode and size. */
function cells(results) {
  const groups = new Map();
  for (const r of results.runs ?? []) {
    if (r.discarded) continue;
    const k = `${r.mode}|${r.size}|${r.target}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  const out = [];
  for (const [k, g] of groups) {
    const [mode, size, target] = k.split('|');
    const rps = g.map((r) => r.rps);
    out.push({
      mode, size, target, n: g.length,
      rps: median(rps), rps_min: Math.min(...rps), rps_max: Math.max(...rps),
      p50_ms: median(g.map((r) => r.p50_ms)), p99_ms: median(g.map((r) => r.p99_ms)),
      srv_us_per_req: median(g.map((r) => r.srv_us_per_req)),
      wrk_cpu_pct: median(g.map((r) => r.wrk_cpu_pct)),
      rss_peak_mb: Math.max(...g.map((r) => r.rss_peak_kb)) / 1024,
      origin_fetches: g.reduce((a, r) => a + (r.origin_delta ?? 0), 0),
      errors: g.reduce((a, r) => a + (r.non2xx ?? 0) + (r.sockerr ?? 0), 0),
      other_cpu_pct: median(g.map((r) => r.other_cpu_pct ?? r.cpu0_pct + r.cpu1_pct - (100 * r.srv_cpu_s) / (results.settings?.duration ?? NaN) - r.wrk_cpu_pct)),
      redone: (results.runs ?? []).filter((r) => r.discarded && r.mode === mode && r.size === size && r.target === target).length,
    });
  }
  for (const c of out) {
    // The many-keys mode's ceiling is node-map (node:http answering the same URLs from a Map).
    const baseName = c.mode === 'keys' ? 'node-map' : 'node-http';
    const base = out.find((b) => b.mode === c.mode && b.size === c.size && b.target === baseName);
    c.vs_node_http = base ? c.rps / base.rps : NaN;
    c.cpu_vs_base = base ? c.srv_us_per_req / base.srv_us_per_req : NaN;
  }
  return out;
}

function renderHits(results) {
  const cs = cells(results).filter((c) => c.mode !== 'keys' && c.mode !== 'misses');
  if (cs.length === 0) return '';
  const s = results.settings ?? {};
  const lines = [
    `### Hit path (wrk -t1 -c${s.connections ?? 64} -d${s.duration ?? '?'}s, ${s.reps ?? '?'} interleaved reps, medians)`,
    '',
    '| mode | size | target | req/s median (min–max, n) | p50 ms | p99 ms | × node-http | server CPU µs/req | peak RSS MB | wrk CPU % | other CPU % (runs redone) | origin fetches | non-2xx + sock err |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of cs) {
    lines.push(`| ${c.mode} | ${c.size} | ${c.target} | ${kfmt(c.rps)} (${kfmt(c.rps_min)}–${kfmt(c.rps_max)}, ${c.n}) | ${fmt(c.p50_ms, 2)} | ${fmt(c.p99_ms, 2)} | ${fmt(c.vs_node_http, 2)} | ${fmt(c.srv_us_per_req, 1)} | ${fmt(c.rss_peak_mb, 1)} | ${fmt(c.wrk_cpu_pct)} | ${fmt(c.other_cpu_pct)} (${c.redone}) | ${c.origin_fetches} | ${c.errors} |`);
  }
  for (const size of new Set(cs.filter((c) => c.mode === 'disk').map((c) => c.size))) {
    const d = cs.find((c) => c.mode === 'disk' && c.size === size && c.target === 'edgecache-disk');
    const mem = cs.find((c) => c.mode === 'disk' && c.size === size && c.target === 'edgecache');
    if (d && mem) lines.push('', `Disk hits vs memory hits at ${size} (same working set, same run): **${fmt(d.rps / mem.rps, 2)}×** req/s, ${fmt(d.srv_us_per_req / mem.srv_us_per_req, 2)}× server CPU per request (goal ≥ 0.70× req/s).`);
    else lines.push('', `Disk hits vs memory hits at ${size}: not measured (edgecache-disk did not pass its checks; see below).`);
  }
  return lines.join('\n');
}

/** --gc: what garbage collection cost each Node target during the measured runs (medians per cell). */
function renderGc(results) {
  const runs = (results.runs ?? []).filter((r) => !r.discarded && r.gc);
  if (runs.length === 0) return '';
  const groups = new Map();
  for (const r of runs) {
    const k = `${r.mode} | ${r.size} | ${r.target}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  const lines = [
    '### Garbage collection during the measured runs (--gc: --trace-gc-nvp, medians per run)',
    '',
    '| mode | size | target | collections (full) | pause ms | helper threads ms | promoted MB | GC µs per request |',
    '|---|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const [k, g] of groups) {
    const m = (f) => median(g.map(f));
    lines.push(`| ${k} | ${fmt(m((r) => r.gc.collections))} (${fmt(m((r) => r.gc.full))}) | ${fmt(m((r) => r.gc.pause_ms))} | ${fmt(m((r) => r.gc.background_ms))} | ${fmt(m((r) => r.gc.promoted_mb), 1)} | ${fmt(m((r) => r.gc_us_per_req), 2)} |`);
  }
  return lines.join('\n');
}

function renderKeys(results) {
  const cs = cells(results).filter((c) => c.mode === 'keys');
  if (cs.length === 0) return '';
  const s = results.settings ?? {};
  const lines = [
    `### Many keys (wrk -t1 -c${s.connections ?? 64} -d${s.duration ?? '?'}s, Lua replay of a precomputed request sequence, ${s.reps ?? '?'} interleaved reps, medians)`,
    '',
    '| URLs × size, distribution | target | req/s median (min–max, n) | × node-map | p50 ms | p99 ms | server CPU µs/req | × node-map CPU | peak RSS MB | other CPU % (runs redone) | origin fetches | non-2xx + sock err |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of cs) {
    lines.push(`| ${c.size} | ${c.target} | ${kfmt(c.rps)} (${kfmt(c.rps_min)}–${kfmt(c.rps_max)}, ${c.n}) | ${fmt(c.vs_node_http, 2)} | ${fmt(c.p50_ms, 2)} | ${fmt(c.p99_ms, 2)} | ${fmt(c.srv_us_per_req, 1)} | ${fmt(c.cpu_vs_base, 2)} | ${fmt(c.rss_peak_mb, 1)} | ${fmt(c.other_cpu_pct)} (${c.redone}) | ${c.origin_fetches} | ${c.errors} |`);
  }
  const mem = results.keysMemory ?? [];
  if (mem.length) {
    lines.push('', 'Memory taken by the fill of each URL set: RSS growth per entry, bodies included, measured without a forced GC (so garbage of the fill is in it; nginx keeps bodies in files); for edgecache, what the memory tier charges --memory-max per entry beyond the body (header text, key, fixed per-entry overhead). The V8 heap per entry is measured apart: see docs/benchmarks.md, Many keys.', '',
      '| URL set | target | entries | mean body B | RSS growth B/entry | memory-tier charge beyond body, B/entry |', '|---|---|---:|---:|---:|---:|');
    for (const m of mem) lines.push(`| ${m.set} | ${m.target} | ${fmt(m.entries)} | ${fmt(m.body_bytes / m.entries)} | ${fmt(m.rss_growth_per_entry)} | ${fmt(m.tier_charge_per_entry)} |`);
  }
  return lines.join('\n');
}

/** The misses mode: CPU per miss, each edgecache target and peer against nginx's when it ran. */
function renderMisses(results) {
  const cs = cells(results).filter((c) => c.mode === 'misses');
  if (cs.length === 0) return '';
  const s = results.settings ?? {};
  const lines = [
    `### Misses (wrk -t1 -c${s.connections ?? 64} -d${s.duration ?? '?'}s, every request a URL not requested before, ${s.reps ?? '?'} interleaved reps, medians)`,
    '',
    '| size | target | misses/s median (min–max, n) | p50 ms | p99 ms | server CPU µs per miss | × nginx CPU | peak RSS MB | other CPU % (runs redone) | origin fetches | non-2xx + sock err |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of cs) {
    const nginx = cs.find((b) => b.size === c.size && b.target === 'nginx');
    lines.push(`| ${c.size} | ${c.target} | ${kfmt(c.rps)} (${kfmt(c.rps_min)}–${kfmt(c.rps_max)}, ${c.n}) | ${fmt(c.p50_ms, 2)} | ${fmt(c.p99_ms, 2)} | ${fmt(c.srv_us_per_req, 1)} | ${nginx ? fmt(c.srv_us_per_req / nginx.srv_us_per_req, 2) : '-'} | ${fmt(c.rss_peak_mb, 1)} | ${fmt(c.other_cpu_pct)} (${c.redone}) | ${c.origin_fetches} | ${c.errors} |`);
  }
  return lines.join('\n');
}

function coalesceCells(results) {
  const groups = new Map();
  for (const t of results.coalesce ?? []) {
    const k = `${t.target}|${t.size}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(t);
  }
  return [...groups].map(([k, g]) => {
    const [target, size] = k.split('|');
    return {
      target, size, n: g[0].n, trials: g.length, delay_ms: g[0].delay_ms,
      origin_fetches: g.map((t) => t.origin_fetches),
      statuses: g.map((t) => Object.entries(t.statuses).map(([s, v]) => `${s}×${v}`).join(' ')),
      p50: median(g.map((t) => t.lat_ms.p50)), p99: median(g.map((t) => t.lat_ms.p99)),
      p99_min: Math.min(...g.map((t) => t.lat_ms.p99)), p99_max: Math.max(...g.map((t) => t.lat_ms.p99)), max: median(g.map((t) => t.lat_ms.max)),
      connect_ms: median(g.map((t) => t.connect_ms)),
    };
  });
}

function renderCoalesce(results) {
  const cs = coalesceCells(results);
  if (cs.length === 0) return '';
  const s = results.settings ?? {};
  const lines = [
    `### Coalescing: ${s.coalesceN ?? '?'} concurrent requests (one connection each) for a new URL, origin delay ${s.coalesceDelay ?? '?'} ms`,
    '',
    'Latency from each request\'s write (all connections already open) to its last byte; medians over trials.',
    '',
    '| target | size | trials | origin fetches per trial | statuses (per trial) | p50 ms | p99 ms (min–max) | max ms | connect phase ms (not timed) |',
    '|---|---|---:|---|---|---:|---:|---:|---:|',
  ];
  for (const c of cs) {
    lines.push(`| ${c.target} | ${c.size} | ${c.trials} | ${c.origin_fetches.join(', ')} | ${[...new Set(c.statuses)].join('; ')} | ${fmt(c.p50)} | ${fmt(c.p99)} (${fmt(c.p99_min)}–${fmt(c.p99_max)}) | ${fmt(c.max)} | ${fmt(c.connect_ms)} |`);
  }
  const ec = cs.filter((c) => c.target === 'edgecache');
  for (const c of ec) {
    const pass = c.origin_fetches.every((f) => f === 1) && c.p99 <= c.delay_ms + 50;
    lines.push('', `edgecache ${c.size}: goal 1 origin fetch and p99 ≤ ${c.delay_ms + 50} ms → **${pass ? 'met' : 'NOT met'}** (fetches ${c.origin_fetches.join(', ')}, p99 ${fmt(c.p99)} ms).`);
  }
  return lines.join('\n');
}

function renderChecks(results) {
  const rows = results.checks ?? [];
  const notes = results.notes ?? [];
  if (rows.length === 0 && notes.length === 0) return '';
  const lines = ['### Checks'];
  if (rows.length) {
    lines.push('', '| mode | size | target | check | result |', '|---|---|---|---|---|');
    for (const r of rows) lines.push(`| ${r.mode} | ${r.size} | ${r.target} | ${r.what} | ${r.ok ? 'ok' : '**FAILED**'}: ${r.detail} |`);
  }
  for (const n of notes) lines.push('', `- ${n}`);
  return lines.join('\n');
}

export function renderReport(results) {
  const m = results.meta ?? {};
  const head = [`## edgecache benchmark, ${m.date ?? ''}`, '', `\`${m.command ?? ''}\``, '', `${m.host ?? ''}; node ${m.node ?? ''}; ${[m.wrk, m.nginx, m.varnish].filter(Boolean).join('; ')}; edgecache ${m.commit ?? ''} (dist built ${m.dist_built ?? '?'})`];
  return [head.join('\n'), renderHits(results), renderKeys(results), renderMisses(results), renderGc(results), renderCoalesce(results), renderChecks(results)].filter(Boolean).join('\n\n');
}

/** Ratio new/old for each cell present in both runs (req/s and server CPU per request). */
export function renderCompare(current, old) {
  const a = cells(current);
  const b = cells(old);
  const lines = [
    `### Compared with ${old.meta?.date ?? 'the older run'} (ratio new / old; across runs only ratios to node-http are robust)`,
    '',
    '| mode | size | target | req/s old → new | ratio | × node-http old → new | server µs/req old → new | ratio |',
    '|---|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const c of a) {
    const o = b.find((x) => x.mode === c.mode && x.size === c.size && x.target === c.target);
    if (!o) continue;
    lines.push(`| ${c.mode} | ${c.size} | ${c.target} | ${kfmt(o.rps)} → ${kfmt(c.rps)} | ${fmt(c.rps / o.rps, 2)} | ${fmt(o.vs_node_http, 2)} → ${fmt(c.vs_node_http, 2)} | ${fmt(o.srv_us_per_req, 1)} → ${fmt(c.srv_us_per_req, 1)} | ${fmt(c.srv_us_per_req / o.srv_us_per_req, 2)} |`);
  }
  const ca = coalesceCells(current);
  const cb = coalesceCells(old);
  for (const c of ca) {
    const o = cb.find((x) => x.target === c.target && x.size === c.size);
    if (o) lines.push('', `coalesce ${c.target} ${c.size}: p99 ${fmt(o.p99)} → ${fmt(c.p99)} ms (ratio ${fmt(c.p99 / o.p99, 2)}), origin fetches ${o.origin_fetches.join(',')} → ${c.origin_fetches.join(',')}`);
  }
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, flag, oldFile] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node scripts/bench/report.mjs results.json [--compare old.json]');
    process.exit(2);
  }
  const res = JSON.parse(fs.readFileSync(file, 'utf8'));
  console.log(renderReport(res));
  if (flag === '--compare' && oldFile) console.log(`\n${renderCompare(res, JSON.parse(fs.readFileSync(oldFile, 'utf8')))}`);
}
