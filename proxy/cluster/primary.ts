/**
 * The cluster primary under --workers N: forks the workers (which share the proxy port and the disk tier),
 * serves the admin API for all of them, grants the per-key fill locks that keep a cold key to one origin
 * fetch across processes (fill-locks.ts), applies purges in every worker (and with --redis tells the other
 * nodes), and restarts a worker that dies.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { loadRedisClient } from '../../cache-store/redis/connect.js';
import type { EdgecacheConfig } from '../../config/settings.js';
import { buildAdmin } from '../admin/admin-app.js';
import { countPurge, ProxyStats } from '../admin/stats.js';
import { mergeHotKeys } from '../admin/hot-keys.js';
import { aggregateWorkers, monotonicPart, ProxyMetrics, type MetricsJson } from '../admin/metrics.js';
import { broadcasting, createBroadcast, type PurgeBroadcast, type NodePurge } from '../purge/broadcast.js';
import { startupError, startupMessage } from '../startup.js';
import { drainOnSignal } from '../shutdown.js';
import { newTicketKeys, TICKET_KEYS_ENV, TlsCredentials } from '../http/tls.js';
import type { PurgeRequest } from './coordinator.js';
import { FillLocks } from './fill-locks.js';
import { RpcPeer, workerChannel } from './ipc.js';
import { sumWorkerStats } from './stats-sum.js';

type HotKeyList = Array<{ key: string; hits: number }>;

/** Time a draining worker has beyond --shutdown-grace to flush its tiers and exit before it is killed. */
const WORKER_FLUSH_MS = 10_000;

/** Longest a purge may take in one worker (a purge of many disk entries is applied in batches). */
const PURGE_TIMEOUT_MS = 120_000;

export async function runPrimary(config: EdgecacheConfig, log: Logger): Promise<void> {
  // Each worker accepts its own connections: no per-connection hop through the primary.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // Unusable TLS files are told once, before any worker is forked (each worker reads them again for itself).
  if (config.tlsCert && config.tlsKey) {
    try {
      TlsCredentials.load(config.tlsCert, config.tlsKey);
    } catch (err) {
      process.stderr.write(`edgecache: ${startupMessage(err)}\n`);
      process.exit(1);
    }
  }
  // With --redis the primary speaks for the whole node: it tells the other nodes, and applies what they tell.
  if (config.redis) await loadRedisClient();
  const primary = new Primary(config, log);
  drainOnSignal(config.shutdownGrace, log, () => primary.stop());
  // A renewed certificate: every worker reads --tls-cert and --tls-key again (and logs the outcome).
  if (config.tlsCert) process.on('SIGHUP', () => primary.relaySignal('SIGHUP'));
  const listening = primary.forkWorkers();
  const adminPort = await primary.serveAdmin();
  if (adminPort === undefined) return;
  await listening;
  primary.started = true;
  log.info(
    { port: config.port, adminPort, workers: config.workers, origin: config.origin },
    `edgecache listening on ${config.tlsCert ? 'https' : 'http'}://${config.host}:${config.port} with ${config.workers} workers, forwarding to ${config.origin}`,
  );
}

class Primary {
  /** Every worker has listened once: from then on a worker that dies is replaced. */
  started = false;
  private stopping = false;
  /** Every worker has been told to drain (and said it started): /readyz says 503. */
  private draining = false;
  private readonly peers = new Map<number, RpcPeer>();
  private readonly locks = new FillLocks();
  /** The primary's own counters: purges are counted here, once for the node. */
  private readonly stats = new ProxyStats();
  /** The primary's own metrics (its counters, its process), summed with the workers' when scraped. */
  private readonly metrics = new ProxyMetrics(this.stats, undefined);
  /** Each live worker's metrics as last scraped. */
  private readonly lastMetrics = new Map<number, MetricsJson>();
  /** The counters and histograms of workers that died, as last scraped: no sum goes backwards when one does. */
  private readonly retiredMetrics: MetricsJson[] = [];
  /** Workers whose proxy listener is open (cluster 'listening'), until they exit. */
  private readonly listeningWorkers = new Set<number>();
  /** The worker that sweeps expired entries from the shared disk tier (exactly one does). */
  private sweeperId: number | undefined;
  private readonly broadcast: PurgeBroadcast | undefined;
  /** A purge applied to every worker, and with --redis told to the other nodes. */
  private readonly purge: (request: PurgeRequest) => Promise<number>;
  private admin: ReturnType<typeof buildAdmin> | undefined;
  /** Every worker has listened once (forkWorkers). */
  private listened: () => void = () => undefined;
  private readonly allListening = new Promise<void>((resolve) => (this.listened = resolve));
  /** Whether the workers' memory and disk may answer (see trustLocalTiers). */
  private localTrusted = false;
  /** TLS session-ticket keys given to every worker (also the ones restarted later), so any worker resumes any session. */
  private readonly ticketKeys = newTicketKeys().toString('base64');

