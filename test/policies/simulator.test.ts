import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LruPolicy } from '../../policies/eviction/lru.js';
import { DEFAULT_SIZES, parseSimulatorArgs } from '../../scripts/simulator/cli-args.js';
import { checkGoal } from '../../scripts/simulator/goal.js';
import { replay } from '../../scripts/simulator/replay.js';
import { simulateTrace, type SimulationRow } from '../../scripts/simulator/simulation.js';
import { renderMarkdown } from '../../scripts/simulator/table.js';
import { TraceBuilder, traceStats } from '../../scripts/simulator/trace.js';
import { readTraceFile, TraceFileError } from '../../scripts/simulator/trace-file.js';
import { WORKLOAD_NAMES, WORKLOADS } from '../../scripts/simulator/workloads.js';

const scratch = mkdtempSync(join(tmpdir(), 'edgecache-sim-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('parseSimulatorArgs', () => {
  it('defaults to every workload, size and policy', () => {
    expect(parseSimulatorArgs([])).toEqual({
      help: false,
      json: false,
      trace: undefined,
      workloads: [...WORKLOAD_NAMES],
      sizes: [...DEFAULT_SIZES],
      policies: ['lru', 'lfu', 'fifo', 'tinylfu', 's3fifo'],
    });
  });

  it('reads lists in either flag form and keeps the canonical policy order', () => {
    expect(parseSimulatorArgs(['--sizes', '0.1,0.02', '--policies=tinylfu,lru', '--workloads', 'loop', '--json'])).toMatchObject({
      sizes: [0.02, 0.1],
      policies: ['lru', 'tinylfu'],
      workloads: ['loop'],
      json: true,
    });
  });

  it('replays only the trace file unless workloads are named too', () => {
    expect(parseSimulatorArgs(['--trace', 'x.txt'])).toMatchObject({ trace: 'x.txt', workloads: [] });
    expect(parseSimulatorArgs(['--trace', 'x.txt', '--workloads', 'shift'])).toMatchObject({ trace: 'x.txt', workloads: ['shift'] });
  });

  it.each([
    [['--bogus'], "unknown option '--bogus' (see --help)"],
    [['loop'], "unexpected argument 'loop' (see --help)"],
    [['--trace'], '--trace needs a value'],
    [['--sizes', '--json'], '--sizes needs a value'],
    [['--sizes', '0'], "--sizes takes fractions in (0, 1], got '0'"],
    [['--sizes', '0.1,abc'], "--sizes takes fractions in (0, 1], got 'abc'"],
    [['--sizes', '1.5'], "--sizes takes fractions in (0, 1], got '1.5'"],
    [['--policies', 'lru,mru'], "unknown policy 'mru' (known: lru, lfu, fifo, tinylfu, s3fifo)"],
    [['--workloads', ','], '--workloads needs at least one name'],
    [['--json=yes'], '--json takes no value'],
  ])('rejects %j with one line', (argv, error) => {
    expect(parseSimulatorArgs(argv)).toEqual({ error });
    expect(error).not.toContain('\n');
  });
});

describe('readTraceFile', () => {
  it('reads "key size" lines, skipping blanks and comments; an object keeps its largest size', async () => {
    const path = join(scratch, 'trace.txt');
    writeFileSync(path, '# a comment\n/a 100\n\n/b -\n/a 40\n  /c\t7  \n');
    const trace = await readTraceFile(path);
    expect(Array.from(trace.requests)).toEqual([0, 1, 0, 2]);
    expect(trace.keys).toEqual(['/a', '/b', '/c']);
    expect(Array.from(trace.sizes)).toEqual([100, 1, 7]);
  });

  it('names the line of a malformed entry', async () => {
    const path = join(scratch, 'bad.txt');
    writeFileSync(path, '/a 1\n/b 2\n/c lots\n');
    await expect(readTraceFile(path)).rejects.toThrow(TraceFileError);
    await expect(readTraceFile(path)).rejects.toThrow(`${path}:3: size must be a number of bytes, got "lots"`);
    writeFileSync(path, '/a 1 extra\n');
    await expect(readTraceFile(path)).rejects.toThrow(`${path}:1: expected "key size"`);
  });
});

describe('the access-log one-liner in docs/eviction.md', () => {
  it('turns combined and common log lines into "key size" lines', () => {
    const docs = readFileSync(new URL('../../docs/eviction.md', import.meta.url), 'utf8');
    const line = docs.split('\n').find((l) => l.startsWith("awk -F'\"'"));
    expect(line).toBeDefined();
    const command = (line as string).replace(/\s+access\.log\s*>\s*trace\.txt\s*$/, '');
    const log = [
      '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08"',
      '10.0.0.2 - - [10/Oct/2000:13:55:37 -0700] "GET /index.html?lang=en HTTP/1.1" 304 -',
      '10.0.0.3 - - [10/Oct/2000:13:55:38 -0700] "POST /api/login HTTP/1.1" 200 512 "-" "curl/8.0"',
    ].join('\n');
    const output = execFileSync('sh', ['-c', command], { input: `${log}\n`, encoding: 'utf8' });
    expect(output).toBe('/apache_pb.gif 2326\n/index.html?lang=en 0\n');
  });
});

