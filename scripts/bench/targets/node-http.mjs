// Vendored from ../shared/bench/targets/node-http.mjs (team benchmark harness); adapted: any <n>[k|m] size.
// Ceiling: bare node:http replying with a preallocated Buffer per size (allocated on first use).
// Serves /obj/<size>/<anything>; same header set as the cache proxies (type, length, cache-control, etag).
import http from 'node:http';
const port = Number(process.argv[2] || process.env.PORT || 18090);
const bufs = new Map();
function entry(size) {
  let e = bufs.get(size);
  if (e !== undefined) return e;
  const m = /^(\d+)([km]?)$/.exec(size);
  const n = m ? Number(m[1]) * (m[2] === 'k' ? 1024 : m[2] === 'm' ? 1048576 : 1) : -1;
  e = n < 0 || n > 64 * 1048576 ? null : {
    body: Buffer.alloc(n, 'x'),
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(n),
      'cache-control': 'public, max-age=3600', 'etag': `"ceiling-${size}"` },
  };
  bufs.set(size, e);
  return e;
}
http.createServer((req, res) => {
  const url = req.url; // /obj/<size>/<id>
  const e = url.startsWith('/obj/') ? entry(url.slice(5, url.indexOf('/', 5))) : null;
  if (!e) { res.statusCode = 404; return res.end(); }
  res.writeHead(200, e.headers);
  res.end(e.body);
}).listen(port, '127.0.0.1', () => console.log('node-http ceiling on', port));
