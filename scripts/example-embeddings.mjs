#!/usr/bin/env node
// A tiny embeddings API for the POST-cache demo (`npm run demo:post`): POST /v1/embeddings with a JSON body
// {"model": "...", "input": "text" | ["text", ...], "dimensions": 8} answers deterministic vectors derived from
// the text (SHA-256), after a delay standing in for the model (--delay MS, default 300). POST /v1/completions
// with {"prompt": "...", "stream": true} streams the prompt's words back as server-sent events.
// Usage: node scripts/example-embeddings.mjs [PORT] [--delay MS]
import { createHash } from 'node:crypto';
import http from 'node:http';

const args = process.argv.slice(2);
const delayAt = args.indexOf('--delay');
const delay = delayAt === -1 ? 300 : Number(args[delayAt + 1]);
const port = Number(args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== '--delay') ?? 3000);
let calls = 0;

function vector(text, dimensions) {
  const digest = createHash('sha256').update(text).digest();
  return Array.from({ length: dimensions }, (_, i) => Math.round(((digest[i % 32] ?? 0) / 127.5 - 1) * 1e6) / 1e6);
}

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
    } catch {
      return answer(res, 400, { error: 'body is not JSON' });
    }
    calls++;
    if (req.method === 'POST' && req.url === '/v1/embeddings') {
      const inputs = Array.isArray(body.input) ? body.input : [String(body.input ?? '')];
      const dimensions = Math.min(Math.max(Number(body.dimensions) || 8, 1), 4096);
      setTimeout(() => {
        answer(res, 200, {
          object: 'list',
          model: body.model ?? 'demo-embed',
          data: inputs.map((text, index) => ({ object: 'embedding', index, embedding: vector(String(text), dimensions) })),
          usage: { model_calls: calls },
        });
      }, delay);
      return;
    }
    if (req.method === 'POST' && req.url === '/v1/completions' && body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const words = String(body.prompt ?? '').split(/\s+/).filter(Boolean);
      let i = 0;
      const timer = setInterval(() => {
        if (i < words.length) {
          res.write(`data: ${JSON.stringify({ token: words[i++] })}\n\n`);
          return;
        }
        clearInterval(timer);
        res.end('data: [DONE]\n\n');
      }, Math.max(delay / 4, 10));
      return;
    }
    answer(res, 404, { error: 'POST /v1/embeddings or /v1/completions (stream: true)' });
  });
});
server.listen(port, '127.0.0.1', () => console.log(`example embeddings API on http://127.0.0.1:${port} (model delay ${delay} ms)`));
