/**
 * A real redis-server for tests, on a free loopback port, with no persistence, in its own temporary directory.
 * It can be killed (SIGKILL, as a crash) and started again on the same port. Without redis-server, vitest.config.ts
 * leaves the Redis test files out with a one-line notice; with EDGECACHE_REQUIRE_REDIS=1 (CI) they run and fail
 * here with a message saying what to install.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';

export interface TestRedis {
  port: number;
  url: string;
  /** A plain client for reaching into Redis directly (closed by stop()). */
  client: Redis;
  /** SIGKILLs the server (it loses everything: no persistence). */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

const INSTALL_HINT =
  'redis-server is not installed, and the Redis tier tests need a real one: install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis). .ci/run installs it on CI.';

/** Throws with what to install when redis-server cannot be run. */
function requireRedisServer(): void {
  const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (found.error || found.status !== 0) throw new Error(INSTALL_HINT);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `redis-server` with `args` and resolves once it is ready to accept connections; rejects with its output
 * when it exits first or is not ready within 10 s (`what` names it), or with `installHint` when it cannot be run.
 */
export function spawnRedisServer(args: string[], what: string, installHint = INSTALL_HINT): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start within 10 s:\n${output}`));
    }, 10_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${installHint} (${err.message})`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with code ${code}:\n${output}`));
    });
  });
}

function launch(port: number, dir: string): Promise<ChildProcess> {
  return spawnRedisServer(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], 'redis-server');
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startRedis(): Promise<TestRedis> {
  requireRedisServer();
  const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined = await launch(port, dir);
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 100, lazyConnect: false });
  client.on('error', () => undefined);
  return {
    port,
    url,
    client,
    async kill() {
      if (child === undefined) return;
      const dying = child;
      child = undefined;
      dying.kill('SIGKILL');
      await exited(dying);
    },
    async start() {
      if (child !== undefined) return;
      child = await launch(port, dir);
    },
    async stop() {
      client.disconnect(false);
      if (child !== undefined) {
        const stopping = child;
        child = undefined;
        stopping.kill('SIGTERM');
        await exited(stopping);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `condition` until it holds, at most `ms` (then throws with `what`). No timing is asserted. */
export async function eventually(what: string, condition: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`still not true after ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
