// Ceiling for the many-keys mode: bare node:http answering every URL from a Map (url -> headers + Buffer), as a
// cache with no policy, no freshness and no eviction would. An entry is made on the first request for a URL
// (`/obj/<size>/<id>`, size in bytes or <n>k / <n>m), with the same header set as the node-http ceiling.
import http from 'node:http';
const port = Number(process.argv[2] || process.env.PORT || 18095);
const map = new Map();
function entry(url) {
  let e = map.get(url);
  if (e !== undefined) return e;
  const end = url.indexOf('/', 5);
  const m = url.startsWith('/obj/') && end > 5 ? /^(\d+)([km]?)$/.exec(url.slice(5, end)) : null;
  const n = m ? Number(m[1]) * (m[2] === 'k' ? 1024 : m[2] === 'm' ? 1048576 : 1) : -1;
  if (n < 0 || n > 64 * 1048576) return null;
  e = {
    body: Buffer.alloc(n, 'x'),
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(n),
      'cache-control': 'public, max-age=3600', 'etag': `"map-${map.size}"` },
  };
  map.set(url, e);
  return e;
}
http.createServer((req, res) => {
  const e = entry(req.url);
  if (!e) { res.statusCode = 404; return res.end(); }
  res.writeHead(200, e.headers);
  res.end(e.body);
}).listen(port, '127.0.0.1', () => console.log('node-map ceiling on', port));
