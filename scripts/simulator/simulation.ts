import { createEvictionPolicy, type EvictionPolicyName } from '../../policies/eviction/index.js';
import { nextUses, simulateOpt } from './opt.js';
import { simulatePerfectLfu } from './perfect-lfu.js';
import { replay, type ReplayResult } from './replay.js';
import { traceStats, type Trace, type TraceStats } from './trace.js';

/**
 * The policies under test plus two references computed from the trace: 'opt' (Bélády's offline
 * optimum, the upper bound) and 'perfect-lfu' (exact unbounded frequency counts, the ideal that
 * TinyLFU approximates).
 */
export type SimulatedPolicy = EvictionPolicyName | 'opt' | 'perfect-lfu';

export const REFERENCE_POLICIES = ['opt', 'perfect-lfu'] as const satisfies readonly SimulatedPolicy[];

export interface SimulationRow {
  workload: string;
  /** Cache size as a fraction of the distinct objects' total bytes. */
  cacheFraction: number;
  cacheBytes: number;
  policy: SimulatedPolicy;
  requests: number;
  hits: number;
  hitRatio: number;
  byteHitRatio: number;
  /** Wall time of the replay. */
  seconds: number;
}

export interface WorkloadResult {
  workload: string;
  description: string;
  stats: TraceStats;
  rows: SimulationRow[];
}

/** Cache capacity in bytes for a fraction of the distinct objects' bytes (at least 1 byte). */
function cacheBytesFor(stats: TraceStats, fraction: number): number {
  return Math.max(1, Math.floor(stats.objectBytes * fraction));
}

/** Replays one trace at every size through the references and each policy (fresh instances, default tuning). */
export function simulateTrace(
  trace: Trace,
  fractions: readonly number[],
  policies: readonly EvictionPolicyName[],
): WorkloadResult {
  const stats = traceStats(trace);
  const next = nextUses(trace);
  const rows: SimulationRow[] = [];
  for (const cacheFraction of fractions) {
    const cacheBytes = cacheBytesFor(stats, cacheFraction);
    const row = (policy: SimulatedPolicy, run: () => ReplayResult): void => {
      const started = performance.now();
      const result = run();
      rows.push({
        workload: trace.name,
        cacheFraction,
        cacheBytes,
        policy,
        requests: stats.requests,
        hits: result.hits,
        hitRatio: result.hits / stats.requests,
        byteHitRatio: stats.requestedBytes === 0 ? 0 : result.byteHits / stats.requestedBytes,
        seconds: (performance.now() - started) / 1000,
      });
    };
    row('opt', () => simulateOpt(trace, cacheBytes, next));
    row('perfect-lfu', () => simulatePerfectLfu(trace, cacheBytes));
    for (const name of policies) row(name, () => replay(trace, createEvictionPolicy(name, { maxBytes: cacheBytes })));
  }
  return { workload: trace.name, description: trace.description, stats, rows };
}
