import type { SimulationRow } from './simulation.js';

/**
 * The target for the default policy: tinylfu never below LRU, and on the Zipf workloads closing
 * at least half of LRU's gap to OPT: (H − H_LRU) ≥ 0.5 × (H_OPT − H_LRU), on object hit ratio.
 */
export interface GoalCheck {
  workload: string;
  cacheFraction: number;
  /** Whether the half-gap condition applies (a Zipf workload). */
  zipf: boolean;
  opt: number;
  lru: number;
  tinylfu: number;
  /** Perfect LFU's hit ratio, when it was simulated. */
  perfectLfu: number | null;
  /** (H − H_LRU) / (H_OPT − H_LRU); null when OPT does not beat LRU. */
  gapClosed: number | null;
  /** The same for perfect LFU: what an ideal frequency policy reaches on this row. */
  perfectLfuGapClosed: number | null;
  atLeastLru: boolean;
  holds: boolean;
}

/** Checks each (workload, size) that has opt, lru and tinylfu rows. */
export function checkGoal(rows: readonly SimulationRow[], zipfWorkloads: readonly string[]): GoalCheck[] {
  const checks: GoalCheck[] = [];
  const groups = new Map<string, SimulationRow[]>();
  for (const row of rows) {
    const id = `${row.workload}\u0000${row.cacheFraction}`;
    const group = groups.get(id);
    if (group === undefined) groups.set(id, [row]);
    else group.push(row);
  }
  for (const group of groups.values()) {
    const opt = group.find((r) => r.policy === 'opt');
    const lru = group.find((r) => r.policy === 'lru');
    const tinylfu = group.find((r) => r.policy === 'tinylfu');
    if (opt === undefined || lru === undefined || tinylfu === undefined) continue;
    const zipf = zipfWorkloads.includes(tinylfu.workload);
    const gap = opt.hitRatio - lru.hitRatio;
    const gapClosed = gap > 0 ? (tinylfu.hitRatio - lru.hitRatio) / gap : null;
    const perfect = group.find((r) => r.policy === 'perfect-lfu');
    const perfectLfuGapClosed = gap > 0 && perfect !== undefined ? (perfect.hitRatio - lru.hitRatio) / gap : null;
    const atLeastLru = tinylfu.hits >= lru.hits;
    const closesHalf = tinylfu.hits - lru.hits >= 0.5 * (opt.hits - lru.hits);
    checks.push({
      workload: tinylfu.workload,
      cacheFraction: tinylfu.cacheFraction,
      zipf,
      opt: opt.hitRatio,
      lru: lru.hitRatio,
      tinylfu: tinylfu.hitRatio,
      perfectLfu: perfect?.hitRatio ?? null,
      gapClosed,
      perfectLfuGapClosed,
      atLeastLru,
      holds: atLeastLru && (!zipf || closesHalf),
    });
  }
  return checks;
}