describe('replay and simulateTrace', () => {
  const builder = new TraceBuilder();
  for (const key of ['a', 'b', 'a', 'c', 'a', 'b']) builder.add(key, 1);
  const trace = builder.build('tiny', 'a b a c a b');

  it('counts hits the way the memory tier drives a policy', () => {
    expect(replay(trace, new LruPolicy({ maxBytes: 2 }))).toEqual({ hits: 2, byteHits: 2 });
  });

  it('runs the references and every policy at every size', () => {
    const result = simulateTrace(trace, [0.5, 1], ['lru', 'tinylfu']);
    expect(result.stats).toEqual({ requests: 6, objects: 3, objectBytes: 3, requestedBytes: 6, unitSizes: true });
    expect(result.rows.map((r) => `${r.cacheFraction}:${r.policy}:${r.hits}`)).toEqual([
      '0.5:opt:2',
      '0.5:perfect-lfu:2',
      '0.5:lru:0',
      '0.5:tinylfu:2',
      '1:opt:3',
      '1:perfect-lfu:3',
      '1:lru:3',
      '1:tinylfu:3',
    ]);
  });
});

describe('checkGoal', () => {
  const row = (workload: string, policy: SimulationRow['policy'], hits: number): SimulationRow => ({
    workload,
    cacheFraction: 0.01,
    cacheBytes: 10,
    policy,
    requests: 100,
    hits,
    hitRatio: hits / 100,
    byteHitRatio: hits / 100,
    seconds: 0,
  });

  it('needs half of the LRU-to-OPT gap on Zipf rows and only LRU parity elsewhere', () => {
    const rows = [
      ...[row('zipf-0.8', 'opt', 60), row('zipf-0.8', 'lru', 20), row('zipf-0.8', 'tinylfu', 40)],
      ...[row('zipf-1.0', 'opt', 60), row('zipf-1.0', 'lru', 20), row('zipf-1.0', 'tinylfu', 39)],
      ...[row('loop', 'opt', 60), row('loop', 'lru', 20), row('loop', 'tinylfu', 21)],
      ...[row('shift', 'opt', 60), row('shift', 'lru', 20), row('shift', 'tinylfu', 19)],
    ];
    const checks = checkGoal(rows, ['zipf-0.8', 'zipf-1.0']);
    const rounded = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000);
    expect(checks.map((c) => [c.workload, rounded(c.gapClosed), c.holds])).toEqual([
      ['zipf-0.8', 0.5, true],
      ['zipf-1.0', 0.475, false],
      ['loop', 0.025, true],
      ['shift', -0.025, false],
    ]);
  });
});

describe('renderMarkdown', () => {
  it('prints one row per workload and size with hit / byte hit ratios', () => {
    const builder = new TraceBuilder();
    for (const [key, size] of [['a', 10], ['b', 30], ['a', 10]] as const) builder.add(key, size);
    const result = simulateTrace(builder.build('sized', 'three requests'), [0.5], ['lru', 'tinylfu']);
    const checks = checkGoal(result.rows, []);
    const table = renderMarkdown([result], ['opt', 'perfect-lfu', 'lru', 'tinylfu'], checks).split('\n');
    expect(table).toContain(
      '| workload | cache | OPT | perfect LFU | LRU | TinyLFU | gap closed: TinyLFU | gap closed: perfect LFU | TinyLFU goal |',
    );
    expect(table).toContain('| sized | 50% (20 B) | 33.33% / 20.00% | 33.33% / 20.00% | 33.33% / 20.00% | 33.33% / 20.00% | – | – | yes |');
  });
});

describe('built-in workloads', () => {
  it('are deterministic', () => {
    const loop = WORKLOADS.find((w) => w.name === 'loop');
    expect(loop).toBeDefined();
    const first = loop?.build();
    const second = loop?.build();
    expect(first?.requests).toEqual(second?.requests);
  });

  it('make the loop 10% larger than the 5% cache', () => {
    const trace = WORKLOADS.find((w) => w.name === 'loop')?.build();
    if (trace === undefined) throw new Error('no loop workload');
    const stats = traceStats(trace);
    expect(stats.objects).toBe(90_910);
    expect(5_000 / Math.floor(stats.objects * 0.05)).toBeCloseTo(1.1, 2);
  });
});
