#!/usr/bin/env node
// A small origin for the demo and the README's curl tour. Every response says how it may be cached.
//   node scripts/example-origin.mjs [port]      (default 3000)
import http from 'node:http';

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
let served = 0;

const routes = {
  '/': () => ({ cc: 'public, max-age=60', type: 'text/plain', body: 'Hello from the example origin. Try /hello, /api/time, /assets/app.js, /private, /slow\n' }),
  '/hello': () => ({ cc: 'public, max-age=60', type: 'text/plain', body: `Hello! (origin response #${served})\n` }),
  '/api/time': () => ({ cc: 'public, max-age=5, stale-while-revalidate=30', type: 'application/json', body: `${JSON.stringify({ time: new Date().toISOString(), n: served })}\n`, etag: true }),
  '/assets/app.js': () => ({ cc: 'public, max-age=31536000, immutable', type: 'text/javascript', body: 'console.log("cached for a year");\n' }),
  '/private': () => ({ cc: 'private, max-age=60', type: 'text/plain', body: 'for your eyes only\n' }),
  '/lang': (req) => ({ cc: 'public, max-age=60', type: 'text/plain', vary: 'Accept-Language', body: `language: ${req.headers['accept-language'] ?? 'none'}\n` }),
};

http
  .createServer((req, res) => {
    served++;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/slow') {
      setTimeout(() => {
        res.writeHead(200, { 'cache-control': 'public, max-age=30', 'content-type': 'text/plain' });
        res.end('this took the origin one second\n');
      }, 1000);
      return;
    }
    const route = routes[path];
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'max-age=10' });
      res.end('not found\n');
      return;
    }
    const { cc, type, body, etag, vary } = route(req);
    const headers = { 'cache-control': cc, 'content-type': type, 'content-length': Buffer.byteLength(body) };
    if (vary) headers.vary = vary;
    if (etag) {
      headers.etag = `"${Buffer.from(body).toString('base64url').slice(0, 16)}"`;
      if (req.headers['if-none-match'] === headers.etag) {
        res.writeHead(304, { etag: headers.etag, 'cache-control': cc });
        res.end();
        return;
      }
    }
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  })
  .listen(port, '127.0.0.1', () => console.log(`example origin on http://127.0.0.1:${port}`));
