#!/usr/bin/env node
// `npm run demo:post`: starts the example embeddings API (scripts/example-embeddings.mjs) and edgecache in front of
// it with --cache-post /v1/, then shows with curl a MISS and a HIT for the same JSON body sent with its keys in
// another order, and a streamed completion replayed from the cache. Leaves both running until Ctrl-C (--exit:
// stop after the show). Ports: origin 3000, proxy 8080, admin 8081 (the next free ones if taken).
import { spawnSync } from 'node:child_process';
import { startDemo } from './demo-support.mjs';

const { originPort, proxyPort, stop } = await startDemo('demo:post', { originScript: 'example-embeddings.mjs', originArgs: ['--delay', '500'], proxyArgs: ['--cache-post', '/v1/'] });

const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
async function show(label, urlPath, body) {
  const url = `http://127.0.0.1:${proxyPort}${urlPath}`;
  console.log(`\n$ curl -s -i ${url} -H 'Content-Type: application/json' -d '${body}'    # ${label}`);
  const started = Date.now();
  if (hasCurl) {
    spawnSync('curl', ['-s', '-i', url, '-H', 'Content-Type: application/json', '-H', 'Authorization: Bearer demo-key', '-d', body], { stdio: 'inherit' });
  } else {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer demo-key' }, body });
    console.log(`HTTP/1.1 ${res.status} ${res.statusText}`);
    for (const [k, v] of res.headers) console.log(`${k}: ${v}`);
    console.log(`\n${await res.text()}`);
  }
  console.log(`\n(${Date.now() - started} ms)`);
}
console.log(`\nedgecache POST-cache demo: embeddings API http://127.0.0.1:${originPort} (500 ms per model call), proxy http://127.0.0.1:${proxyPort}`);
await show('first request: X-Cache: MISS, the model is called', '/v1/embeddings', '{"model":"demo-embed","input":"hello world","dimensions":4}');
await show('same JSON, keys in another order and spaced: X-Cache: HIT, no model call', '/v1/embeddings', '{ "dimensions": 4, "input": "hello world", "model": "demo-embed" }');
await show('a streamed completion: relayed as it arrives, stored once complete', '/v1/completions', '{"prompt":"tokens arrive one by one","stream":true}');
await show('the same completion again: replayed from the cache, byte for byte', '/v1/completions', '{"stream":true,"prompt":"tokens arrive one by one"}');
if (process.argv.includes('--exit')) {
  stop();
  process.exit(0);
}
console.log(`\nBoth servers keep running; press Ctrl-C to stop.`);
