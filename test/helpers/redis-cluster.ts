/**
 * A real three-primary Redis Cluster for tests: three `redis-server --cluster-enabled yes` on free loopback ports
 * (their cluster bus ports free too), no persistence, one temporary directory, joined by
 * `redis-cli --cluster create ... --cluster-replicas 0`; ready once CLUSTER INFO says `cluster_state:ok` on every
 * node. With `replicas: 1`, six nodes (three primaries, each with a replica, linked to it before this resolves).
 * stop() SIGKILLs them all and removes the directory.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './cli.js';
import { eventually, spawnRedisServer } from './redis.js';

export interface TestRedisCluster {
  /** A seed node's URL (the first node), as --redis takes it. */
  seedUrl: string;
  ports: number[];
  /** A plain connection to each node (closed by stop()). */
  nodes: Redis[];
  /** The names of the keys matching `pattern` (a SCAN MATCH glob) on each node. */
  keysPerNode(pattern: string): Promise<string[][]>;
  /** SIGKILLs node `index` (a primary lost: its replica takes over, or with none its slots are unavailable). */
  kill(index: number): Promise<void>;
  /** Each node's role now (ROLE): 'master' or 'slave'; 'down' for a node that does not answer. */
  roles(): Promise<string[]>;
  /** SIGKILLs every node and removes their directory. */
  stop(): Promise<void>;
}

const INSTALL_HINT =
  'redis-server and redis-cli are needed for the Redis Cluster tests: install them (Debian/Ubuntu: apt-get install -y redis-server, which pulls in redis-tools). .ci/run installs them on CI.';

function launch(port: number, busPort: number, dir: string, index: number, nodeTimeoutMs: number): Promise<ChildProcess> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--cluster-enabled',
    'yes',
    '--cluster-port',
    String(busPort),
    '--cluster-config-file',
    path.join(dir, `nodes-${index}.conf`),
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ];
  return spawnRedisServer(args, `redis-server (cluster node ${index})`, INSTALL_HINT);
}

/** Free ports, all distinct (each node needs a client port and a cluster bus port). */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

export interface ClusterOptions {
  /** Replicas per primary (default 0). */
  replicas?: number;
  /** cluster-node-timeout (ms): how long before a silent node is failed over (default 2000). */
  nodeTimeoutMs?: number;
}

export async function startRedisCluster({ replicas = 0, nodeTimeoutMs = 2_000 }: ClusterOptions = {}): Promise<TestRedisCluster> {
  const cli = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' });
  if (cli.error || cli.status !== 0) throw new Error(INSTALL_HINT);
  const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-redis-cluster-'));
  const count = 3 * (1 + replicas);
  const all = await distinctFreePorts(2 * count);
  const ports = all.slice(0, count);
  const children: ChildProcess[] = [];
  const nodes: Redis[] = [];
  const kill = (child: ChildProcess | undefined): Promise<void> => {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  };
  const stop = async (): Promise<void> => {
    for (const node of nodes) node.disconnect(false);
    await Promise.all(children.map(kill));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const [i, port] of ports.entries()) children.push(await launch(port, all[i + count] as number, dir, i, nodeTimeoutMs));
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed (${create.status ?? create.signal}):\n${create.stdout}${create.stderr}`);
    for (const port of ports) {
      const node = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 100 });
      node.on('error', () => undefined);
      nodes.push(node);
    }
    await eventually(
      'cluster_state:ok on every node',
      async () => (await Promise.all(nodes.map((node) => node.cluster('INFO')))).every((info) => /^cluster_state:ok/m.test(String(info))),
      15_000,
    );
    if (replicas > 0) {
      await eventually(
        'every replica linked to its primary',
        async () =>
          (await Promise.all(nodes.map((node) => node.info('replication')))).every((info) => /^role:master/m.test(info) || /^master_link_status:up/m.test(info)),
        15_000,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    seedUrl: `redis://127.0.0.1:${ports[0]}`,
    ports,
    nodes,
    async keysPerNode(pattern) {
      return Promise.all(
        nodes.map(async (node) => {
          const names: string[] = [];
          let cursor = '0';
          do {
            const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
            cursor = next;
            names.push(...found);
          } while (cursor !== '0');
          return names;
        }),
      );
    },
    kill: (index) => kill(children[index]),
    roles: () => Promise.all(nodes.map(async (node) => String(((await node.role().catch(() => ['down'])) as unknown[])[0]))),
    stop,
  };
}
