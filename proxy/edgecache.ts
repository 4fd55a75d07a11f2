/**
 * Builds an edgecache instance from a configuration, step by step: the store (openStore), the origin pool
 * (connectOrigin), how purges are applied (setUpPurging), the cache pipeline (createPipeline), the proxy port's
 * app with the hit path in front of its router (http/listener.ts) and its routes (registerRoutes), and the admin
 * app. Nothing listens until `listen()`. docs/architecture.md draws the whole request path.
 */
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CacheStore } from '../cache-store/cache-store.js';
import type { PurgeOptions } from '../cache-store/purge.js';
import { loadRedisClient } from '../cache-store/redis/connect.js';
import type { EdgecacheConfig } from '../config/settings.js';
import type { Scheme } from '../policies/http/cache-key.js';
import { Freshness } from '../policies/http/freshness.js';
import { targetedFieldList } from '../policies/http/targeted-cache-control.js';
import { buildAdmin } from './admin/admin-app.js';
import { buildStore, DataDirError, type StoreDependencies } from '../cache-store/build-store.js';
import { CachePipeline, type PipelineOptions } from './pipeline/cache-pipeline.js';
import { PostPipeline, postFailure } from './pipeline/post-pipeline.js';
import { OutcomeRecorder } from './pipeline/outcome.js';
import { LocalCoordinator, type Coordinator, type PurgeRequest } from './cluster/coordinator.js';
import { createH2HitPath, createHitPath } from './http/hit-path.js';
import { Drain } from './http/drain.js';
import { TlsCredentials } from './http/tls.js';
import { probeRawHead } from './http/raw-head.js';
import { createLogger } from './logger.js';
import { Compressor } from './pipeline/compressor.js';
import type { Coding } from '../policies/http/content-coding.js';
import { Forwarding } from './origin/forwarding.js';
import { OriginClient } from './origin/origin-client.js';
import { createProxyApp } from './http/listener.js';
import { registerPassthrough } from './http/passthrough.js';
import { registerPurgeMethod, type Purger } from './purge/routes.js';
import { targetOf } from './http/request-target.js';
import { writeError } from './http/error-answer.js';
import { broadcasting, createBroadcast, type PurgeBroadcast, type NodePurge } from './purge/broadcast.js';
import { NetworkCoordinator, RedisLeases } from './cluster/redis-leases.js';
import { startupError } from './startup.js';
import { ProcessStats } from './admin/process-stats.js';
import { countPurge, ProxyStats } from './admin/stats.js';
import { ProxyMetrics } from './admin/metrics.js';
import { HotKeys } from './admin/hot-keys.js';
import { AccessLog } from './http/access-log.js';

/** What a coordinator factory gets to work with (see cluster/worker.ts). */
export interface CoordinatorContext {
  store: CacheStore;
  stats: ProxyStats;
  /** Applies a purge in this process only (within: leave the wider, shared tiers to another process or node). */
  purgeLocally: (request: PurgeRequest, within?: PurgeOptions['within']) => Promise<number>;
}

export interface EdgecacheOverrides {
  /** Clock in epoch ms, for tests. */
  now?: () => number;
  logger?: Logger;
  /** Coordination with other worker processes; a single process coordinates with nobody. */
  coordinator?: (context: CoordinatorContext) => Coordinator;
  /** Whether this process serves the admin API (workers leave it to the cluster primary). Default true. */
  admin?: boolean;
  /** Whether this process sweeps expired entries from the disk tier (one process per data directory). Default true. */
  sweeper?: boolean;
  /**
   * Whether this process exchanges purges with the other nodes that share the Redis (with --redis). Default
   * true; workers leave it to the cluster primary, which speaks for the whole node.
   */
  broadcastPurges?: boolean;
  /** TLS session-ticket keys shared by the workers (cluster/primary.ts makes them); a single process makes its own. */
  ticketKeys?: Buffer | undefined;
}