  constructor(
    private readonly config: EdgecacheConfig,
    private readonly log: Logger,
  ) {
    this.broadcast = config.redis ? createBroadcast(config, this.stats, log) : undefined;
    // Purges read from the stream at start-up (or the local tiers dropped) wait for the workers to be up.
    const whenStarted: NodePurge = async (request, within) => {
      await this.allListening;
      return this.purgeNode(request, within);
    };
    this.purge = this.broadcast ? broadcasting(whenStarted, this.broadcast, (trusted) => this.trustLocalTiers(trusted)) : this.purgeNode;
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
    this.metrics.addGauge('edgecache_workers', 'Worker processes running (under --workers).', () => this.peers.size);
  }

  /** Forks the workers; resolves once each has listened. */
  forkWorkers(): Promise<void> {
    const all = new Promise<void>((resolve) => {
      let count = 0;
      void this.allListening.then(resolve);
      cluster.on('listening', (worker) => {
        this.listeningWorkers.add(worker.id);
        if (this.broadcast && this.localTrusted) void this.peers.get(worker.id)?.call('trust-local', { trusted: true }, 5_000).catch(() => undefined);
        if (++count === this.config.workers) this.listened();
      });
    });
    for (let i = 0; i < this.config.workers; i++) this.fork();
    return all;
  }

  /** Starts the admin API; resolves with its port, or undefined after a start-up failure (the process then exits). */
  async serveAdmin(): Promise<number | undefined> {
    const { config } = this;
    const admin = buildAdmin({
      snapshot: () => this.snapshot(),
      // Ready while at least one worker listens: the workers share the port, so from the first one's listen() every
      // connection is accepted and served (by the workers listening), while one dead worker is replaced too.
      // Requiring all of them would take a serving node out of a load balancer for each worker restart. Before
      // the first listen (and when every worker has died, or while stopping) the port serves nothing: 503.
      unready: async () => this.unready(),
      metrics: () => this.metricsText(),
      hotKeys: async (limit) => {
        const lists = await Promise.all(this.answeringPeers().map(([, peer]) => peer.call<HotKeyList>('hot-keys', { limit }, 2_000).catch(() => [])));
        return mergeHotKeys(lists, limit);
      },
      stats: this.stats,
      log: this.log,
      purge: (selector, soft) => this.purge({ selector, soft }),
      token: config.adminToken,
    });
    this.admin = admin;
    try {
      await admin.listen({ port: config.adminPort, host: config.adminHost });
    } catch (err) {
      this.failToStart(startupError(`cannot listen on ${config.adminHost}:${config.adminPort} (--admin-host, --admin-port)`, err).message);
      return undefined;
    }
    return (admin.server.address() as AddressInfo).port;
  }

  /** Sends a signal on to every worker. */
  relaySignal(signal: NodeJS.Signals): void {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  }

