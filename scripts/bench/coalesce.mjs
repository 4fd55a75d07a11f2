// Cold-miss coalescing burst. Idea from ../shared/bench/tools/coalesce.mjs (team benchmark harness), rewritten
// over raw sockets so the client's own connection storm is not timed:
//   1. open N TCP connections to the proxy and wait until every one is connected,
//   2. write one `GET path` on each (raw HTTP/1.1) and time each request from its write to the last byte of its
//      response (Content-Length reached, or the server closing the connection),
//   3. ask the origin how often it was asked for `path` (GET /__count?path=...).
// CLI: node scripts/bench/coalesce.mjs --port P --path '/obj/1k/new-id?delay=200' [--n 1000] [--origin PORT]
import net from 'node:net';
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const HOST = '127.0.0.1';

/** GET a small JSON document (origin counters, /stats). */
export function getJson(port, path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => { try { resolve(JSON.parse(text)); } catch (e) { reject(e); } });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} on :${port} timed out`)));
  });
}

export async function originCount(originPort, path) {
  return (await getJson(originPort, `/__count?path=${encodeURIComponent(path)}`)).count;
}

function connectAll(port, n, timeoutMs) {
  return new Promise((resolve) => {
    const sockets = [];
    let pending = n;
    const timer = setTimeout(() => resolve(sockets), timeoutMs);
    const done = () => { if (--pending === 0) { clearTimeout(timer); resolve(sockets); } };
    for (let i = 0; i < n; i++) {
      const s = net.connect({ host: HOST, port });
      const r = { socket: s, connected: false, error: null };
      sockets.push(r);
      s.setNoDelay(true);
      s.once('connect', () => { r.connected = true; done(); });
      s.on('error', (e) => { if (r.connected) return; r.error = e.code || e.message; done(); });
    }
  });
}

/** One request on a connected socket; resolves with status, body length, X-Cache and ms from write to end. */
function exchange(r, request, timeoutMs) {
  return new Promise((resolve) => {
    const s = r.socket;
    let head = null; // { status, xcache, bodyStart, contentLength }
    let buf = Buffer.alloc(0);
    let received = 0;
    let t0 = 0;
    let settled = false;
    const finish = (status) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const ms = performance.now() - t0;
      s.destroy();
      resolve({ status, len: head ? received : 0, xcache: head?.xcache ?? '', ms });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    s.on('data', (chunk) => {
      if (head === null) {
        buf = Buffer.concat([buf, chunk]);
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const fields = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        const cl = fields.get('content-length');
        head = { status: Number(lines[0].split(' ')[1]), xcache: fields.get('x-cache') ?? '', contentLength: cl === undefined ? -1 : Number(cl) };
        received = buf.length - end - 4;
        buf = null;
      } else {
        received += chunk.length;
      }
      if (head.contentLength >= 0 && received >= head.contentLength) finish(head.status);
    });
    s.on('end', () => finish(head ? head.status : 'closed'));
    s.on('error', (e) => finish(head ? head.status : `ERR:${e.code || e.message}`));
    t0 = performance.now();
    s.write(request);
  });
}

const quantile = (sorted, p) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const histogram = (rows, key) => rows.reduce((m, r) => ((m[r[key]] = (m[r[key]] || 0) + 1), m), {});

/**
 * Fires the burst and returns a summary. `path` should be new to the proxy and carry `?delay=ms` for the origin.
 */
export async function coalesceBurst({ port, path, n = 1000, originPort, timeoutMs = 30_000 }) {
  const before = originPort ? await originCount(originPort, path) : null;
  const tc = performance.now();
  const conns = await connectAll(port, n, timeoutMs);
  const connectMs = performance.now() - tc;
  const ok = conns.filter((r) => r.connected && !r.error);
  const request = `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUser-Agent: edgecache-bench\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
  const t0 = performance.now();
  const rows = await Promise.all(ok.map((r) => exchange(r, request, timeoutMs)));
  const wallMs = performance.now() - t0;
  for (const r of conns) if (!ok.includes(r)) { r.socket.destroy(); rows.push({ status: `connect:${r.error ?? 'timeout'}`, len: 0, xcache: '', ms: NaN }); }
  await new Promise((r) => setTimeout(r, 500)); // let any late origin fetch land before counting
  const after = originPort ? await originCount(originPort, path) : null;
  const lat = rows.filter((r) => typeof r.status === 'number').map((r) => r.ms).sort((a, b) => a - b);
  const r1 = (x) => Math.round(x * 10) / 10;
  return {
    path, n, connected: ok.length, connect_ms: r1(connectMs), wall_ms: r1(wallMs),
    origin_fetches: before === null ? null : after - before,
    statuses: histogram(rows, 'status'), lengths: histogram(rows, 'len'), xcache: histogram(rows, 'xcache'),
    lat_ms: { min: r1(quantile(lat, 0)), p50: r1(quantile(lat, 0.5)), p99: r1(quantile(lat, 0.99)), max: r1(lat[lat.length - 1] ?? NaN) },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = {};
  for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
  if (!args.port || !args.path) {
    console.error("usage: node scripts/bench/coalesce.mjs --port P --path '/obj/1k/new-id?delay=200' [--n 1000] [--origin PORT]");
    process.exit(2);
  }
  const res = await coalesceBurst({ port: Number(args.port), path: args.path, n: Number(args.n || 1000), originPort: args.origin ? Number(args.origin) : undefined });
  console.log(JSON.stringify(res));
}
