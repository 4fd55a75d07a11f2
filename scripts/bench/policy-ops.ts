/**
 * Micro-benchmark of the eviction policies' operations against lru-cache: `npm run bench:policies`.
 *
 * Each run replays a Zipf trace through a fresh instance of every subject, then times two pure
 * phases on the warm cache: hits only (`recordAccess` / lru-cache `get` on resident keys) and
 * misses only (`offer` / `set` of never-seen keys, each evicting). Reports medians over the runs,
 * in ns per operation and as a ratio to lru-cache in the same run.
 *
 * Every measurement runs in its own worker thread (own JIT state): the memory tier uses one policy
 * per process, and mixing five policy classes in one isolate would make the shared base-class call
 * sites megamorphic, which production never sees.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { LRUCache } from 'lru-cache';
import {
  createEvictionPolicy,
  EVICTION_POLICY_NAMES,
  isEvictionPolicyName,
  type EvictionPolicy,
} from '../../policies/eviction/index.js';
import { mulberry32 } from '../simulator/prng.js';
import { ZipfSampler } from '../simulator/zipf.js';

const KEYS = 100_000;
const REPLAY_REQUESTS = 400_000;
const HIT_OPS = 400_000;
const MISS_OPS = 100_000;
const CACHE_SHARE = 0.1;
const USAGE = `Usage: npm run bench:policies -- [--runs N]

Times recordAccess (hits) and offer (misses) of every eviction policy in a Zipf(0.8) replay over
${KEYS.toLocaleString('en-US')} keys with sizes of 1-64 KiB, the cache holding ${CACHE_SHARE * 100}% of the bytes,
as a ratio to lru-cache's get/set (maxSize + sizeCalculation). Default 7 runs; medians are printed.
`;

/** What one subject exposes to the timed loops. */
interface Subject {
  readonly name: string;
  /** One request of the replay: a hit, or a miss followed by an insert. */
  replayRequest(key: string, size: number): void;
  has(key: string): boolean;
  hit(key: string): void;
  miss(key: string, size: number): void;
}

interface Timing {
  hitNs: number;
  missNs: number;
  replayNs: number;
}

function policySubject(policy: EvictionPolicy): Subject {
  const evicted: string[] = [];
  return {
    name: policy.name,
    replayRequest(key, size) {
      if (policy.has(key)) {
        policy.recordAccess(key);
      } else {
        policy.offer(key, size, Infinity, evicted);
        evicted.length = 0;
      }
    },
    has: (key) => policy.has(key),
    hit: (key) => policy.recordAccess(key),
    miss(key, size) {
      policy.offer(key, size, Infinity, evicted);
      evicted.length = 0;
    },
  };
}

function lruCacheSubject(maxBytes: number): Subject {
  const cache = new LRUCache<string, number>({ maxSize: maxBytes, sizeCalculation: (size) => size });
  return {
    name: 'lru-cache',
    replayRequest(key, size) {
      if (cache.get(key) === undefined) cache.set(key, size);
    },
    has: (key) => cache.has(key),
    hit: (key) => {
      cache.get(key);
    },
    miss: (key, size) => {
      cache.set(key, size);
    },
  };
}

interface Workload {
  keys: string[];
  sizes: Float64Array;
  replay: Int32Array;
  hits: Int32Array;
  missKeys: string[];
  missSizes: Float64Array;
  maxBytes: number;
}

function buildWorkload(): Workload {
  const random = mulberry32(0xbe4c);
  const keys = Array.from({ length: KEYS }, (_, id) => `/assets/${id.toString(36)}/object`);
  // Log-uniform 1-64 KiB: a spread of sizes, so byte accounting does real work.
  const sizes = Float64Array.from({ length: KEYS }, () => Math.round(1024 * Math.pow(64, random())));
  const zipf = new ZipfSampler(KEYS, 0.8);
  const replay = Int32Array.from({ length: REPLAY_REQUESTS }, () => zipf.sample(random()));
  const hits = Int32Array.from({ length: HIT_OPS }, () => zipf.sample(random()));
  const missKeys = Array.from({ length: MISS_OPS }, (_, i) => `/miss/${i.toString(36)}/object`);
  const missSizes = Float64Array.from({ length: MISS_OPS }, () => Math.round(1024 * Math.pow(64, random())));
  let totalBytes = 0;
  for (const size of sizes) totalBytes += size;
  return { keys, sizes, replay, hits, missKeys, missSizes, maxBytes: Math.floor(totalBytes * CACHE_SHARE) };
}