export interface Edgecache {
  app: FastifyInstance;
  admin: FastifyInstance | undefined;
  store: CacheStore;
  stats: ProxyStats;
  pipeline: CachePipeline;
  /** Makes the compressed forms of stored responses in the background (--compress); `idle()` awaits them. */
  compressor: Compressor;
  /** This process's Prometheus metrics (admin/metrics.ts). */
  metrics: ProxyMetrics;
  /** The hottest keys of this process's fresh hits (the dashboard's list). */
  hotKeys: HotKeys;
  /** With --redis (and not under --workers, where the primary holds it): the purge stream shared with the other nodes. */
  broadcast: PurgeBroadcast | undefined;
  /** This process's /stats document. */
  snapshot(): Promise<Record<string, unknown>>;
  /** Why this process cannot serve now (not listening, a tier closed or unable to write, draining); empty when ready. */
  unready(): string[];
  /** Starts both listeners; resolves with the bound ports. */
  listen(): Promise<{ port: number; adminPort: number }>;
  /**
   * The graceful shutdown (SIGTERM): stop accepting, serve what arrives on open connections with Connection:
   * close, wait up to `graceMs` for the responses and fills in flight, then close() (which flushes the tiers).
   */
  drain(graceMs: number): Promise<void>;
  /** The proxy port's scheme: https with --tls-cert. */
  scheme: Scheme;
  /**
   * Reads --tls-cert and --tls-key again (SIGHUP) and uses them for new connections; returns the problem (one
   * line) when they are unusable and the previous certificate stays. Without TLS, there is nothing to reload.
   */
  reloadTls(): string | undefined;
  close(): Promise<void>;
}



