// Processes a benchmark script starts on loopback (scripts/bench/edge.mjs, large-object.mjs): each in its own
// process group pinned with taskset, its output in the temp dir, all stopped (and the temp dir removed) when the
// script exits or is interrupted. Also free ports, waiting for a port, and the processes of a group in /proc.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const HOST = '127.0.0.1';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A temp dir (readable by nginx's workers, which run as another user) and the process groups started in it. */
export function benchRun(prefix, cwd) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(tmp, 0o755);
  const groups = [];
  process.on('exit', () => {
    for (const g of groups) {
      try {
        process.kill(-g.pgid, 'SIGCONT');
        process.kill(-g.pgid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    if (process.env.BENCH_KEEP_TMP) console.error(`temp dir kept: ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  });
  process.on('SIGINT', () => process.exit(1));
  /** Starts `argv` on `cpus` in a process group of its own, its output in <tmp>/<name>.log. */
  const launch = (name, cpus, argv) => {
    const fd = fs.openSync(path.join(tmp, `${name}.log`), 'a');
    const child = spawn('taskset', ['-c', cpus, ...argv], { cwd, detached: true, stdio: ['ignore', fd, fd], env: { PATH: process.env.PATH } });
    fs.closeSync(fd);
    const g = { name, pgid: child.pid };
    groups.push(g);
    return g;
  };
  return { tmp, groups, launch };
}

export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitPort(port) {
  for (let i = 0; i < 300; i++) {
    const open = await new Promise((resolve) => {
      const s = net.connect(port, HOST, () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (open) return;
    await sleep(100);
  }
  throw new Error(`nothing listening on ${port}`);
}

/** The /proc/<pid>/stat fields (after the command name) of every live process in a process group. */
export function groupStats(pgid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid) out.push({ pid: Number(d), fields: f });
    } catch {
      // gone
    }
  }
  return out;
}
