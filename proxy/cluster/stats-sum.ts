/**
 * The node's /stats under --workers: each worker's document (admin/process-stats.ts) summed by the cluster
 * primary, with the per-process figures kept apart in `processes`.
 */
import { processMemory } from '../admin/stats.js';

/** Counters that are not summed across workers (the largest is reported). */
const NOT_SUMMED: ReadonlySet<string> = new Set(['uptimeSeconds']);
/**
 * Lower-tier figures that every worker reads from the same place, so they are not summed: the disk tier's
 * from the shared LMDB environment, the Redis tier's from the Redis server. Their other figures (evictions,
 * write failures, queued writes, reads...) are each worker's own and are.
 */
const SHARED_FIGURES: Record<string, ReadonlySet<string>> = {
  disk: new Set(['entries', 'bytes', 'maxBytes', 'usedBytes', 'fileBytes']),
  redis: new Set(['entries', 'bytes', 'maxBytes', 'evictions']),
};

function sumInto(total: Record<string, unknown>, part: Record<string, unknown>, notSummed = NOT_SUMMED): void {
  for (const [key, value] of Object.entries(part)) {
    if (typeof value !== 'number') continue;
    const current = typeof total[key] === 'number' ? (total[key] as number) : 0;
    total[key] = notSummed.has(key) ? Math.max(current, value) : current + value;
  }
}

/** Sums a document of numbers and objects of numbers (the compressor's counters) into `total`. */
function sumNested(total: Record<string, unknown>, part: Record<string, unknown>): void {
  sumInto(total, part, new Set());
  for (const [key, value] of Object.entries(part)) {
    if (typeof value !== 'object' || value === null) continue;
    const into = (total[key] ??= {}) as Record<string, unknown>;
    sumNested(into, value as Record<string, unknown>);
  }
}

/**
 * The node's document from its workers' (an undefined part: a worker that did not answer) and the primary's own
 * counters (purges are counted there).
 */
export function sumWorkerStats(parts: ReadonlyArray<Record<string, unknown> | undefined>, primary: Record<string, number>, workers: number): Record<string, unknown> {
  const total: Record<string, unknown> = { workers };
  const memory: Record<string, unknown> = { name: 'memory' };
  const processes: Array<Record<string, unknown>> = [];
  const lower = new Map<string, Record<string, unknown>>();
  const compression: Record<string, unknown> = {};
  for (const part of parts) {
    if (part === undefined) continue;
    const { tiers, pid, compression: ownCompression, ...counters } = part as {
      tiers?: Record<string, Record<string, unknown>>;
      pid?: number;
      compression?: Record<string, unknown>;
    } & Record<string, unknown>;
    if (ownCompression !== undefined) sumNested(compression, ownCompression);
    processes.push({
      pid,
      hits: counters.hits,
      misses: counters.misses,
      originFetches: counters.originFetches,
      coalesced: counters.coalesced,
      eventLoopDelayMs: counters.eventLoopDelayMs,
      memory: counters.memory,
    });
    sumInto(total, counters);
    if (tiers?.memory) {
      sumInto(memory, tiers.memory);
      memory.policy = tiers.memory.policy;
    }
    for (const [name, figures] of Object.entries(tiers ?? {})) {
      if (name === 'memory') continue;
      let sum = lower.get(name);
      if (sum === undefined) lower.set(name, (sum = { name }));
      sumInto(sum, figures, SHARED_FIGURES[name] ?? NOT_SUMMED);
    }
  }
  sumInto(total, primary);
  // Memory is per process: the workers' in `processes`, the primary's own here.
  return {
    ...total,
    memory: processMemory(),
    tiers: { memory, ...Object.fromEntries(lower) },
    ...(Object.keys(compression).length > 0 && { compression }),
    processes,
  };
}
