#!/usr/bin/env node
// `node --expose-gc scripts/bench/entry-memory.mjs [--entries N] [--body BYTES] [--read-once] [--memory-max SIZE]`: what one
// memory-tier entry costs in process memory beyond its body and header text. A real edgecache (dist/, in this
// process, no disk tier) fills N distinct URLs of BYTES-byte bodies from an origin in this process that keeps
// nothing per request; the V8 heap plus ArrayBuffers is measured after full GCs before and after the fill. Also
// prints what --memory-max is charged per entry (the memory tier's accounting), to compare. With --read-once,
// every entry is then requested once more (a fresh hit each) and the heap measured again: what an entry costs once
// it has been served (the prepared hit fields it keeps, its body's view). With --memory-max (e.g. 300mib), the tier
// gets that budget instead of one that holds every entry: how many of the N it keeps, and what each of those costs.
// Needs `npm run build` first.
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(process.argv[i + 1]);
};
const N = arg('entries', 100_000);
const BODY = arg('body', 100);
const READ_ONCE = process.argv.includes('--read-once');
const budgetAt = process.argv.indexOf('--memory-max');
const MEMORY_MAX = budgetAt === -1 ? undefined : process.argv[budgetAt + 1];
if (typeof globalThis.gc !== 'function') {
  console.error('entry-memory: run with node --expose-gc');
  process.exit(2);
}
if (!(Number.isInteger(N) && N > 0 && Number.isInteger(BODY) && BODY >= 0)) {
  console.error('entry-memory: --entries and --body take whole numbers');
  process.exit(2);
}
const { loadConfig } = await import(path.join(ROOT, 'dist/config/load.js'));
const { createEdgecache } = await import(path.join(ROOT, 'dist/proxy/edgecache.js'));

const body = Buffer.alloc(BODY, 'x');
// Each response has an entity tag of its own, as real ones do (of one length, so every entry's header text is the
// same); the other fields repeat, as an API's do.
let served = 0;
const origin = http.createServer((req, res) => {
  const etag = `"${(served++).toString(16).padStart(16, '0')}"`;
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=3600', etag, 'content-length': String(BODY) });
  res.end(body);
});
await new Promise((r) => origin.listen(0, '127.0.0.1', r));
const dataDir = mkdtempSync(path.join(tmpdir(), 'edgecache-entry-memory-'));
const { config } = loadConfig({
  argv: ['--origin', `http://127.0.0.1:${origin.address().port}`, '--port', '0', '--admin-port', '0', '--host', '127.0.0.1',
    '--log-level', 'silent', '--memory-max', MEMORY_MAX ?? `${Math.ceil((N * (BODY + 4096)) / 1048576) + 64}mib`, '--disk-max', '0'],
  env: {},
});
const edgecache = await createEdgecache({ ...config, dataDir });
const { port } = await edgecache.listen();
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const get = (p) => new Promise((resolve, reject) => {
  http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => { res.resume(); res.on('end', () => resolve(res.headers['x-cache'])); res.on('error', reject); }).on('error', reject);
});
/** Requests /prefix/0 .. n-1, 32 at a time; resolves to how many responses were not hits. */
async function fill(prefix, n) {
  let next = 0;
  let notHits = 0;
  await Promise.all(Array.from({ length: 32 }, async () => { while (next < n) if ((await get(`/${prefix}/${next++}`)) !== 'HIT') notHits++; }));
  await edgecache.pipeline.idle();
  return notHits;
}
const used = () => {
  for (let i = 0; i < 3; i++) globalThis.gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
await fill('warm', 2000);
const tier = edgecache.store.memory;
const before = used();
const rssBefore = process.memoryUsage().rss;
const s0 = tier.stats();
const t0 = Date.now();
await fill('e', N);
const after = used();
// RSS also counts what the heap figures leave out (each ArrayBuffer's native backing-store record and malloc
// overhead, V8's free heap pages): coarser, but what the machine pays.
const rssAfter = process.memoryUsage().rss;
const s1 = tier.stats();
// One entry of the fill still resident (with --memory-max, the first ones may have been evicted).
const sample = tier.get(tier.keys(`127.0.0.1:${port}/e/`)[0]);
let headerText = 0;
for (const [k, v] of Object.entries(sample.meta.headers)) headerText += k.length + String(v).length;
const resident = s1.entries - s0.entries;
const perEntry = (after - before) / resident;
const keyLen = `127.0.0.1:${port}/e/${N - 1}`.length;
const out = {
  entries: resident, of: N, memory_max: config.memoryMax, body: BODY, header_text: headerText, key: keyLen, fill_s: (Date.now() - t0) / 1000,
  heap_and_arraybuffers_per_entry: Math.round(perEntry),
  rss_per_entry: Math.round((rssAfter - rssBefore) / resident),
  overhead_beyond_body_and_headers: Math.round(perEntry - BODY - headerText),
  charged_per_entry: Math.round((s1.bytes - s0.bytes) / resident),
};
if (READ_ONCE) {
  const notHits = await fill('e', N);
  const read = used();
  out.heap_and_arraybuffers_per_entry_read_once = Math.round((read - before) / resident);
  out.overhead_read_once = Math.round((read - before) / resident - BODY - headerText);
  if (notHits > 0) out.warning = `${notHits} of the re-read responses were not hits`;
}
console.log(JSON.stringify(out));
agent.destroy();
await edgecache.close();
origin.close();
rmSync(dataDir, { recursive: true, force: true });
