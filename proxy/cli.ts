#!/usr/bin/env node
/**
 * The `edgecache` command: read flags, environment and config file, start the proxy and the admin API, stop
 * gracefully on SIGINT/SIGTERM (shutdown.ts). A configuration problem prints one line and exits with code 2.
 */
// First: runs before any other module's code (see the module).
import './http/tick-warmup.js';
import './gc-settings.js';
import { readFileSync } from 'node:fs';
import { helpText } from '../config/help.js';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import cluster from 'node:cluster';
import { runPrimary } from './cluster/primary.js';
import { runWorker } from './cluster/worker.js';
import { createLogger } from './logger.js';
import { createEdgecache } from './edgecache.js';
import { StartupError } from './startup.js';
import { drainOnSignal } from './shutdown.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Something the operator must fix (see startup.ts): one line, exit code 1. */
function failToStart(err: unknown): never {
  if (!(err instanceof StartupError)) throw err;
  process.stderr.write(`edgecache: ${err.message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig({ argv: process.argv.slice(2), env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`edgecache: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (loaded.help) {
    process.stdout.write(helpText());
    return;
  }
  if (loaded.version) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  const config = loaded.config;
  if (config.workers > 1) {
    const log = createLogger(config.logLevel);
    process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
    if (cluster.isPrimary) await runPrimary(config, log);
    else await runWorker(config, log);
    return;
  }
  const edgecache = await createEdgecache(config).catch((err: unknown) => failToStart(err));
  const log = edgecache.app.log;
  try {
    const { port, adminPort } = await edgecache.listen();
    log.info({ port, adminPort, origin: config.origin }, `edgecache listening on ${edgecache.scheme}://${config.host}:${port}, forwarding to ${config.origin}`);
  } catch (err) {
    await edgecache.close().catch(() => undefined);
    failToStart(err);
  }
  // One request's bug must not take every other request down with it: log it and keep serving.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  drainOnSignal(config.shutdownGrace, log, () => edgecache.drain(config.shutdownGrace));
  // A renewed certificate: read --tls-cert and --tls-key again, open connections kept (edgecache.reloadTls logs it).
  if (edgecache.scheme === 'https') process.on('SIGHUP', () => edgecache.reloadTls());
}

main().catch((err: unknown) => {
  process.stderr.write(`edgecache: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
