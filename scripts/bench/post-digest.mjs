#!/usr/bin/env node
// `npm run bench:post-digest`: what the POST cache key costs per request on a 100 KiB JSON body (an embeddings
// request with a long input array), in microseconds: canonical JSON + SHA-256 (bodyDigest), against SHA-256 of
// the bytes alone and JSON.parse alone for scale. Runs for a few seconds; reads the built dist/.
import { createHash } from 'node:crypto';
import { bodyDigest } from '../../dist/policies/http/post-key.js';

const inputs = [];
let size = 0;
for (let i = 0; size < 100 * 1024; i++) {
  const text = `sentence number ${i} about caching inference APIs, with unicode \u00e9\u4e2d and an "escaped" quote`;
  inputs.push(text);
  size += text.length + 4;
}
const text = JSON.stringify({ model: 'text-embedding-3-small', dimensions: 256, user: 'u-1', input: inputs }, null, 1);
const body = Buffer.from(text);
const ignore = new Set(['user']);

function measure(label, fn) {
  for (let i = 0; i < 50; i++) fn(); // warm up
  const rounds = 300;
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  for (let i = 0; i < rounds; i++) fn();
  const used = process.cpuUsage(cpu);
  const wall = Number(process.hrtime.bigint() - started) / 1000 / rounds;
  // CPU time is what the request costs; wall time also counts waiting for a core on a loaded machine.
  const us = (used.user + used.system) / rounds;
  console.log(`${label.padEnd(48)} ${us.toFixed(1).padStart(8)} µs CPU  (${wall.toFixed(1)} µs wall)`);
  return us;
}

console.log(`body: ${(body.length / 1024).toFixed(1)} KiB of JSON (${inputs.length} input strings)`);
measure('bodyDigest (canonical JSON + SHA-256)', () => bodyDigest(body, 'application/json', ignore));
measure('bodyDigest, as text/plain (SHA-256 only)', () => bodyDigest(body, 'text/plain', ignore));
measure('SHA-256 of the bytes (node:crypto)', () => createHash('sha256').update(body).digest('base64url'));
measure('JSON.parse of the body (for scale)', () => JSON.parse(body.toString()));
