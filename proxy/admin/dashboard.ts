/**
 * The admin port's dashboard (GET /): one self-contained page, no asset from anywhere else (it works offline and
 * behind any firewall). Every second it reads /metrics (the Prometheus text, parsed in the page) and /hot-keys,
 * and shows the hit ratio over the last five minutes as an SVG chart, requests per second by cache result, origin
 * latency percentiles (from the histogram's buckets over the last interval), bytes and entries per tier and the
 * hottest keys. Its purge form posts to /purge with the admin token typed into the page (kept in the page only).
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgecache</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .8em} h2{font-size:1em;margin:0 0 .5em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1em}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em}
table{border-collapse:collapse;width:100%} td,th{text-align:left;padding:2px 6px;border-bottom:1px solid #eee}
td.n{text-align:right;font-variant-numeric:tabular-nums}
svg{width:100%;height:120px;background:#f4f8ff} .muted{color:#888}
label{display:block;margin:.3em 0} input[type=text],input[type=password],select{width:100%;box-sizing:border-box}
</style></head><body>
<h1>edgecache <span id="status" class="muted">connecting…</span></h1>
<div class="grid">
<section><h2>Hit ratio (last 5 minutes): <span id="hit-ratio">–</span></h2>
<svg id="chart" viewBox="0 0 300 100" preserveAspectRatio="none"><polyline id="line" fill="none" stroke="#2a6" stroke-width="1.5" points=""/></svg></section>
<section><h2>Requests per second: <span id="rps-total">0</span></h2><table id="rps"></table>
<p class="muted">Since start: <span id="req-total">0</span> requests</p></section>
<section><h2>Origin latency (last interval)</h2><table id="latency"></table></section>
<section><h2>Tiers</h2><table id="tiers"><tr><th>tier</th><th>entries</th><th>bytes</th><th>evictions</th></tr></table></section>
<section><h2>Hottest keys</h2><table id="hot"></table></section>
<section><h2>Purge</h2>
<form id="purge">
<label>What <select id="kind"><option value="urls">URL</option><option value="prefixes">prefix</option><option value="tags">tag</option></select></label>
<label>Value <input type="text" id="value" placeholder="http://host/path, /path/prefix or a tag" required></label>
<label><input type="checkbox" id="soft"> soft (mark stale, keep for revalidation)</label>
<label>Admin token <input type="password" id="token" autocomplete="off"></label>
<button type="submit">Purge</button> <span id="purge-result"></span>
</form></section>
</div>
<script>
"use strict";
const RESULTS = ["hit","miss","stale","revalidated","bypass"];
const history = []; // {t, hits, total}
let last;
function parse(text) {
  const out = new Map();
  for (const line of text.split("\\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(.*)\\})? (\\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_]\\w*)="((?:[^"\\\\]|\\\\.)*)"/g)) labels[l[1]] = l[2];
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: Number(m[4]) });
  }
  return out;
}
const sum = (m, name, match) => (m.get(name) || []).filter(s => Object.entries(match || {}).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
function fmtBytes(n) { const u = ["B","KiB","MiB","GiB","TiB"]; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return n.toFixed(i ? 1 : 0) + " " + u[i]; }
function row(cells, numeric) { const tr = document.createElement("tr"); cells.forEach((c, i) => { const td = document.createElement("td"); td.textContent = c; if (numeric && i > 0) td.className = "n"; tr.appendChild(td); }); return tr; }
function fill(id, rows, header) { const t = document.getElementById(id); t.replaceChildren(...(header ? [header] : []), ...rows); }
function percentile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (total <= 0) return null;
  const rank = q * total; let prevLe = 0, prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) { if (!isFinite(b.le)) return prevLe; return prevLe + (b.le - prevLe) * ((rank - prevCount) / Math.max(1e-9, b.count - prevCount)); }
    prevLe = b.le; prevCount = b.count;
  }
  return prevLe;
}
function originBuckets(m) {
  return (m.get("edgecache_origin_request_duration_seconds_bucket") || []).map(s => ({ le: s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), count: s.value })).sort((a, b) => a.le - b.le);
}
async function refresh() {
  try {
    const [text, hot] = await Promise.all([fetch("metrics").then(r => r.text()), fetch("hot-keys").then(r => r.json())]);
    const m = parse(text); const now = Date.now();
    const byResult = Object.fromEntries(RESULTS.map(c => [c, sum(m, "edgecache_requests_total", { cache: c })]));
    const total = RESULTS.reduce((a, c) => a + byResult[c], 0);
    const hits = byResult.hit + byResult.stale;
    document.getElementById("req-total").textContent = String(total);
    if (last) {
      const dt = Math.max(0.001, (now - last.t) / 1000);
      const rates = RESULTS.map(c => [c, (byResult[c] - last.byResult[c]) / dt]);
      document.getElementById("rps-total").textContent = rates.reduce((a, r) => a + r[1], 0).toFixed(1);
      fill("rps", rates.map(([c, r]) => row([c, r.toFixed(1)], true)));
      const cur = originBuckets(m), prev = last.origin;
      const delta = cur.map((b, i) => ({ le: b.le, count: b.count - (prev[i] ? prev[i].count : 0) }));
      const use = delta.length && delta[delta.length - 1].count > 0 ? delta : cur;
      fill("latency", [["p50", 0.5], ["p90", 0.9], ["p99", 0.99]].map(([n, q]) => { const v = percentile(use, q); return row([n, v === null ? "–" : (v * 1000).toFixed(1) + " ms"], true); }));
    }
    history.push({ t: now, hits, total });
    while (history.length && history[0].t < now - 300000) history.shift();
    const first = history[0];
    const ratio = total - first.total > 0 ? (hits - first.hits) / (total - first.total) : (total > 0 ? hits / total : 0);
    document.getElementById("hit-ratio").textContent = (ratio * 100).toFixed(1) + " %";
    const pts = [];
    for (let i = 1; i < history.length; i++) {
      const a = history[i - 1], b = history[i]; const d = b.total - a.total;
      const r = d > 0 ? (b.hits - a.hits) / d : NaN;
      const x = 300 - (now - b.t) / 1000;
      if (!isNaN(r)) pts.push(x.toFixed(1) + "," + (100 - r * 100).toFixed(1));
    }
    document.getElementById("line").setAttribute("points", pts.join(" "));
    const tiers = new Set((m.get("edgecache_tier_entries") || []).map(s => s.labels.tier));
    fill("tiers", [...tiers].map(t => row([t, String(sum(m, "edgecache_tier_entries", { tier: t })), fmtBytes(sum(m, "edgecache_tier_bytes", { tier: t })), String(sum(m, "edgecache_tier_evictions_total", { tier: t }))], true)),
      row(["tier", "entries", "bytes", "evictions"]));
    fill("hot", hot.keys.length ? hot.keys.map(k => row([k.key, "~" + k.hits], true)) : [row(["(no hits yet)"])]);
    last = { t: now, byResult, origin: originBuckets(m) };
    document.getElementById("status").textContent = "live, " + new Date(now).toLocaleTimeString();
  } catch (err) {
    document.getElementById("status").textContent = "cannot reach the admin API: " + err;
  }
}
document.getElementById("purge").addEventListener("submit", async (event) => {
  event.preventDefault();
  const kind = document.getElementById("kind").value;
  const body = { [kind]: [document.getElementById("value").value.trim()], soft: document.getElementById("soft").checked };
  const headers = { "content-type": "application/json" };
  const token = document.getElementById("token").value;
  if (token) headers.authorization = "Bearer " + token;
  const out = document.getElementById("purge-result");
  try {
    const res = await fetch("purge", { method: "POST", headers, body: JSON.stringify(body) });
    const text = await res.text();
    let answer; try { answer = JSON.parse(text); } catch { answer = { message: text.trim() }; }
    out.textContent = res.ok ? "purged " + answer.purged + (answer.soft ? " (soft)" : "") : "refused (" + res.status + "): " + answer.message;
  } catch (err) { out.textContent = "failed: " + err; }
});
refresh(); setInterval(refresh, 1000);
</script></body></html>
`;