  /**
   * The graceful shutdown of the node: /readyz says 503 at once, every worker drains (stops accepting, serves what
   * arrives on open connections with Connection: close, lets responses and fills in flight finish within
   * --shutdown-grace, flushes its tiers) and exits; a worker still there well after that is killed.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const grace = this.config.shutdownGrace;
    const exited = new Promise<void>((resolve) => {
      // Every worker's process has exited. (Node removes a worker from cluster.workers once it has both exited and
      // disconnected, in either order: a worker whose 'exit' comes before its 'disconnect', which happens on a busy
      // machine, is still listed when 'exit' fires, so the list's length alone would wait for the force timer.)
      const check = (): void => {
        if (Object.values(cluster.workers ?? {}).every((worker) => worker === undefined || worker.isDead())) resolve();
      };
      cluster.on('exit', check);
      cluster.on('disconnect', check);
      check();
    });
    // Each worker answers once it has stopped accepting; /readyz turns 503 then (or after 2 s without answers). A
    // worker still starting has accepted nothing and holds nothing: it is stopped with SIGTERM, which ends it at once
    // (its drain handler is installed when it listens). Asked instead, one still loading its modules would never
    // hear the question, start listening during the shutdown, and be killed only by the force timer.
    const calls = [...this.peers].map(([id, peer]) => {
      if (this.listeningWorkers.has(id)) return peer.call('shutdown', { graceMs: grace }, 2_000).catch(() => undefined);
      cluster.workers?.[id]?.process.kill('SIGTERM');
      return Promise.resolve(undefined);
    });
    await Promise.all(calls);
    this.draining = true;
    const force = setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGKILL');
    }, grace + WORKER_FLUSH_MS);
    await exited;
    clearTimeout(force);
    await Promise.all([this.admin?.close(), this.broadcast?.close()]);
  }

  /**
   * Before the cluster has started, a failure is the configuration's or the machine's (a port in use, an unusable
   * --data-dir): restarting workers would fail the same way forever. Say it once and stop, as a single process does.
   */
  private failToStart(message: string): void {
    if (this.stopping) return;
    this.stopping = true;
    process.stderr.write(`edgecache: ${message}\n`);
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(1);
  }

  private fork(): Worker {
    const sweeper = this.sweeperId === undefined;
    const worker = cluster.fork({ EDGECACHE_SWEEPER: sweeper ? '1' : '0', ...(this.config.tlsCert && { [TICKET_KEYS_ENV]: this.ticketKeys }) });
    // A message sent as the worker exits (a purge during shutdown) fails with an 'error' event: not a crash.
    worker.on('error', (err: Error) => this.log.debug({ err: err.message, workerPid: worker.process.pid }, 'worker channel error'));
    if (sweeper) this.sweeperId = worker.id;
    this.peers.set(worker.id, new RpcPeer(workerChannel(worker), (op, payload) => this.answer(worker, op, payload)));
    return worker;
  }

  /** A worker's request (see cluster/worker.ts). */
  private answer(worker: Worker, op: string, payload: unknown): unknown {
    switch (op) {
      case 'lock':
        return this.locks.acquire((payload as { key: string }).key, worker.id);
      case 'unlock': {
        const { key, stored } = payload as { key: string; stored: boolean };
        this.locks.release(key, worker.id, stored);
        return true;
      }
      case 'purge':
        return this.purge(payload as PurgeRequest);
      case 'failed': {
        const { message } = payload as { message: string };
        if (!this.started) this.failToStart(message);
        else this.log.error({ workerPid: worker.process.pid, problem: message }, 'a worker could not start');
        return true;
      }
      default:
        throw new Error(`unknown operation ${op}`);
    }
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    this.listeningWorkers.delete(worker.id);
    const last = this.lastMetrics.get(worker.id);
    if (last !== undefined) this.retiredMetrics.push(monotonicPart(last));
    this.lastMetrics.delete(worker.id);
    this.peers.get(worker.id)?.close('worker exited');
    this.peers.delete(worker.id);
    if (this.sweeperId === worker.id) this.sweeperId = undefined;
    this.locks.releaseAll(worker.id);
    if (this.stopping) return;
    if (!this.started) {
      this.failToStart(`a worker exited while starting (code ${code}, signal ${signal})`);
      return;
    }
    this.log.error({ workerPid: worker.process.pid, code, signal }, 'worker died; starting another');
    setTimeout(() => {
      if (!this.stopping) this.fork();
    }, 1000).unref();
  }

  /**
   * Tells every worker whether its memory and disk may answer (false until this node has caught up with the purge
   * stream); a worker forked later is told when it starts listening.
   */
  private trustLocalTiers(trusted: boolean): void {
    this.localTrusted = trusted;
    for (const peer of this.peers.values()) void peer.call('trust-local', { trusted }, 5_000).catch(() => undefined);
  }

