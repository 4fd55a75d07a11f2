import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startCli, type RunningCli } from '../helpers/cli.js';
import { makeCert, type TestCert } from '../helpers/tls.js';

// TLS under --workers: every worker resumes the sessions of every other (shared ticket keys), and SIGHUP to the
// primary reloads the certificate in every worker.
let dir: string;
let origin: TestOrigin;
let cli: RunningCli;
let first: TestCert;
let second: TestCert;
let live: { certPath: string; keyPath: string };

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'edgecache-tls-workers-'));
  first = makeCert(dir, 'first');
  second = makeCert(dir, 'second', 'renewed.localhost');
  live = { certPath: path.join(dir, 'live.crt'), keyPath: path.join(dir, 'live.key') };
  copyFileSync(first.certPath, live.certPath);
  copyFileSync(first.keyPath, live.keyPath);
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' });
    res.end(`ok ${req.url}`);
  });
  cli = await startCli(['--origin', origin.url, '--workers', '2', '--data-dir', path.join(dir, 'data'), '--tls-cert', live.certPath, '--tls-key', live.keyPath]);
}, 60_000);

afterAll(async () => {
  await cli?.stop();
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Exchange {
  reused: boolean;
  subject: string;
  session: Buffer | undefined;
  reply: string;
}

/** One request on a new TLS connection, resuming `session` when given. */
function exchange(port: number, urlPath: string, session?: Buffer): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    let reply = '';
    const socket = tls.connect({ host: '127.0.0.1', port, ca: [first.cert, second.cert], servername: 'localhost', ...(session && { session }) }, () => {
      socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
    });
    socket.on('session', (s: Buffer) => (ticket = s));
    socket.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    socket.on('end', () => {
      // (A resumed session may not carry the peer's certificate.)
      const peer = socket.getPeerX509Certificate();
      const subject = peer ? new X509Certificate(peer.raw).subject : '';
      resolve({ reused: socket.isSessionReused(), subject, session: ticket, reply });
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

describe('TLS with --workers', () => {
  it('resumes sessions under --workers (every worker is given the primary\'s ticket keys)', async () => {
    // Which worker takes a connection is the kernel's choice, so this cannot force a cross-worker resumption;
    // test/proxy/tls-h2.test.ts shows that shared keys resume across processes and different keys do not.
    const opening = await exchange(cli.port, '/resume/0');
    expect(opening.reply).toMatch(/^HTTP\/1\.1 200/);
    expect(opening.session).toBeDefined();
    for (let i = 1; i <= 8; i++) {
      const resumed = await exchange(cli.port, `/resume/${i}`, opening.session);
      expect(resumed.reply).toMatch(/^HTTP\/1\.1 200/);
      expect(resumed.reused).toBe(true);
    }
  }, 60_000);

  it('SIGHUP to the primary reloads the certificate in every worker', async () => {
    expect((await exchange(cli.port, '/cert/0')).subject).toBe('CN=localhost');
    copyFileSync(second.certPath, live.certPath);
    copyFileSync(second.keyPath, live.keyPath);
    cli.process.kill('SIGHUP');
    // The workers reload on their own signal: wait until a new connection sees the new certificate...
    let seen = '';
    for (let i = 0; i < 200 && seen !== 'CN=renewed.localhost'; i++) {
      seen = (await exchange(cli.port, `/cert/wait-${i}`)).subject;
      if (seen !== 'CN=renewed.localhost') await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toBe('CN=renewed.localhost');
    // ...then every new connection, whichever worker takes it, gets it; and the process is still running.
    for (let i = 0; i < 8; i++) expect((await exchange(cli.port, `/cert/after-${i}`)).subject).toBe('CN=renewed.localhost');
    expect(cli.process.exitCode).toBeNull();
  }, 60_000);
});
