import { EVICTION_POLICY_NAMES, isEvictionPolicyName, type EvictionPolicyName } from '../../policies/eviction/index.js';
import { WORKLOAD_NAMES } from './workloads.js';

export interface SimulatorArgs {
  help: boolean;
  json: boolean;
  /** Trace file to replay, if any. */
  trace: string | undefined;
  /** Built-in workloads to run (empty when only a trace file was asked for). */
  workloads: string[];
  /** Cache sizes as fractions of the distinct objects' total bytes. */
  sizes: number[];
  policies: EvictionPolicyName[];
}

export const DEFAULT_SIZES: readonly number[] = [0.01, 0.05, 0.1];

export const USAGE = `Usage: npm run simulate -- [options]

Replays request traces through every eviction policy in policies/eviction at several cache
sizes and prints hit ratio and byte hit ratio next to Bélády's offline optimum (OPT).

Options:
  --trace FILE        replay a file of "key size" lines (instead of the built-in workloads,
                      unless --workloads is also given)
  --workloads a,b     built-in workloads to run (default: all): ${WORKLOAD_NAMES.join(', ')}
  --sizes f,g         cache sizes as fractions of the distinct objects' bytes (default: ${DEFAULT_SIZES.join(',')})
  --policies a,b      policies to compare (default: all): ${EVICTION_POLICY_NAMES.join(', ')}
  --json              print machine-readable JSON instead of the markdown table
  --help              show this help

Exit status: 0 on success, 2 for bad usage (including a --trace file that cannot be opened),
1 for a malformed trace file.
`;

/** Parses argv (without node and script). Returns an error message (one line) for bad usage. */
export function parseSimulatorArgs(argv: readonly string[]): SimulatorArgs | { error: string } {
  const args: SimulatorArgs = {
    help: false,
    json: false,
    trace: undefined,
    workloads: [],
    sizes: [...DEFAULT_SIZES],
    policies: [...EVICTION_POLICY_NAMES],
  };
  let workloadsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) return { error: `unexpected argument '${arg}' (see --help)` };
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    if (flag === '--help' || flag === '--json') {
      if (inline !== undefined) return { error: `${flag} takes no value` };
      if (flag === '--help') args.help = true;
      else args.json = true;
      continue;
    }
    if (!['--trace', '--workloads', '--sizes', '--policies'].includes(flag)) {
      return { error: `unknown option '${flag}' (see --help)` };
    }
    const value = inline ?? argv[++i];
    if (value === undefined || value === '' || (inline === undefined && value.startsWith('--'))) {
      return { error: `${flag} needs a value` };
    }
    switch (flag) {
      case '--trace':
        args.trace = value;
        break;
      case '--workloads': {
        const names = splitList(value);
        if (names.length === 0) return { error: `${flag} needs at least one name` };
        const unknown = names.find((name) => !WORKLOAD_NAMES.includes(name));
        if (unknown !== undefined) return { error: `unknown workload '${unknown}' (known: ${WORKLOAD_NAMES.join(', ')})` };
        args.workloads = names;
        workloadsGiven = true;
        break;
      }
      case '--sizes': {
        const parts = splitList(value);
        const sizes = parts.map(Number);
        const bad = parts.find((_, k) => !((sizes[k] as number) > 0 && (sizes[k] as number) <= 1));
        if (bad !== undefined || sizes.length === 0) return { error: `--sizes takes fractions in (0, 1], got '${bad ?? value}'` };
        args.sizes = [...new Set(sizes)].sort((a, b) => a - b);
        break;
      }
      case '--policies': {
        const names = splitList(value);
        if (names.length === 0) return { error: `${flag} needs at least one name` };
        const unknown = names.find((name) => !isEvictionPolicyName(name));
        if (unknown !== undefined) return { error: `unknown policy '${unknown}' (known: ${EVICTION_POLICY_NAMES.join(', ')})` };
        // Keep the canonical order so tables line up across runs.
        args.policies = EVICTION_POLICY_NAMES.filter((name) => names.includes(name));
        break;
      }
    }
  }
  if (!workloadsGiven && args.trace === undefined) args.workloads = [...WORKLOAD_NAMES];
  return args;
}

function splitList(value: string): string[] {
  return [...new Set(value.split(',').map((part) => part.trim()).filter((part) => part !== ''))];
}