export async function createEdgecache(config: EdgecacheConfig, overrides: EdgecacheOverrides = {}): Promise<Edgecache> {
  const now = overrides.now ?? Date.now;
  const log = overrides.logger ?? createLogger(config.logLevel);
  const stats = new ProxyStats();
  const freshness = new Freshness({
    cacheSetCookie: config.cacheSetCookie,
    staleIfErrorGrace: config.staleIfErrorGrace,
    targetedFields: targetedFieldList(config.targetedCacheControl),
    now,
  });
  const store = await openStore(config, { log, now, sweeper: overrides.sweeper ?? true });
  const metrics = new ProxyMetrics(stats, store);
  const accessLog = config.accessLog === 'on' ? new AccessLog(config.logRedactQuery) : undefined;
  const origin = connectOrigin(config, (seconds) => metrics.originDuration.observe(0, seconds));
  const forwarding = new Forwarding({
    originHost: origin.host,
    preserveHost: config.preserveHost,
    trustForwarded: config.trustForwarded,
    exposeTagHeaders: config.exposeTagHeaders,
    compress: config.compress !== 'off',
  });
  const compressor = new Compressor({ codings: compressCodings(config.compress), minSize: config.compressMinSize, store });
  metrics.addCompression(compressor.stats);
  const purging = setUpPurging(config, overrides, { store, stats, log, now });
  const outcomes = new OutcomeRecorder(stats, metrics, accessLog);
  const pipeline = createPipeline(config, { store, freshness, origin, stats, outcomes, log, now, forwarding, coordinator: purging.coordinator, compressor });
  const postPipeline = createPostPipeline(config, { store, freshness, origin, stats, outcomes, log, now, forwarding });
  // Prepared hit heads, if this Node writes them as expected (checked once per process).
  await probeRawHead();
  const drain = new Drain();
  const hotKeys = new HotKeys();
  // TLS (--tls-cert, --tls-key): files read and checked now, a problem is a start-up failure (exit 1).
  const tls = config.tlsCert && config.tlsKey ? TlsCredentials.load(config.tlsCert, config.tlsKey, overrides.ticketKeys) : undefined;
  // The listener's scheme decides the default port a Host may leave out (`a.test:80` is `a.test` on http, 443 on
  // https), in keys, forwarding and purges alike, and https keys are apart from http ones (cache-key.ts keyPrefix).
  const scheme: Scheme = tls ? 'https' : 'http';
  const app = createProxyApp({
    log,
    stats,
    scheme,
    drain,
    outcomes,
    hitPath: createHitPath(store, outcomes, now, scheme, hotKeys),
    tls,
    http2: { h2c: config.h2c, maxStreams: config.h2MaxStreams, hitPath: createH2HitPath(store, outcomes, now, scheme) },
  });
  await registerRoutes(app, config, { pipeline, postPipeline, purging, origin, stats, outcomes, forwarding, log });
  const processStats = new ProcessStats(stats, store, compressor.stats);
  const snapshot = async (): Promise<Record<string, unknown>> => processStats.snapshot();
  let closing = false;
  // Ready while the proxy port accepts connections and every tier can do its job: listen() opens the proxy port
  // before the admin port, and /readyz says 503 from the moment draining (or close()) starts.
  const unready = (): string[] => {
    if (closing || drain.draining) return ['draining: shutting down'];
    const problems = app.server.listening ? [] : ['the proxy port is not listening'];
    return [...problems, ...store.unready()];
  };
  const admin =
    overrides.admin === false
      ? undefined
      : buildAdmin({ snapshot, metrics: () => metrics.text(), hotKeys: async (limit) => hotKeys.top(limit), unready: async () => unready(), stats, log, purge: purging.purge, token: config.adminToken });
  const close = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    processStats.stop();
    await app.close();
    await admin?.close();
    await pipeline.idle();
    await postPipeline?.idle();
    await compressor.idle();
    await purging.broadcast?.close();
    await purging.leases?.close();
    await origin.close();
    // Commits the disk tier's queued writes and sends Redis its queued ones before closing them.
    await store.close();
    accessLog?.flush();
  };

  return {
    app,
    admin,
    store,
    stats,
    pipeline,
    compressor,
    metrics,
    hotKeys,
    broadcast: purging.broadcast,
    snapshot,
    unready,
    scheme,
    reloadTls() {
      if (!tls) return 'TLS is not configured (--tls-cert, --tls-key)';
      const problem = tls.reload(app.server as unknown as TlsServer);
      if (problem === undefined) log.info({ cert: config.tlsCert }, 'TLS certificate and key reloaded');
      else log.error(`TLS reload failed, keeping the previous certificate: ${problem}`);
      return problem;
    },
    async listen() {
      // A deep accept queue: a burst of new connections (a thousand clients at once) must not overflow it.
      await app.listen({ port: config.port, host: config.host, backlog: 4096 }).catch((err: unknown) => {
        throw startupError(`cannot listen on ${config.host}:${config.port} (--host, --port)`, err);
      });
      await admin?.listen({ port: config.adminPort, host: config.adminHost }).catch((err: unknown) => {
        throw startupError(`cannot listen on ${config.adminHost}:${config.adminPort} (--admin-host, --admin-port)`, err);
      });
      return {
        port: (app.server.address() as AddressInfo).port,
        adminPort: admin ? (admin.server.address() as AddressInfo).port : 0,
      };
    },
    async drain(graceMs) {
      drain.start(app.server);
      const started = Date.now();
      const deadline = started + graceMs;
      // Idle keep-alive connections stay open a while (--shutdown-linger): a load balancer that has not yet heard
      // of the shutdown sends its next requests on them, and each is served (with Connection: close, which ends
      // that connection) instead of meeting a closed connection.
      const lingerUntil = started + Math.min(config.shutdownLinger, graceMs);
      const busy = (): boolean => {
        const { fills, refreshes } = pipeline.tracked();
        return drain.busy() || fills + refreshes > 0 || (drain.connections > 0 && Date.now() < lingerUntil);
      };
      // Responses in flight (hits, relays, fills' clients) and fills (background refreshes too) finish.
      while (Date.now() < deadline && busy()) await new Promise((resolve) => setTimeout(resolve, 25));
      if (busy()) log.warn({ graceMs, connections: drain.connections }, 'shutdown grace over: closing what is still in flight');
      await close();
    },
    close,
  };
}

