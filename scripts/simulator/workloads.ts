import { mulberry32 } from './prng.js';
import type { Trace } from './trace.js';
import { ZipfSampler } from './zipf.js';

/** A built-in synthetic workload; `build` is deterministic (fixed seed). */
export interface Workload {
  readonly name: string;
  readonly description: string;
  build(): Trace;
}

const OBJECTS = 100_000;
const REQUESTS = 1_000_000;
const SEED = 0x5eed;

/** Workloads whose rows the simulator checks against the tinylfu goal (closing half of LRU's gap to OPT). */
export const ZIPF_GOAL_WORKLOADS: readonly string[] = ['zipf-0.6', 'zipf-0.8', 'zipf-1.0'];

export const WORKLOADS: readonly Workload[] = [
  workload('zipf-0.6', `Zipf α=0.6 over ${fmt(OBJECTS)} keys`, () => zipf(0.6)),
  workload('zipf-0.8', `Zipf α=0.8 over ${fmt(OBJECTS)} keys`, () => zipf(0.8)),
  workload('zipf-1.0', `Zipf α=1.0 over ${fmt(OBJECTS)} keys`, () => zipf(1.0)),
  workload(
    'zipf-scan',
    `Zipf α=0.8 over ${fmt(OBJECTS)} keys; after every 50,000 of its requests, a scan of 5,000 keys never requested again`,
    () => zipfWithScans(0.8, 50_000, 5_000),
  ),
  workload(
    'loop',
    'a loop over 5,000 keys, 40 passes, with 85,910 one-off keys interleaved at random (30% of requests): ' +
      'the loop is 10% larger than the 5% cache',
    () => loopWithOneOffs(5_000, 40, 85_910),
  ),
  workload(
    'shift',
    `Zipf α=0.8 over ${fmt(OBJECTS)} keys; halfway, the ranks move to the other half of the keys (the new hot set was cold)`,
    () => popularityShift(0.8),
  ),
  workload(
    'zipf-pareto',
    `the zipf-0.8 requests with per-key sizes drawn from Pareto α=1.2 (from 1 KiB, capped at 16 MiB)`,
    () => zipfParetoSizes(0.8),
  ),
];

export const WORKLOAD_NAMES: readonly string[] = WORKLOADS.map((w) => w.name);

/** Object ids per request (any numbering) and each id's size. */
interface RawTrace {
  ids: Int32Array;
  sizeOf: (id: number) => number;
}

function workload(name: string, description: string, generate: () => RawTrace): Workload {
  return { name, description, build: () => compact(name, description, generate()) };
}

const unitSize = (): number => 1;

function zipf(alpha: number): RawTrace {
  const random = mulberry32(SEED + Math.round(alpha * 10));
  const sampler = new ZipfSampler(OBJECTS, alpha);
  const ids = new Int32Array(REQUESTS);
  for (let i = 0; i < REQUESTS; i++) ids[i] = scatter(sampler.sample(random()), OBJECTS);
  return { ids, sizeOf: unitSize };
}

function zipfWithScans(alpha: number, every: number, scanLength: number): RawTrace {
  const random = mulberry32(SEED + 1);
  const sampler = new ZipfSampler(OBJECTS, alpha);
  const scans = Math.floor(REQUESTS / every);
  const raw = new Int32Array(REQUESTS + scans * scanLength);
  let next = OBJECTS;
  let n = 0;
  for (let i = 0; i < REQUESTS; i++) {
    raw[n++] = scatter(sampler.sample(random()), OBJECTS);
    if ((i + 1) % every === 0) for (let s = 0; s < scanLength; s++) raw[n++] = next++;
  }
  return { ids: raw, sizeOf: unitSize };
}

function loopWithOneOffs(loopLength: number, passes: number, oneOffs: number): RawTrace {
  const random = mulberry32(SEED + 2);
  const loopRequests = loopLength * passes;
  const total = loopRequests + oneOffs;
  const raw = new Int32Array(total);
  // Choose which positions are one-offs by selection sampling, keeping the loop order intact.
  let remainingOneOffs = oneOffs;
  let loopPosition = 0;
  let nextOneOff = loopLength;
  for (let i = 0; i < total; i++) {
    if (random() * (total - i) < remainingOneOffs) {
      raw[i] = nextOneOff++;
      remainingOneOffs--;
    } else {
      raw[i] = loopPosition;
      loopPosition = (loopPosition + 1) % loopLength;
    }
  }
  return { ids: raw, sizeOf: unitSize };
}

function popularityShift(alpha: number): RawTrace {
  const random = mulberry32(SEED + 3);
  const sampler = new ZipfSampler(OBJECTS, alpha);
  const raw = new Int32Array(REQUESTS);
  const half = REQUESTS / 2;
  for (let i = 0; i < REQUESTS; i++) {
    const rank = sampler.sample(random());
    // The second half maps ranks onto keys offset by half the key space, so its hot set was cold before.
    raw[i] = i < half ? scatter(rank, OBJECTS) : scatter((rank + OBJECTS / 2) % OBJECTS, OBJECTS);
  }
  return { ids: raw, sizeOf: unitSize };
}

function zipfParetoSizes(alpha: number): RawTrace {
  const { ids } = zipf(alpha);
  // Sizes are drawn per object independently of popularity, from their own stream.
  const sizeRandom = mulberry32(SEED + 5);
  const sizes = new Float64Array(OBJECTS);
  for (let id = 0; id < OBJECTS; id++) {
    const pareto = 1024 / Math.pow(1 - sizeRandom(), 1 / 1.2);
    sizes[id] = Math.min(16 * 1024 * 1024, Math.round(pareto));
  }
  return { ids, sizeOf: (id) => sizes[id] as number };
}

/**
 * A fixed bijection of 0..n-1, so popularity rank and key id are unrelated (hot keys are not
 * "/o/0", "/o/1", ...). Multiplying by a constant coprime to n permutes the residues.
 */
function scatter(rank: number, n: number): number {
  return (rank * 7919 + 13) % n;
}

/** Renumbers objects by first appearance so the trace holds only requested objects. */
function compact(name: string, description: string, { ids: raw, sizeOf }: RawTrace): Trace {
  const ids = new Map<number, number>();
  const keys: string[] = [];
  const sizes: number[] = [];
  const requests = new Int32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const rawId = raw[i] as number;
    let id = ids.get(rawId);
    if (id === undefined) {
      id = keys.length;
      ids.set(rawId, id);
      keys.push(`/o/${rawId}`);
      sizes.push(sizeOf(rawId));
    }
    requests[i] = id;
  }
  return { name, description, requests, sizes: Float64Array.from(sizes), keys };
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
