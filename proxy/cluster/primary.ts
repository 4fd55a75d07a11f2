/**
 * The cluster primary under --workers N: forks the workers (which share the proxy port and the disk tier),
 * serves the admin API for all of them, grants the per-key fill locks that keep a cold key to one origin
 * fetch across processes, broadcasts purges (to its workers, and with --redis to the other nodes), and
 * restarts a worker that dies.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { EdgecacheConfig } from '../../config/settings.js';
import { buildAdmin } from '../admin/admin-app.js';
import type { PurgeRequest } from './coordinator.js';
import { RpcPeer, workerChannel } from './ipc.js';
import { loadRedisClient } from '../../cache-store/redis/connect.js';
import { broadcasting, PurgeBroadcast, type NodePurge } from '../purge/broadcast.js';
import { startupError } from '../startup.js';
import { countPurge, processMemory, ProxyStats } from '../admin/stats.js';

interface Lock {
  holder: number;
  waiters: Array<(answer: { owner: false; stored: boolean }) => void>;
}

/** Counters that are not summed across workers (the largest is reported). */
const NOT_SUMMED: ReadonlySet<string> = new Set(['uptimeSeconds']);
/**
 * Lower-tier figures that every worker reads from the same place, so they are not summed: the disk tier's
 * from the shared LMDB environment, the Redis tier's from the Redis server. Their other figures (evictions,
 * write failures, queued writes, reads...) are each worker's own and are.
 */
const SHARED_FIGURES: Record<string, ReadonlySet<string>> = {
  disk: new Set(['entries', 'bytes', 'maxBytes', 'usedBytes', 'fileBytes']),
  redis: new Set(['entries', 'bytes', 'maxBytes', 'evictions']),
};

function sumInto(total: Record<string, unknown>, part: Record<string, unknown>, notSummed = NOT_SUMMED): void {
  for (const [key, value] of Object.entries(part)) {
    if (typeof value !== 'number') continue;
    const current = typeof total[key] === 'number' ? (total[key] as number) : 0;
    total[key] = notSummed.has(key) ? Math.max(current, value) : current + value;
  }
}