/** The tiers (buildStore); an unusable --data-dir is a start-up failure the operator fixes (exit 1). */
async function openStore(config: EdgecacheConfig, deps: Omit<StoreDependencies, 'config'>): Promise<CacheStore> {
  // ioredis is loaded only with --redis: a proxy without it does not pay its memory and start-up time.
  if (config.redis) await loadRedisClient();
  try {
    return buildStore({ config, ...deps });
  } catch (err) {
    throw err instanceof DataDirError ? startupError(err.message, err.cause) : err;
  }
}

/** The undici Pool to the origin, for the cache fills and the pass-through alike. */
function connectOrigin(config: EdgecacheConfig, onHeaders: (seconds: number) => void): OriginClient {
  return new OriginClient({
    onHeaders,
    origin: config.origin,
    connections: config.originConnections,
    connectTimeout: config.originConnectTimeout,
    headersTimeout: config.originHeadersTimeout,
    bodyTimeout: config.originBodyTimeout,
  });
}

interface Purging {
  /** Who fetches a cold key, and how purges reach every process (LocalCoordinator in a single process). */
  coordinator: Coordinator;
  /** An operator's purge (PURGE, POST /purge), applied everywhere it must take effect. */
  purge: Purger;
  /** With --redis, the channel to the other nodes (closed on shutdown). */
  broadcast: PurgeBroadcast | undefined;
  /** With --redis, the fill leases shared with the other nodes (closed on shutdown). */
  leases: RedisLeases | undefined;
}

/**
 * How purges are applied: to this process's tiers (purgeLocally), to the whole node and counted (purgeNode), and
 * with --redis told to the other nodes. Under --workers the worker's coordinator sends them to the cluster
 * primary instead, which does the same for every worker.
 */
function setUpPurging(
  config: EdgecacheConfig,
  overrides: EdgecacheOverrides,
  { store, stats, log, now }: { store: CacheStore; stats: ProxyStats; log: Logger; now: () => number },
): Purging {
  // Applies a purge to this process's tiers (or those within a reach). It is counted in /stats by whoever applies it
  // to the whole node (purgeNode): here for a single process, the cluster primary under --workers.
  const purgeLocally = async ({ selector, soft, invalidation }: PurgeRequest, within?: PurgeOptions['within']): Promise<number> => {
    const affected = await store.purge(selector, { soft, now: now(), ...(within && { within }) });
    // The purge has taken effect for every process only once the shared tiers have committed it.
    await store.flush();
    if (!invalidation) log.info({ selector, soft, affected, within: within ?? 'all' }, 'purge');
    return affected;
  };
  // With a shared Redis, purges may have been published while this node was down: its memory and disk answer only
  // once it has read the purge stream (the broadcast says so; under --workers, the cluster primary does).
  if (config.redis) store.trustLocalTiers(false);
  const broadcast = config.redis && overrides.broadcastPurges !== false ? createBroadcast(config, stats, log) : undefined;
  const purgeNode: NodePurge = async (request, within) => {
    const affected = await purgeLocally(request, within);
    countPurge(stats, request.invalidation === true, affected);
    return affected;
  };
  const inner =
    overrides.coordinator?.({ store, stats, purgeLocally }) ?? new LocalCoordinator(broadcast ? broadcasting(purgeNode, broadcast, (trusted) => store.trustLocalTiers(trusted)) : purgeNode);
  // With --redis a cold key costs one origin fetch across the nodes: the fetching process takes a lease in Redis.
  const leases = config.redis
    ? new RedisLeases({
        url: config.redis,
        cluster: config.redisCluster,
        prefix: config.redisPrefix,
        leaseMs: config.redisLease,
        timeoutMs: config.redisTimeout,
        log: log.child({ component: 'fill-leases' }),
        landed: (key) => store.landedInShared(key),
      })
    : undefined;
  const coordinator = leases ? new NetworkCoordinator(inner, leases) : inner;
  return { coordinator, purge: (selector, soft) => coordinator.purge({ selector, soft }), broadcast, leases };
}

