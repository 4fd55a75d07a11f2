/**
 * Gets `process.nextTick` optimized by V8 before anything else in the process calls it. node:http and streams call
 * it several times per request (after each write, at a request's end, when a response finishes), so its cost is
 * part of every hit.
 *
 * Why: nextTick builds each tick as an object literal whose `callback` and `args` fields V8 tracks by the kinds of
 * value stored. At start-up the libraries edgecache loads (Fastify's plugin loader, undici, pino, lmdb-js) call
 * it with many kinds of callback and argument list while it is still interpreted, and its inline caches for those
 * two fields end up megamorphic: from then on V8 compiles every tick's creation as calls into its runtime. That
 * cost about 6 % of a hit's CPU (nextTick at 6.4–7.0 % of the process's profile under wrk with 10,000 hot keys,
 * against 0.8–1.0 % in a bare node:http server); optimized early, with one kind of call, the caches stay
 * monomorphic and it is back at 0.8–1.0 % (docs/benchmarks.md). About 20,000 calls get it optimized; they cost a
 * few milliseconds, once, before the modules load.
 *
 * Imported first by the command (cli.ts), so that it runs before any other module's code.
 */
function tick(): void {}

const WARMUP_CALLS = 20_000;

for (let i = 0; i < WARMUP_CALLS; i++) process.nextTick(tick);
