/**
 * Trace simulator for the memory tier's eviction policies: `npm run simulate -- --help`.
 */
import { readTraceFile, TraceFileError } from './simulator/trace-file.js';
import { parseSimulatorArgs, USAGE } from './simulator/cli-args.js';
import { checkGoal } from './simulator/goal.js';
import { REFERENCE_POLICIES, simulateTrace, type WorkloadResult } from './simulator/simulation.js';
import { renderMarkdown } from './simulator/table.js';
import type { Trace } from './simulator/trace.js';
import { WORKLOADS, ZIPF_GOAL_WORKLOADS } from './simulator/workloads.js';

async function main(): Promise<number> {
  const args = parseSimulatorArgs(process.argv.slice(2));
  if ('error' in args) {
    process.stderr.write(`simulate: ${args.error}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const started = performance.now();
  const traces: Array<() => Promise<Trace> | Trace> = [];
  if (args.trace !== undefined) {
    const path = args.trace;
    traces.push(() => readTraceFile(path));
  }
  for (const workload of WORKLOADS) {
    if (args.workloads.includes(workload.name)) traces.push(() => workload.build());
  }
  const results: WorkloadResult[] = [];
  for (const load of traces) {
    let trace: Trace;
    try {
      trace = await load();
    } catch (error) {
      // A --trace path that cannot be opened is a bad flag (2); a file that cannot be parsed is 1.
      if (isNodeError(error) && error.code !== undefined) {
        process.stderr.write(`simulate: cannot read --trace file: ${error.message}\n`);
        return 2;
      }
      process.stderr.write(`simulate: ${error instanceof TraceFileError ? error.message : String(error)}\n`);
      return 1;
    }
    results.push(simulateTrace(trace, args.sizes, args.policies));
  }
  const rows = results.flatMap((r) => r.rows);
  const checks = checkGoal(rows, ZIPF_GOAL_WORKLOADS);
  const seconds = (performance.now() - started) / 1000;
  if (args.json) {
    const workloads = results.map(({ workload, description, stats }) => ({ workload, description, ...stats }));
    process.stdout.write(`${JSON.stringify({ sizes: args.sizes, policies: args.policies, workloads, rows, goal: checks, seconds }, null, 2)}\n`);
  } else {
    process.stdout.write(`${renderMarkdown(results, [...REFERENCE_POLICIES, ...args.policies], checks)}\n`);
    process.stderr.write(`simulated in ${seconds.toFixed(1)} s\n`);
  }
  return 0;
}

function isNodeError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && 'code' in error;
}

process.exitCode = await main();
