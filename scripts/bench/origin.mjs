// Vendored from ../shared/bench/origin.mjs (team benchmark harness); adapted: listens on 127.0.0.1 only; bodies over
// 64 MiB (up to 4 GiB) are generated as they stream (streamLarge).
// Benchmark origin: GET /obj/<size>/<id>[?delay=ms]
//   size: <n>[k|m]  (1k = 1024 bytes, 1m = 1048576 bytes)
//   body: deterministic bytes derived from (size,id); ETag; Cache-Control public, max-age=3600
//   ?delay=ms delays the response head by ms milliseconds
//   ?cc=<value> overrides Cache-Control (e.g. cc=no-store)
//   ?type=json  a JSON body (an API answer: repeated keys, varied values; compresses like real JSON), application/json
// GET /__count            -> {"total":N,"paths":{...}}  (count of /obj requests received)
// GET /__count?path=/x    -> {"path":"/x","count":N,"total":N}  (path = full request-target incl. query)
// GET /__reset            -> resets counters
// Conditional GET: If-None-Match matching ETag -> 304 (still counted)
import http from 'node:http';
import crypto from 'node:crypto';

const port = Number(process.env.ORIGIN_PORT || process.argv[2] || 18080);
const host = '127.0.0.1';

let total = 0;
let paths = new Map();
const bodyCache = new Map(); // (size,id) -> {buf, etag}

function parseSize(s) {
  const m = /^(\d+)([kKmM]?)$/.exec(s);
  if (!m) return -1;
  const n = Number(m[1]);
  const u = m[2].toLowerCase();
  return u === 'k' ? n * 1024 : u === 'm' ? n * 1024 * 1024 : n;
}

/** Deterministic JSON of exactly `size` bytes: records with varied values (padded with spaces at the end). */
function jsonBody(size, id) {
  const parts = [];
  let length = 1;
  for (let i = 0; length < size; i++) {
    const h = crypto.createHash('sha256').update(`${id}/${i}`).digest('hex');
    const item = `{"id":${i},"sku":"${h.slice(0, 12)}","name":"item ${h.slice(12, 18)}","price":${parseInt(h.slice(18, 23), 16) % 100000 / 100},"tags":["t${parseInt(h[23], 16)}","c${parseInt(h[24], 16)}"],"stock":${parseInt(h.slice(25, 29), 16) % 500}}`;
    parts.push(item);
    length += item.length + 1;
  }
  const text = `[${parts.join(',')}]`;
  return text.length >= size ? Buffer.from(`${text.slice(0, Math.max(0, size - 1))}]`.slice(0, size)) : Buffer.from(text.padEnd(size));
}

function makeBody(size, id, type) {
  const key = size + '/' + id + '/' + type;
  let e = bodyCache.get(key);
  if (e) return e;
  let buf;
  if (type === 'json') buf = jsonBody(size, id);
  else {
    // deterministic: repeat a 64-byte block seeded by sha256(size/id)
    const seed = crypto.createHash('sha256').update(size + '/' + id).digest('hex'); // 64 hex chars
    buf = Buffer.alloc(size);
    for (let off = 0; off < size; off += 64) buf.write(seed, off, Math.min(64, size - off), 'latin1');
  }
  const etag = '"' + crypto.createHash('sha1').update(buf).digest('hex').slice(0, 20) + '"';
  e = { buf, etag };
  if (bodyCache.size > 10000) bodyCache.clear();
  bodyCache.set(key, e);
  return e;
}

/**
 * Bodies over 64 MiB (the large-object benchmark) are generated as they are sent, never held: 1 MiB blocks of a
 * seeded pattern with the block's index written every 4 KiB, sent with backpressure. ETag from (size, id).
 */
const LARGE_BLOCK = 1024 * 1024;
function streamLarge(req, res, size, id) {
  const seed = crypto.createHash('sha256').update(size + '/' + id).digest('hex');
  const base = Buffer.alloc(LARGE_BLOCK);
  for (let off = 0; off < LARGE_BLOCK; off += 64) base.write(seed, off, 64, 'latin1');
  const etag = '"large-' + seed.slice(0, 16) + '"';
  const headers = { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=3600', etag, 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', date: new Date().toUTCString() };
  if (req.headers['if-none-match'] === etag) { res.writeHead(304, headers); return res.end(); }
  res.writeHead(200, { ...headers, 'content-length': String(size) });
  if (req.method === 'HEAD') return res.end();
  let sent = 0;
  let index = 0;
  const pump = () => {
    while (sent < size) {
      const n = Math.min(LARGE_BLOCK, size - sent);
      const block = Buffer.allocUnsafe(n);
      base.copy(block, 0, 0, n);
      for (let at = 0; at + 4 <= n; at += 4096) block.writeUInt32LE(index, at);
      sent += n;
      index++;
      if (!res.write(block)) return void res.once('drain', pump);
    }
    res.end();
  };
  res.on('close', () => { sent = size; });
  pump();
}

const server = http.createServer((req, res) => {
  const url = req.url;
  const q = url.indexOf('?');
  const pathname = q === -1 ? url : url.slice(0, q);
  const params = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));

  if (pathname === '/__count') {
    const p = params.get('path');
    const out = p != null ? { path: p, count: paths.get(p) || 0, total } : { total, paths: Object.fromEntries(paths) };
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    return res.end(JSON.stringify(out));
  }
  if (pathname === '/__reset') {
    total = 0; paths = new Map();
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    return res.end('ok\n');
  }
  const m = /^\/obj\/([0-9]+[kKmM]?)\/([A-Za-z0-9._-]+)$/.exec(pathname);
  if (!m || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    return res.end('not found\n');
  }
  total++;
  paths.set(url, (paths.get(url) || 0) + 1);
  const size = parseSize(m[1]);
  if (size < 0 || size > 4 * 1024 * 1024 * 1024) { res.writeHead(400); return res.end('bad size\n'); }
  if (size > 64 * 1024 * 1024) return streamLarge(req, res, size, m[2]);
  const type = params.get('type') === 'json' ? 'json' : 'bytes';
  const { buf, etag } = makeBody(size, m[2], type);
  const delay = Number(params.get('delay') || 0);
  const send = () => {
    const headers = {
      'content-type': type === 'json' ? 'application/json' : 'application/octet-stream',
      'cache-control': params.get('cc') || 'public, max-age=3600',
      'etag': etag,
      'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT',
      'date': new Date().toUTCString(),
    };
    if (req.headers['if-none-match'] === etag) { res.writeHead(304, headers); return res.end(); }
    headers['content-length'] = String(size);
    res.writeHead(200, headers);
    if (req.method === 'HEAD') return res.end();
    res.end(buf);
  };
  if (delay > 0) setTimeout(send, delay); else send();
});
server.keepAliveTimeout = 65000;
server.headersTimeout = 66000;
server.listen(port, host, () => console.log(`origin listening on http://${host}:${port}`));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { server.close(); process.exit(0); });
