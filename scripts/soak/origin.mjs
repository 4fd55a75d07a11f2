// The soak's origin: a small HTTP server on loopback whose answers follow from the URL (see bodies.mjs), with a
// version per URL that a purge bumps (the hot set) or time bumps (the revalidation set), and URLs that fault on
// purpose: 404, 500, a reset in the middle of the body or right after the headers, a stall past edgecache's
// --origin-headers-timeout.
//
//   /hot/g<group>/<n>    cacheable for an hour, ETag, Surrogate-Key "g<group> hot"; version bumped by purges
//   /miss/<id>           cacheable for 10 minutes, Surrogate-Key "miss"; every id is new (then re-read as "old")
//   /reval/<n>           max-age=1 with an ETag: revalidated every second; the version moves every REVAL_PERIOD_MS
//   /vary/<n>            Vary: Accept-Language; the body names the language
//   /big/<n>             1, 2, 4 or 6 MiB, cacheable
//   /404/<n>             404 (no-store for odd n, max-age=5 for even n)
//   /500/<n>             500, no-store
//   /reset/mid/<n>       200 with Content-Length, half the body, then the socket destroyed
//   /reset/head/<n>      200 with Content-Length, the headers only, then the socket destroyed
//   /stall/<n>           headers only after stallMs
import http from 'node:http';
import { body, etag, hash32 } from './bodies.mjs';

export const REVAL_PERIOD_MS = 5_000;
export const LANGUAGES = ['en', 'fr', 'de', 'ja'];
const BIG_SIZES = [1, 2, 4, 6].map((mib) => mib * 1024 * 1024);

/** The body length of a URL: fixed per path, whatever its version. */
export function lengthOf(path) {
  const h = hash32(path);
  if (path.startsWith('/hot/')) return 512 + (h % 8192);
  if (path.startsWith('/miss/')) return 200 + (h % 32_768);
  if (path.startsWith('/reval/')) return 1500;
  if (path.startsWith('/vary/')) return 2000;
  if (path.startsWith('/big/')) return BIG_SIZES[Number(path.slice(5)) % BIG_SIZES.length];
  if (path.startsWith('/reset/')) return 64 * 1024;
  return 100;
}

/** The body id of a Vary URL for a language (the body names both). */
export function variantId(path, language) {
  return `${path}|lang=${language}`;
}

/** The language a Vary URL answers for an Accept-Language field: the first of LANGUAGES it names, or "none". */
export function languageOf(acceptLanguage) {
  const first = String(acceptLanguage ?? '').split(',')[0].trim().slice(0, 2).toLowerCase();
  return LANGUAGES.includes(first) ? first : 'none';
}

export async function startOrigin({ stallMs, startedAt = Date.now() }) {
  const versions = new Map();
  const counts = { requests: 0, notModified: 0, resets: 0, stalls: 0 };
  const revalVersion = (now = Date.now()) => Math.floor((now - startedAt) / REVAL_PERIOD_MS);

  const server = http.createServer((req, res) => {
    counts.requests++;
    const path = (req.url ?? '/').split('?')[0];
    const cacheable = (id, version, cacheControl, extra = {}) => {
      const tag = etag(id, version);
      const headers = { 'cache-control': cacheControl, etag: tag, 'content-type': 'application/octet-stream', ...extra };
      if (req.headers['if-none-match'] === tag) {
        counts.notModified++;
        res.writeHead(304, headers);
        res.end();
        return;
      }
      const bytes = body(id, version, lengthOf(path));
      res.writeHead(200, { ...headers, 'content-length': String(bytes.length) });
      res.end(bytes);
    };
    if (path.startsWith('/hot/')) {
      const group = path.split('/')[2];
      return cacheable(path, versions.get(path) ?? 0, 'public, max-age=3600', { 'surrogate-key': `${group} hot` });
    }
    if (path.startsWith('/miss/')) return cacheable(path, 0, 'public, max-age=600', { 'surrogate-key': 'miss' });
    if (path.startsWith('/reval/')) return cacheable(path, revalVersion(), 'public, max-age=1');
    if (path.startsWith('/vary/')) {
      return cacheable(variantId(path, languageOf(req.headers['accept-language'])), 0, 'public, max-age=60', { vary: 'Accept-Language' });
    }
    if (path.startsWith('/big/')) return cacheable(path, 0, 'public, max-age=3600');
    if (path.startsWith('/404/')) {
      const n = Number(path.slice(5)) || 0;
      res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': n % 2 === 1 ? 'no-store' : 'max-age=5' });
      res.end(`not found ${path}\n`);
      return;
    }
    if (path.startsWith('/500/')) {
      res.writeHead(500, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end(`origin error ${path}\n`);
      return;
    }
    if (path.startsWith('/reset/')) {
      counts.resets++;
      const bytes = body(path, 0, lengthOf(path));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=60', 'content-length': String(bytes.length) });
      if (path.startsWith('/reset/mid/')) res.write(bytes.subarray(0, bytes.length >> 1));
      else res.flushHeaders();
      setTimeout(() => res.socket?.destroy(), 5);
      return;
    }
    if (path.startsWith('/stall/')) {
      counts.stalls++;
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
        res.end('late\n');
      }, stallMs);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    res.end('unknown soak path\n');
  });
  // Longer than undici's keep-alive (4 s), so the proxy never reuses a connection the origin is closing.
  server.keepAliveTimeout = 65_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    counts,
    /** The version the origin now serves for a path. */
    versionOf(path, now = Date.now()) {
      if (path.startsWith('/reval/')) return revalVersion(now);
      return versions.get(path) ?? 0;
    },
    /** Moves paths to their next version (before a purge of them is sent). */
    bump(paths) {
      for (const path of paths) versions.set(path, (versions.get(path) ?? 0) + 1);
    },
    revalVersion,
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
