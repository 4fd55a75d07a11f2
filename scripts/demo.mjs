#!/usr/bin/env node
// `npm run demo`: starts the example origin and edgecache in front of it, shows a MISS and then a HIT with curl,
// and leaves both running until Ctrl-C. Ports: origin 3000, proxy 8080, admin 8081 (the next free ones if taken).
import { spawnSync } from 'node:child_process';
import { startDemo } from './demo-support.mjs';

const { originPort, proxyPort, adminPort } = await startDemo('demo', { originScript: 'example-origin.mjs' });

const url = `http://127.0.0.1:${proxyPort}/hello`;
const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
async function show(label) {
  console.log(`\n$ curl -i ${url}    # ${label}`);
  if (hasCurl) {
    spawnSync('curl', ['-s', '-i', url], { stdio: 'inherit' });
    return;
  }
  const res = await fetch(url);
  console.log(`HTTP/1.1 ${res.status} ${res.statusText}`);
  for (const [k, v] of res.headers) console.log(`${k}: ${v}`);
  console.log(`\n${await res.text()}`);
}
console.log(`\nedgecache demo: origin http://127.0.0.1:${originPort}, proxy http://127.0.0.1:${proxyPort}, admin http://127.0.0.1:${adminPort}`);
await show('first request: X-Cache: MISS, fetched from the origin and stored');
await show('second request: X-Cache: HIT, served from memory, with Age and Cache-Status');
console.log(`Try more:
  curl -i http://127.0.0.1:${proxyPort}/api/time        # max-age=5 + stale-while-revalidate
  curl -i http://127.0.0.1:${proxyPort}/private         # never stored: Cache-Status says detail=private
  curl -i -H 'Accept-Language: fr' http://127.0.0.1:${proxyPort}/lang   # one variant per language
  curl -s http://127.0.0.1:${adminPort}/stats           # counters
Both servers keep running; press Ctrl-C to stop.`);