/** The codings --compress names, in edgecache's order of preference. */
function compressCodings(setting: EdgecacheConfig['compress']): Coding[] {
  return setting === 'off' ? [] : (setting.split(',') as Coding[]);
}

/** The GET/HEAD pipeline, with the settings it reads. */
function createPipeline(config: EdgecacheConfig, deps: Omit<PipelineOptions, PipelineSettings>): CachePipeline {
  return new CachePipeline({
    ...deps,
    maxObjectSize: config.maxObjectSize,
    jitter: config.ttlJitter > 0 ? () => Math.random() * (config.ttlJitter / 100) : () => 0,
    coalesce: config.coalesce,
    coalesceWait: config.coalesceWait,
    hitForMiss: config.hitForMiss,
    exposeTagHeaders: config.exposeTagHeaders,
    sliceSize: config.sliceSize,
  });
}

/** The cached-POST path (--cache-post), or undefined when no prefix is listed. */
function createPostPipeline(
  config: EdgecacheConfig,
  deps: Pick<PipelineOptions, 'store' | 'freshness' | 'origin' | 'stats' | 'outcomes' | 'log' | 'now' | 'forwarding'>,
): PostPipeline | undefined {
  if (config.cachePost === undefined || config.cachePost.length === 0) return undefined;
  return new PostPipeline({
    ...deps,
    prefixes: config.cachePost,
    maxBody: config.cachePostMaxBody,
    ttl: config.cachePostTtl,
    rules: { ignoreFields: new Set(config.cachePostIgnoreFields ?? []), keyHeaders: config.cachePostKeyHeaders ?? [], shared: config.cachePostShared },
    maxObjectSize: config.maxObjectSize,
    jitter: config.ttlJitter > 0 ? () => Math.random() * (config.ttlJitter / 100) : () => 0,
    coalesce: config.coalesce,
    coalesceWait: config.coalesceWait,
    exposeTagHeaders: config.exposeTagHeaders,
  });
}

type PipelineSettings = 'maxObjectSize' | 'jitter' | 'coalesce' | 'coalesceWait' | 'hitForMiss' | 'exposeTagHeaders' | 'sliceSize';

interface RouteDependencies {
  pipeline: CachePipeline;
  postPipeline: PostPipeline | undefined;
  purging: Purging;
  origin: OriginClient;
  stats: ProxyStats;
  outcomes: OutcomeRecorder;
  forwarding: Forwarding;
  log: Logger;
}

/** The proxy port's routes: GET/HEAD through the cache pipeline, PURGE, and the pass-through for the rest. */
async function registerRoutes(app: FastifyInstance, config: EdgecacheConfig, deps: RouteDependencies): Promise<void> {
  const { pipeline, postPipeline, purging, origin, stats, outcomes, forwarding, log } = deps;
  if (postPipeline) {
    // A POST to a --cache-post prefix is a cached lookup: taken before routing, its body still unread.
    app.addHook('onRequest', (request, reply, done) => {
      if (request.raw.method !== 'POST') return done();
      const target = targetOf(request);
      if (!postPipeline.caches(target.path)) return done();
      reply.hijack();
      postPipeline.handle(request.raw, reply.raw, target).catch((err: unknown) => {
        log.error({ err, url: request.url }, 'request failed');
        postFailure(reply.raw);
      });
    });
  }
  app.route({
    method: ['GET', 'HEAD'],
    url: '/*',
    handler: (request, reply) => {
      reply.hijack();
      pipeline.handle(request.raw, reply.raw, targetOf(request)).catch((err: unknown) => {
        log.error({ err, url: request.url }, 'request failed');
        writeError(reply.raw, 500, 'internal error');
      });
    },
  });
  registerPurgeMethod(app, { purge: purging.purge, stats, token: config.adminToken });
  await registerPassthrough(app, {
    origin: config.origin,
    invalidate: (urls) => purging.coordinator.purge({ selector: { urls }, soft: false, invalidation: true }),
    stats,
    outcomes,
    forwarding,
    originClient: origin,
  });
}