  /** Applies a purge in every worker; `within: 'host'` when another node has purged the shared Redis tier already. */
  private readonly purgeNode: NodePurge = async (request, within) => {
    // Applied through the workers that listen: one still starting holds nothing yet (and cannot answer). With
    // none listening (every worker being replaced), the purge waits for the first to listen: it is not lost.
    await this.someListening();
    const targets = this.answeringPeers();
    const [first, ...others] = targets.map(([, peer]) => peer);
    if (first === undefined) throw new Error('no worker is running');
    // Every worker first records the purge and commits its queued disk writes: a fill that was in flight in any
    // of them cannot then store the purged response after the deletes below (see CacheStore.put). A worker that
    // does not answer (it is dying) is not waited for.
    await Promise.allSettled([first, ...others].map((peer) => peer.call('purge-fence', request, PURGE_TIMEOUT_MS)));
    // One worker purges the shared tiers (and its memory) and waits for the deletes to commit; only then do
    // the others purge their memory, so none of them can copy a purged entry back from disk in between.
    const shared = await first.call<number>('purge', { request, ...(within && { within }) }, PURGE_TIMEOUT_MS);
    const counts = await Promise.all(others.map((peer) => peer.call<number>('purge', { request, within: 'process' }, PURGE_TIMEOUT_MS)));
    const affected = Math.max(shared, ...counts);
    // A worker that started listening meanwhile may have copied a purged entry from the disk tier into its memory
    // before the shared tiers were purged, or stored a fill that predates the purge after it: it applies the
    // whole purge too, as the first worker did (rare, and idempotent).
    const late = this.answeringPeers().filter(([id]) => !targets.some(([target]) => target === id));
    await Promise.allSettled(
      late.map(async ([, peer]) => {
        await peer.call('purge-fence', request, PURGE_TIMEOUT_MS);
        await peer.call<number>('purge', { request, ...(within && { within }) }, PURGE_TIMEOUT_MS);
      }),
    );
    // Counted once here, not by each worker that applied its part.
    countPurge(this.stats, request.invalidation === true, affected);
    return affected;
  };

  /**
   * Ready while at least one worker listens and the workers' tiers can do their job (asked of each worker; one
   * that does not answer in time is left out). Not while stopping.
   */
  private async unready(): Promise<string[]> {
    if (this.draining) return ['draining: shutting down'];
    if (this.listeningWorkers.size === 0) return ['no worker is listening'];
    const answers = await Promise.all(this.answeringPeers().map(([, peer]) => peer.call<string[]>('unready', {}, 300).catch(() => [])));
    return [...new Set(answers.flat())];
  }

  /**
   * /metrics: every live worker's (one of them reporting the shared tiers' figures), the dead workers' last
   * counters, and the primary's own, summed.
   */
  private async metricsText(): Promise<string> {
    await Promise.all(
      this.answeringPeers().map(([id, peer], index) =>
        peer.call<MetricsJson>('metrics', { shared: index === 0 }, 5_000).then(
          (json) => {
            if (this.peers.has(id)) this.lastMetrics.set(id, json);
          },
          () => undefined,
        ),
      ),
    );
    // A worker that did not answer counts with its last figures, stale rather than missing.
    return aggregateWorkers([...this.lastMetrics.values(), ...this.retiredMetrics, await this.metrics.json(true)]);
  }

  /**
   * The workers that have listened, which the admin API and purges ask. A worker still starting (forked, loading
   * its modules) has no channel listener yet: a message sent to it then is lost, and asking it would wait for the
   * call's whole timeout (5 s on /stats, 120 s on a purge). It has served nothing and holds nothing yet.
   */
  private answeringPeers(): Array<[number, RpcPeer]> {
    return [...this.peers].filter(([id]) => this.listeningWorkers.has(id));
  }

  /** Resolves once a worker listens (at once when one does); rejects after PURGE_TIMEOUT_MS without one. */
  private someListening(): Promise<void> {
    if (this.listeningWorkers.size > 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const listened = (): void => {
        clearTimeout(timer);
        cluster.off('listening', listened);
        resolve();
      };
      const timer = setTimeout(() => {
        cluster.off('listening', listened);
        reject(new Error('no worker is running'));
      }, PURGE_TIMEOUT_MS);
      cluster.on('listening', listened);
    });
  }

  private async snapshot(): Promise<Record<string, unknown>> {
    const parts = await Promise.all(this.answeringPeers().map(([, peer]) => peer.call<Record<string, unknown>>('stats', {}, 5_000).catch(() => undefined)));
    // `workersListening`: how many of them accept connections now (fewer while one is being replaced or starts).
    return { workersListening: this.listeningWorkers.size, ...sumWorkerStats(parts, this.stats.toJSON(), this.peers.size) };
  }
}
