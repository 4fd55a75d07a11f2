// What both demos share (`npm run demo`, `npm run demo:post`): free ports near the usual ones, an example origin
// and edgecache started in front of it with a temporary data directory, and a clean stop on Ctrl-C.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist/proxy/cli.js');

function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer().once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
async function pickPort(preferred, taken = []) {
  for (let p = preferred; p < preferred + 100; p++) if (!taken.includes(p) && (await portFree(p))) return p;
  throw new Error(`no free port near ${preferred}`);
}
async function waitFor(port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.end(() => resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${port}`);
}

/**
 * Starts `scripts/<originScript>` (given its port, then `originArgs`) and edgecache in front of it (with
 * `proxyArgs` added); resolves once both listen. Ports: origin 3000, proxy 8080, admin 8081, or the next free ones.
 */
export async function startDemo(name, { originScript, originArgs = [], proxyArgs = [] }) {
  if (!fs.existsSync(cli)) {
    console.error(`${name}: dist/ is missing; run \`npm ci\` (or \`npm run build\`) first`);
    process.exit(2);
  }
  const originPort = await pickPort(3000);
  const proxyPort = await pickPort(8080, [originPort]);
  const adminPort = await pickPort(8081, [originPort, proxyPort]);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-demo-'));
  const children = [];
  const stop = () => {
    for (const child of children) child.kill('SIGTERM');
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    console.log('\nstopping the demo');
    stop();
    process.exit(0);
  });
  process.on('SIGTERM', () => {
    stop();
    process.exit(0);
  });
  children.push(spawn(process.execPath, [path.join(root, 'scripts', originScript), String(originPort), ...originArgs], { stdio: 'inherit' }));
  const args = ['--origin', `http://127.0.0.1:${originPort}`, '--port', String(proxyPort), '--host', '127.0.0.1', '--admin-port', String(adminPort)];
  children.push(spawn(process.execPath, [cli, ...args, '--data-dir', dataDir, '--log-level', 'warn', ...proxyArgs], { stdio: 'inherit' }));
  await waitFor(originPort);
  await waitFor(proxyPort);
  return { originPort, proxyPort, adminPort, stop };
}
