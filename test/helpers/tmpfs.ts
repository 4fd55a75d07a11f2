/**
 * A small filesystem of its own for a test that needs a full disk: a tmpfs of a given size, mounted on a temp
 * directory. Mounting needs root on Linux; elsewhere `canMountTmpfs` is false and the test is skipped (with one
 * line saying so, from skipWithoutTmpfs).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const canMountTmpfs = process.platform === 'linux' && process.getuid?.() === 0;

/** Says once, on stderr, that `what` is skipped for want of root. */
export function skipWithoutTmpfs(what: string): void {
  if (!canMountTmpfs) console.warn(`edgecache: not running as root, so ${what} (it mounts a tmpfs) is skipped`);
}

export interface Tmpfs {
  path: string;
  unmount(): void;
}

/** Mounts a tmpfs of `size` (mount's notation: '24m'); unmount() removes it and its directory. */
export function mountTmpfs(size: string): Tmpfs {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    path: dir,
    unmount: () => {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