function timeSubject(subject: Subject, load: Workload): Timing {
  const { keys, sizes } = load;
  let started = process.hrtime.bigint();
  for (const id of load.replay) subject.replayRequest(keys[id] as string, sizes[id] as number);
  const replayNs = Number(process.hrtime.bigint() - started) / load.replay.length;

  // Only keys resident now, so every timed call is a hit (a hit never evicts).
  const hitKeys: string[] = [];
  for (const id of load.hits) {
    const key = keys[id] as string;
    if (subject.has(key)) hitKeys.push(key);
  }
  started = process.hrtime.bigint();
  for (const key of hitKeys) subject.hit(key);
  const hitNs = Number(process.hrtime.bigint() - started) / Math.max(1, hitKeys.length);

  started = process.hrtime.bigint();
  for (let i = 0; i < load.missKeys.length; i++) subject.miss(load.missKeys[i] as string, load.missSizes[i] as number);
  const missNs = Number(process.hrtime.bigint() - started) / load.missKeys.length;
  return { hitNs, missNs, replayNs };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function parseRuns(argv: readonly string[]): number | { error: string } | 'help' {
  let runs = 7;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help') return 'help';
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (flag !== '--runs') return { error: `unknown option '${arg}' (see --help)` };
    const value = Number(inline ?? argv[++i]);
    if (!Number.isInteger(value) || value < 1) return { error: '--runs takes a positive integer' };
    runs = value;
  }
  return runs;
}

/** Worker side: warm up on one instance, then time a fresh one. */
function measureInWorker(name: string): Timing {
  const load = buildWorkload();
  timeSubject(makeSubject(name, load.maxBytes), load);
  return timeSubject(makeSubject(name, load.maxBytes), load);
}

function makeSubject(name: string, maxBytes: number): Subject {
  return isEvictionPolicyName(name) ? policySubject(createEvictionPolicy(name, { maxBytes })) : lruCacheSubject(maxBytes);
}

function measure(name: string): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { subject: name } });
    worker.once('message', (timing: Timing) => resolve(timing));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`benchmark worker for ${name} exited with code ${code}`));
    });
  });
}

async function main(): Promise<number> {
  const parsed = parseRuns(process.argv.slice(2));
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (typeof parsed !== 'number') {
    process.stderr.write(`bench:policies: ${parsed.error}\n`);
    return 2;
  }
  const names = ['lru-cache', ...EVICTION_POLICY_NAMES];
  const timings = new Map<string, Timing[]>(names.map((name) => [name, []]));
  for (let run = 0; run < parsed; run++) {
    // Rotate the order so drift (thermal, other load) does not always favour the same subject.
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + run) % names.length] as string;
      timings.get(name)?.push(await measure(name));
    }
  }
  const medians = new Map<string, Timing>();
  for (const [name, list] of timings) {
    medians.set(name, {
      hitNs: median(list.map((t) => t.hitNs)),
      missNs: median(list.map((t) => t.missNs)),
      replayNs: median(list.map((t) => t.replayNs)),
    });
  }
  const base = medians.get('lru-cache') as Timing;
  const lines = [
    `Zipf α=0.8, ${KEYS.toLocaleString('en-US')} keys of 1-64 KiB, cache = ${CACHE_SHARE * 100}% of bytes; medians of ${parsed} runs (Node ${process.version}).`,
    '',
    '| policy | hit: ns/op | × lru-cache get | miss: ns/op | × lru-cache set | replay: ns/request | × lru-cache |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const name of names) {
    const t = medians.get(name) as Timing;
    const label = name === 'lru-cache' ? 'lru-cache (get / set)' : name;
    lines.push(
      `| ${label} | ${t.hitNs.toFixed(0)} | ${(t.hitNs / base.hitNs).toFixed(2)} | ${t.missNs.toFixed(0)} | ${(t.missNs / base.missNs).toFixed(2)} | ` +
        `${t.replayNs.toFixed(0)} | ${(t.replayNs / base.replayNs).toFixed(2)} |`,
    );
  }
  lines.push('');
  lines.push(
    'hit = recordAccess on a resident key (lru-cache: get); miss = offer of a new key into the full cache, with its ' +
      'evictions (lru-cache: set); replay = has + recordAccess or offer per request (lru-cache: get, then set on a miss).',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

if (isMainThread) {
  process.exitCode = await main();
} else {
  const { subject } = workerData as { subject: string };
  parentPort?.postMessage(measureInWorker(subject));
}