export async function runPrimary(config: EdgecacheConfig, log: Logger): Promise<void> {
  // Each worker accepts its own connections: no per-connection hop through the primary.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const peers = new Map<number, RpcPeer>();
  const locks = new Map<string, Lock>();
  const stats = new ProxyStats();
  let stopping = false;
  /** Every worker has listened once: from then on a worker that dies is replaced. */
  let started = false;
  /** Workers whose proxy listener is open (cluster 'listening'), until they exit. */
  const listeningWorkers = new Set<number>();
  let admin: ReturnType<typeof buildAdmin> | undefined;

  // Before the cluster has started, a failure is the configuration's or the machine's (a port in use, an unusable
  // --data-dir): restarting workers would fail the same way forever. Say it once and stop, as a single process does.
  const failToStart = (message: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`edgecache: ${message}\n`);
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(1);
  };

  const releaseLock = (key: string, stored: boolean): void => {
    const lock = locks.get(key);
    if (lock === undefined) return;
    locks.delete(key);
    for (const wake of lock.waiters) wake({ owner: false, stored });
  };

  const purgeNode: NodePurge = async (request, within) => {
    const [first, ...others] = [...peers.values()];
    if (first === undefined) throw new Error('no worker is running');
    // Every worker first records the purge and commits its queued disk writes: a fill that was in flight in any
    // of them cannot then store the purged response after the deletes below (see CacheStore.put). A worker that
    // does not answer (it is dying) is not waited for.
    await Promise.allSettled([first, ...others].map((peer) => peer.call('purge-fence', request, 120_000)));
    // One worker purges the shared tiers (and its memory) and waits for the deletes to commit; only then do
    // the others purge their memory, so none of them can copy a purged entry back from disk in between.
    // (within 'host': another node has purged Redis already.)
    const shared = await first.call<number>('purge', { request, ...(within && { within }) }, 120_000);
    const counts = await Promise.all(others.map((peer) => peer.call<number>('purge', { request, within: 'process' }, 120_000)));
    const affected = Math.max(shared, ...counts);
    // Counted once here, not by each worker that applied its part.
    countPurge(stats, request.invalidation === true, affected);
    return affected;
  };
  // With --redis the primary speaks for the whole node: it tells the other nodes, and applies what they tell.
  if (config.redis) await loadRedisClient();
  const broadcast = config.redis
    ? new PurgeBroadcast({ url: config.redis, prefix: config.redisPrefix, timeoutMs: config.redisTimeout, stats, log: log.child({ component: 'purge-broadcast' }) })
    : undefined;
  const broadcastPurge = broadcast ? broadcasting(purgeNode, broadcast) : purgeNode;

  let sweeperId: number | undefined;
  const fork = (): Worker => {
    // Exactly one worker sweeps expired entries from the shared disk tier.
    const sweeper = sweeperId === undefined;
    const worker = cluster.fork({ EDGECACHE_WORKER: '1', EDGECACHE_SWEEPER: sweeper ? '1' : '0' });
    if (sweeper) sweeperId = worker.id;
    const peer = new RpcPeer(workerChannel(worker), (op, payload) => {
      if (op === 'lock') {
        const { key } = payload as { key: string };
        const lock = locks.get(key);
        if (lock === undefined) {
          locks.set(key, { holder: worker.id, waiters: [] });
          return { owner: true };
        }
        return new Promise((resolve) => lock.waiters.push(resolve));
      }
      if (op === 'unlock') {
        const { key, stored } = payload as { key: string; stored: boolean };
        if (locks.get(key)?.holder === worker.id) releaseLock(key, stored);
        return true;
      }
      if (op === 'purge') return broadcastPurge(payload as PurgeRequest);
      if (op === 'failed') {
        const { message } = payload as { message: string };
        if (!started) failToStart(message);
        else log.error({ workerPid: worker.process.pid, problem: message }, 'a worker could not start');
        return true;
      }
      throw new Error(`unknown operation ${op}`);
    });
    peers.set(worker.id, peer);
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    listeningWorkers.delete(worker.id);
    peers.get(worker.id)?.close('worker exited');
    peers.delete(worker.id);
    if (sweeperId === worker.id) sweeperId = undefined;
    for (const [key, lock] of locks) if (lock.holder === worker.id) releaseLock(key, false);
    if (stopping) return;
    if (!started) {
      failToStart(`a worker exited while starting (code ${code}, signal ${signal})`);
      return;
    }
    log.error({ workerPid: worker.process.pid, code, signal }, 'worker died; starting another');
    setTimeout(() => {
      if (!stopping) fork();
    }, 1000).unref();
  });

  const snapshot = async (): Promise<Record<string, unknown>> => {
    const parts = await Promise.all([...peers.values()].map((peer) => peer.call<Record<string, unknown>>('stats', {}, 5_000).catch(() => undefined)));
    const total: Record<string, unknown> = { workers: peers.size };
    const memory: Record<string, unknown> = { name: 'memory' };
    const processes: Array<Record<string, unknown>> = [];
    const lower = new Map<string, Record<string, unknown>>();
    for (const part of parts) {
      if (part === undefined) continue;
      const { tiers, pid, ...counters } = part as { tiers?: Record<string, Record<string, unknown>>; pid?: number } & Record<string, unknown>;
      processes.push({
        pid,
        hits: counters.hits,
        misses: counters.misses,
        originFetches: counters.originFetches,
        coalesced: counters.coalesced,
        eventLoopDelayMs: counters.eventLoopDelayMs,
        memory: counters.memory,
      });
      sumInto(total, counters);
      if (tiers?.memory) {
        sumInto(memory, tiers.memory);
        memory.policy = tiers.memory.policy;
      }
      for (const [name, figures] of Object.entries(tiers ?? {})) {
        if (name === 'memory') continue;
        let sum = lower.get(name);
        if (sum === undefined) lower.set(name, (sum = { name }));
        sumInto(sum, figures, SHARED_FIGURES[name] ?? NOT_SUMMED);
      }
    }
    sumInto(total, stats.toJSON());
    // Memory is per process: the workers' in `processes`, the primary's own here.
    return { ...total, memory: processMemory(), tiers: { memory, ...Object.fromEntries(lower) }, processes };
  };

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const exited = new Promise<void>((resolve) => {
      const check = (): void => {
        if (Object.keys(cluster.workers ?? {}).length === 0) resolve();
      };
      cluster.on('exit', check);
      check();
    });
    for (const peer of peers.values()) void peer.call('shutdown', {}, 2_000).catch(() => undefined);
    const force = setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGKILL');
    }, 10_000);
    void Promise.all([admin?.close(), broadcast?.close(), exited]).then(() => {
      clearTimeout(force);
      process.exit(0);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  const listening = new Promise<void>((resolve) => {
    let count = 0;
    cluster.on('listening', (worker) => {
      listeningWorkers.add(worker.id);
      if (++count === config.workers) resolve();
    });
  });
  for (let i = 0; i < config.workers; i++) fork();

  admin = buildAdmin({
    snapshot,
    // Ready while at least one worker listens: the workers share the port, so from the first one's listen() every
    // connection is accepted and served (by the workers listening), while one dead worker is replaced too.
    // Requiring all of them would take a serving node out of a load balancer for each worker restart. Before
    // the first listen (and when every worker has died, or while stopping) the port serves nothing: 503.
    healthy: async () => !stopping && listeningWorkers.size > 0,
    stats,
    log,
    purge: (selector, soft) => broadcastPurge({ selector, soft }),
    token: config.adminToken,
  });
  try {
    await admin.listen({ port: config.adminPort, host: config.adminHost });
  } catch (err) {
    failToStart(startupError(`cannot listen on ${config.adminHost}:${config.adminPort} (--admin-host, --admin-port)`, err).message);
    return;
  }
  const adminPort = (admin.server.address() as AddressInfo).port;
  await listening;
  started = true;
  log.info(
    { port: config.port, adminPort, workers: config.workers, origin: config.origin },
    `edgecache listening on http://${config.host}:${config.port} with ${config.workers} workers, forwarding to ${config.origin}`,
  );

}
