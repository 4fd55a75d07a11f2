/**
 * Turns off V8's memory reducer in the edgecache process (and its workers, which run this command too).
 *
 * Why: the memory reducer starts a full mark-compact when it judges the process idle, and it judges by the rate
 * of allocation. A hit path that allocates almost nothing per response (hit-path.ts) looks idle to it under full
 * load: serving 2,048 URLs of 16 KiB from the disk tier (`--memory-max 1mb`, wrk with 64 connections), it ran a
 * mark-compact about every second, each a 5–15 ms pause of the event loop plus some 50 ms of concurrent marking
 * on the same CPU: the disk hits' p99 was 20–24 ms in the runs where it did that, against 7–9 ms without it, and
 * memory hits' p99 5.6–12.4 ms against 4.3–4.7 (docs/benchmarks.md "The memory reducer"). Without it, the heap is still collected
 * whenever it reaches V8's limits, which is what a server under load wants; what an idle edgecache no longer does
 * is shrink its heap by itself after a burst.
 *
 * An explicit `node --memory-reducer` on the command line (before the script) wins. Imported by the command
 * (cli.ts) before the other modules.
 */
import v8 from 'node:v8';

if (!process.execArgv.includes('--memory-reducer')) v8.setFlagsFromString('--no-memory-reducer');
