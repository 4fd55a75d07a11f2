import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, freePort } from '../helpers/cli.js';

// What an operator sees when edgecache cannot start: one line naming the setting and exit code 1, with one
// process or with workers (which must not be restarted in a loop), never a stack trace.
let dir: string;
let taken: net.Server;
let takenPort: number;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'edgecache-startup-'));
  taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  takenPort = (taken.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => taken.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the command until it exits (or 40 s pass, then kills it: a restart loop never exits; a loaded machine takes over 15 s to start two workers). */
function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, '--origin', 'http://127.0.0.1:9', '--host', '127.0.0.1', '--log-level', 'warn', ...args], {
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\bat .*:\d+:\d+/);
}

// Each test runs its own process with its own ports and directory: they run side by side.
describe.concurrent('start-up failures', () => {
  it.each(['1', '2'])('the proxy port in use (--workers %s)', async (workers) => {
    const out = await run(['--workers', workers, '--port', String(takenPort), '--admin-port', String(await freePort()), '--data-dir', path.join(dir, `p${workers}`)]);
    expect(out.code).toBe(1);
    expectOneLine(out.stderr, new RegExp(`^edgecache: cannot listen on 127\\.0\\.0\\.1:${takenPort} \\(--host, --port\\): .*EADDRINUSE`));
  }, 60_000);

  it.each(['1', '2'])('the admin port in use (--workers %s)', async (workers) => {
    const out = await run(['--workers', workers, '--port', String(await freePort()), '--admin-port', String(takenPort), '--data-dir', path.join(dir, `a${workers}`)]);
    expect(out.code).toBe(1);
    expectOneLine(out.stderr, /^edgecache: cannot listen on .* \(--admin-host, --admin-port\): .*EADDRINUSE/);
  }, 60_000);

  it.each(['1', '2'])('a --data-dir that cannot be used (--workers %s)', async (workers) => {
    const file = path.join(dir, `not-a-directory-${workers}`);
    writeFileSync(file, 'x');
    const out = await run(['--workers', workers, '--port', String(await freePort()), '--admin-port', String(await freePort()), '--data-dir', file]);
    expect(out.code).toBe(1);
    expectOneLine(out.stderr, /^edgecache: cannot use --data-dir .*not-a-directory.*: ENOTDIR/);
  }, 60_000);

  it.each(['1', '2'])('a missing or invalid --tls-cert / --tls-key (--workers %s)', async (workers) => {
    const key = path.join(dir, `key-${workers}.pem`);
    writeFileSync(key, 'not a key');
    const common = ['--workers', workers, '--port', String(await freePort()), '--admin-port', String(await freePort()), '--data-dir', path.join(dir, `t${workers}`)];
    const missing = await run([...common, '--tls-cert', path.join(dir, 'no-such.crt'), '--tls-key', key]);
    expect(missing.code).toBe(1);
    expectOneLine(missing.stderr, /^edgecache: cannot start TLS: cannot read --tls-cert .*no-such\.crt: ENOENT$/);
    const cert = path.join(dir, `cert-${workers}.pem`);
    writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n');
    const invalid = await run([...common, '--tls-cert', cert, '--tls-key', key]);
    expect(invalid.code).toBe(1);
    expectOneLine(invalid.stderr, /^edgecache: cannot start TLS: invalid --tls-cert .*cert-\d\.pem/);
  }, 60_000);
});
