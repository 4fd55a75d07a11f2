/**
 * A worker process under --workers: serves the proxy port (shared with the other workers) and asks the
 * cluster primary before fetching a cold key, so that the key costs the origin one fetch across processes.
 * Purges go through the primary, which applies them in every worker (and, with --redis, tells other nodes).
 */
import type { Logger } from 'pino';
import type { PurgeOptions } from '../../cache-store/purge.js';
import type { EdgecacheConfig } from '../../config/settings.js';
import type { Coordinator, FillLease, PurgeRequest } from './coordinator.js';
import { RpcPeer, type Channel } from './ipc.js';
import { createEdgecache, type CoordinatorContext, type Edgecache } from '../edgecache.js';
import { startupMessage } from '../startup.js';
import { drainOnSignal } from '../shutdown.js';
import { inheritedTicketKeys } from '../http/tls.js';

interface LockAnswer {
  owner: boolean;
  stored?: boolean;
}

class ClusterCoordinator implements Coordinator {
  readonly shared = true;

  constructor(
    private readonly peer: RpcPeer,
    private readonly context: CoordinatorContext,
  ) {}

  async acquireFill(key: string, waitMs: number): Promise<FillLease> {
    const answer = await this.peer.call<LockAnswer>('lock', { key }, waitMs);
    if (!answer.owner) return { owner: false, stored: answer.stored === true };
    return {
      owner: true,
      release: (stored) => {
        // Other workers read the entry from the shared disk tier: it must be committed before they look.
        // (Not Redis: a slow Redis must not keep them waiting.)
        void (stored ? this.context.store.flush('host') : Promise.resolve())
          .catch(() => undefined)
          .then(() => this.peer.call('unlock', { key, stored }))
          .catch(() => undefined);
      },
    };
  }

  purge(request: PurgeRequest): Promise<number> {
    return this.peer.call<number>('purge', request, 120_000);
  }
}

export async function runWorker(config: EdgecacheConfig, log: Logger): Promise<void> {
  let edgecache: Edgecache | undefined;
  // The primary is gone (even before this worker finished starting): stop rather than run uncoordinated.
  process.on('disconnect', () => {
    void (edgecache?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  });
  let context: CoordinatorContext | undefined;
  const peer = new RpcPeer(process as unknown as Channel, async (op, payload) => {
    if (op === 'stats') return edgecache?.snapshot() ?? {};
    if (op === 'purge-fence') {
      // A purge is about to be applied to the shared disk tier by another worker. From now on this worker's
      // fills that started before it are checked against it (CacheStore.notePurge), and what it already queued
      // for the disk commits before the other worker deletes: no write of this worker can land after the purge.
      const { selector, soft } = payload as PurgeRequest;
      if (!context) return true;
      context.store.notePurge(selector, soft);
      await context.store.flush('host');
      return true;
    }
    if (op === 'purge') {
      const { request, within } = payload as { request: PurgeRequest; within?: PurgeOptions['within'] };
      return context ? context.purgeLocally(request, within) : 0;
    }
    if (op === 'metrics') return edgecache?.metrics.json((payload as { shared: boolean }).shared) ?? [];
    if (op === 'hot-keys') return edgecache?.hotKeys.top((payload as { limit: number }).limit) ?? [];
    if (op === 'unready') return edgecache?.unready() ?? ['starting'];
    if (op === 'trust-local') {
      // The primary has (or has not) caught up with the purge stream: see PurgeBroadcast.
      context?.store.trustLocalTiers((payload as { trusted: boolean }).trusted);
      return true;
    }
    if (op === 'shutdown') {
      const { graceMs } = payload as { graceMs: number };
      void (edgecache?.drain(graceMs) ?? Promise.resolve()).finally(() => process.exit(0));
      return true;
    }
    throw new Error(`unknown operation ${op}`);
  });
  // The primary relays SIGHUP (a renewed certificate) to every worker; one still starting has read the files.
  if (config.tlsCert) process.on('SIGHUP', () => edgecache?.reloadTls());
  try {
    edgecache = await createEdgecache(config, {
      logger: log,
      admin: false,
      sweeper: process.env.EDGECACHE_SWEEPER === '1',
      // The primary exchanges purges with the other nodes for every worker of this one.
      broadcastPurges: false,
      // Every worker encrypts TLS session tickets with the primary's keys: any worker resumes any session.
      ticketKeys: inheritedTicketKeys(process.env),
      coordinator: (ctx) => {
        context = ctx;
        return new ClusterCoordinator(peer, ctx);
      },
    });
    await edgecache.listen();
    // A signal to the worker itself (Ctrl-C reaches the whole process group) drains it the same way.
    const running = edgecache;
    drainOnSignal(config.shutdownGrace, log, () => running.drain(config.shutdownGrace));
  } catch (err) {
    // Every worker fails alike (a port in use, an unusable --data-dir): the primary tells the operator once.
    await peer.call('failed', { message: startupMessage(err) }, 5_000).catch(() => undefined);
    await edgecache?.close().catch(() => undefined);
    process.exit(1);
  }
}
