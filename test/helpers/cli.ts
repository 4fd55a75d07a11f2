/** Runs the compiled `edgecache` command as a child process, as users do, and waits for it to listen. */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { request, sleep } from './http.js';

export const CLI = new URL('../../dist/proxy/cli.js', import.meta.url).pathname;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitForPort(port: number, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on ${port} after ${ms} ms`);
}

/** Polls the admin API's /stats until `workers` worker processes are listening on the proxy port. */
async function waitForWorkers(adminPort: number, workers: number, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  let listening: unknown;
  while (Date.now() < deadline) {
    const stats = await request(`http://127.0.0.1:${adminPort}/stats`).catch(() => undefined);
    if (stats?.status === 200) listening = (JSON.parse(stats.text) as { workersListening?: unknown }).workersListening;
    if (typeof listening === 'number' && listening >= workers) return;
    await sleep(50);
  }
  throw new Error(`${String(listening)} of ${workers} workers listening after ${ms} ms`);
}

export interface RunningCli {
  process: ChildProcess;
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  output: () => string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnedCli {
  process: ChildProcess;
  port: number;
  adminPort: number;
  output: () => string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
}

/** Starts the command on free ports and returns at once, without waiting for anything to listen. */
export async function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<SpawnedCli> {
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawn(process.execPath, [CLI, '--port', String(port), '--host', '127.0.0.1', '--admin-port', String(adminPort), '--log-level', 'warn', ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { process: child, port, adminPort, output: () => output, exited };
}

/** Start attempts when a port picked by freePort() was taken by another process in between (tests run in parallel). */
const START_ATTEMPTS = 3;

export async function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningCli> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCliOnce(args, env);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !(err instanceof PortTakenError)) throw err;
    }
  }
}

/** The command exited at start-up because a port it was given was in use by then. */
class PortTakenError extends Error {}

async function startCliOnce(args: string[], env: NodeJS.ProcessEnv): Promise<RunningCli> {
  const { process: child, port, adminPort, output, exited } = await spawnCli(args, env);
  // Until the command is ready, its exit is a failure to start, reported with what it printed.
  const died = exited.then((code) => {
    const text = `edgecache exited with ${code} before listening:\n${output()}`;
    throw /cannot listen on .*EADDRINUSE/.test(output()) ? new PortTakenError(text) : new Error(text);
  });
  died.catch(() => undefined);
  await Promise.race([Promise.all([waitForPort(port), waitForPort(adminPort)]), died]);
  // Under --workers N the port opens with the first worker's listen(); wait for all N, or a test meant to spread
  // its requests over the workers may find every one taken by the first.
  const workers = Number(args[args.indexOf('--workers') + 1]);
  if (args.includes('--workers') && workers > 1) await Promise.race([waitForWorkers(adminPort, workers), died]);
  return {
    process: child,
    port,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/** What the cluster primary's /stats says of its workers. */
export interface WorkerStats {
  workers: number;
  workersListening: number;
  processes: Array<{ pid: number }>;
}

export async function workerStats(cli: RunningCli): Promise<WorkerStats> {
  return JSON.parse((await request(`${cli.adminUrl}/stats`)).text) as WorkerStats;
}

/**
 * Under --workers 2: SIGKILLs one worker and resolves once its replacement is forked but not yet listening (forked a
 * second later, it loads its modules for a while before it can listen or hear the primary). Throws when that
 * moment was not seen within 15 s.
 */
export async function replacingAWorker(cli: RunningCli): Promise<void> {
  const [victim] = (await workerStats(cli)).processes.map((p) => p.pid);
  process.kill(victim as number, 'SIGKILL');
  let now = await workerStats(cli);
  for (const deadline = Date.now() + 15_000; Date.now() < deadline && !(now.workers === 2 && now.workersListening === 1); ) {
    await sleep(10);
    now = await workerStats(cli);
  }
  if (!(now.workers === 2 && now.workersListening === 1)) throw new Error(`no worker being replaced seen: ${JSON.stringify(now)}`);
}
