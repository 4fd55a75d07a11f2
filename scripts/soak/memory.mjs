// Resident memory of the edgecache processes, sampled from /proc, and whether it levelled off.
import { readFileSync } from 'node:fs';

/** Anonymous resident memory of a process in bytes (RssAnon: heap, stacks, malloc; not the LMDB file map). */
export function rssAnon(pid) {
  try {
    const match = /^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The child processes of `pid` (the cluster's workers, found through the process tree). */
export function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const NOISE_BYTES = 10 * 1024 * 1024;
const mean = (values) => values.reduce((n, v) => n + v, 0) / values.length;

/**
 * Whether a process's RssAnon levelled off over its samples ([t, bytes], t in ms). The samples are cut in three
 * equal spans of time; with a, b, c the mean of each, it levelled off when the rise from the middle to the last
 * third is at most a quarter of the rise from the first to the middle third, or at most 5 % of the middle third's
 * level, or at most 10 MB (the garbage-collected heap's own swing): growth that slows down (or never was) rather
 * than a steady climb. It also levelled off when the last third is flat in itself (a step to a new level, then
 * none: a purge's high-water mark), its second half within 5 % or 10 MB of its first. A leak slower than ~10 MB per
 * third of the run is below what this can see.
 */
export function levelling(samples) {
  if (samples.length < 6) return { verdict: 'too few samples', levelled: true };
  const t0 = samples[0][0];
  const span = samples[samples.length - 1][0] - t0;
  const third = (k) => samples.filter(([t]) => t - t0 >= (k * span) / 3 && t - t0 <= ((k + 1) * span) / 3).map(([, v]) => v);
  const [a, b, c] = [0, 1, 2].map((k) => mean(third(k)));
  const early = b - a;
  const late = c - b;
  const allowed = Math.max(0.25 * Math.max(early, 0), 0.05 * b, NOISE_BYTES);
  // A level reached by a step (the high-water mark of the largest purge so far, see docs/reliability.md) and then
  // held: the last third itself is flat, its second half no higher than its first by more than the same margin.
  const last = samples.filter(([t]) => t - t0 >= (2 * span) / 3);
  const half = Math.floor(last.length / 2);
  const flatAtEnd = last.length >= 4 && mean(last.slice(half).map(([, v]) => v)) - mean(last.slice(0, half).map(([, v]) => v)) <= Math.max(0.05 * c, NOISE_BYTES);
  return { levelled: late <= allowed || flatAtEnd, flatAtEnd, firstThird: a, middleThird: b, lastThird: c, growthEarly: early, growthLate: late, allowed };
}
