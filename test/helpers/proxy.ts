/**
 * Starts a real edgecache (createEdgecache + listen on port 0) in front of a test origin, with a movable
 * clock and its own temporary data directory (removed on close unless the test passed its own).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../config/load.js';
import type { EdgecacheConfig } from '../../config/settings.js';
import { createEdgecache, type Edgecache, type EdgecacheOverrides } from '../../proxy/edgecache.js';

export interface TestProxy {
  url: string;
  port: number;
  adminUrl: string;
  edgecache: Edgecache;
  /** Moves the proxy's clock forward (the origin's clock is real time). */
  advance(ms: number): void;
  close(): Promise<void>;
}

export async function startProxy(origin: string, overrides: Partial<EdgecacheConfig> = {}, extra: EdgecacheOverrides = {}): Promise<TestProxy> {
  const { config } = loadConfig({
    argv: ['--origin', origin, '--port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--log-level', 'silent'],
    env: {},
  });
  let offset = 0;
  const ownDir = overrides.dataDir === undefined ? mkdtempSync(path.join(tmpdir(), 'edgecache-test-')) : undefined;
  const edgecache = await createEdgecache({ ...config, ...(ownDir && { dataDir: ownDir }), ...overrides }, { now: () => Date.now() + offset, ...extra });
  const { port, adminPort } = await edgecache.listen();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    edgecache,
    advance: (ms) => {
      offset += ms;
    },
    close: async () => {
      await edgecache.close();
      if (ownDir) rmSync(ownDir, { recursive: true, force: true });
    },
  };
}
