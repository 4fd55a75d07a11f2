import type { GoalCheck } from './goal.js';
import type { SimulatedPolicy, WorkloadResult } from './simulation.js';
import { ZIPF_GOAL_WORKLOADS } from './workloads.js';

const POLICY_TITLES: Record<SimulatedPolicy, string> = {
  opt: 'OPT',
  'perfect-lfu': 'perfect LFU',
  lru: 'LRU',
  lfu: 'LFU',
  fifo: 'FIFO',
  tinylfu: 'TinyLFU',
  s3fifo: 'S3-FIFO',
};

/**
 * One markdown table: a row per workload × cache size, a column per policy with
 * "hit % / byte hit %", then tinylfu's share of LRU's gap to OPT and whether its goal holds.
 */
export function renderMarkdown(
  results: readonly WorkloadResult[],
  policies: readonly SimulatedPolicy[],
  checks: readonly GoalCheck[],
): string {
  const lines: string[] = [];
  for (const result of results) {
    const { stats } = result;
    lines.push(
      `- **${result.workload}**: ${result.description} (${int(stats.requests)} requests, ${int(stats.objects)} distinct objects, ` +
        `${stats.unitSizes ? 'unit sizes' : `${bytes(stats.objectBytes)} distinct`})`,
    );
  }
  lines.push('');
  const columns = ['workload', 'cache', ...policies.map((p) => POLICY_TITLES[p])];
  const showGoal = checks.length > 0;
  if (showGoal) columns.push('gap closed: TinyLFU', 'gap closed: perfect LFU', 'TinyLFU goal');
  lines.push(`| ${columns.join(' | ')} |`);
  lines.push(`|${columns.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`);
  for (const result of results) {
    const fractions = [...new Set(result.rows.map((r) => r.cacheFraction))];
    for (const fraction of fractions) {
      const rows = result.rows.filter((r) => r.cacheFraction === fraction);
      const first = rows[0];
      if (first === undefined) continue;
      const size = result.stats.unitSizes ? `${int(first.cacheBytes)} obj` : bytes(first.cacheBytes);
      const cells = [result.workload, `${percent(fraction, 0)} (${size})`];
      for (const policy of policies) {
        const row = rows.find((r) => r.policy === policy);
        cells.push(row === undefined ? '–' : `${percent(row.hitRatio)} / ${percent(row.byteHitRatio)}`);
      }
      if (showGoal) {
        const check = checks.find((c) => c.workload === result.workload && c.cacheFraction === fraction);
        cells.push(check?.gapClosed == null ? '–' : percent(check.gapClosed, 0));
        cells.push(check?.perfectLfuGapClosed == null ? '–' : percent(check.perfectLfuGapClosed, 0));
        cells.push(check === undefined ? '–' : goalCell(check));
      }
      lines.push(`| ${cells.join(' | ')} |`);
    }
  }
  lines.push('');
  lines.push(
    'Cells are hit ratio / byte hit ratio. Cache sizes are shares of the total bytes of the distinct objects ' +
      '(with unit sizes, the same share of the object count). OPT is Bélády with bypass (size-aware greedy with ' +
      'mixed sizes); perfect LFU keeps exact counts of every key ever seen (unbounded memory, no aging). ' +
      '"Gap closed" is (H − H_LRU) / (H_OPT − H_LRU) on hit ratio.',
  );
  if (showGoal) {
    const zipf = ZIPF_GOAL_WORKLOADS.map((name) => `\`${name}\``).join(', ');
    lines.push(`Goal: on Zipf rows (${zipf}) TinyLFU ≥ LRU and closes ≥ 50% of LRU’s gap to OPT (hit ratio); on other rows TinyLFU ≥ LRU.`);
    const held = checks.filter((c) => c.holds).length;
    lines.push(`TinyLFU goal holds on ${held} of ${checks.length} rows.`);
  }
  return lines.join('\n');
}

function goalCell(check: GoalCheck): string {
  if (check.holds) return 'yes';
  return check.atLeastLru ? '**NO** (< ½ gap)' : '**NO** (< LRU)';
}

function percent(ratio: number, digits = 2): string {
  return `${(ratio * 100).toFixed(digits)}%`;
}

function int(n: number): string {
  return n.toLocaleString('en-US');
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
