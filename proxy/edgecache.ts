/**
 * Builds an edgecache instance from a configuration, step by step: the store (openStore), the origin pool
 * (connectOrigin), how purges are applied (setUpPurging), the cache pipeline (createPipeline), the proxy port's
 * app with the hit path in front of its router (http/listener.ts) and its routes (registerRoutes), and the admin
 * app. Nothing listens until `listen()`. docs/architecture.md draws the whole request path.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CacheStore } from '../cache-store/cache-store.js';
import type { PurgeOptions } from '../cache-store/purge.js';
import { loadRedisClient } from '../cache-store/redis/connect.js';
import type { EdgecacheConfig } from '../config/settings.js';
import type { Scheme } from '../policies/http/cache-key.js';
import { Freshness } from '../policies/http/freshness.js';
import { buildAdmin } from './admin/admin-app.js';
import { buildStore, DataDirError, type StoreDependencies } from '../cache-store/build-store.js';
import { CachePipeline, type PipelineOptions } from './pipeline/cache-pipeline.js';
import { OutcomeRecorder } from './pipeline/outcome.js';
import { LocalCoordinator, type Coordinator, type PurgeRequest } from './cluster/coordinator.js';
import { createHitPath } from './http/hit-path.js';
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
import { broadcasting, PurgeBroadcast, type NodePurge } from './purge/broadcast.js';
import { startupError } from './startup.js';
import { ProcessStats } from './admin/process-stats.js';
import { countPurge, ProxyStats } from './admin/stats.js';

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
}

export interface Edgecache {
  app: FastifyInstance;
  admin: FastifyInstance | undefined;
  store: CacheStore;
  stats: ProxyStats;
  pipeline: CachePipeline;
  /** Makes the compressed forms of stored responses in the background (--compress); `idle()` awaits them. */
  compressor: Compressor;
  /** This process's /stats document. */
  snapshot(): Promise<Record<string, unknown>>;
  /** Starts both listeners; resolves with the bound ports. */
  listen(): Promise<{ port: number; adminPort: number }>;
  close(): Promise<void>;
}

/**
 * The proxy listener's scheme: plain HTTP. It decides the default port a Host may leave out (`a.test:80` is
 * `a.test`), in keys, forwarding and purges alike; a TLS listener will say 'https' (443).
 */
const LISTENER_SCHEME: Scheme = 'http';

export async function createEdgecache(config: EdgecacheConfig, overrides: EdgecacheOverrides = {}): Promise<Edgecache> {
  const now = overrides.now ?? Date.now;
  const log = overrides.logger ?? createLogger(config.logLevel);
  const stats = new ProxyStats();
  const freshness = new Freshness({ cacheSetCookie: config.cacheSetCookie, staleIfErrorGrace: config.staleIfErrorGrace, now });
  const store = await openStore(config, { freshness, log, now, sweeper: overrides.sweeper ?? true });
  const origin = connectOrigin(config);
  const forwarding = new Forwarding({
    originHost: origin.host,
    preserveHost: config.preserveHost,
    trustForwarded: config.trustForwarded,
    exposeTagHeaders: config.exposeTagHeaders,
    compress: config.compress !== 'off',
  });
  const compressor = new Compressor({ codings: compressCodings(config.compress), minSize: config.compressMinSize, store });
  const purging = setUpPurging(config, overrides, { store, stats, log, now });
  const outcomes = new OutcomeRecorder(stats);
  const pipeline = createPipeline(config, { store, freshness, origin, stats, outcomes, log, now, forwarding, coordinator: purging.coordinator, compressor });
  // Prepared hit heads, if this Node writes them as expected (checked once per process).
  await probeRawHead();
  const app = createProxyApp({ log, stats, scheme: LISTENER_SCHEME, hitPath: createHitPath(store, outcomes, now, LISTENER_SCHEME) });
  await registerRoutes(app, config, { pipeline, purging, origin, stats, outcomes, forwarding, log });
  const processStats = new ProcessStats(stats, store);
  const snapshot = async (): Promise<Record<string, unknown>> => processStats.snapshot();
  let closing = false;
  // Ready while the proxy port accepts connections: listen() opens it before the admin port, close() closes it
  // first, and /healthz says 503 from the moment close() starts.
  const admin =
    overrides.admin === false
      ? undefined
      : buildAdmin({ snapshot, healthy: async () => !closing && app.server.listening, stats, log, purge: purging.purge, token: config.adminToken });

  return {
    app,
    admin,
    store,
    stats,
    pipeline,
    compressor,
    snapshot,
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
    async close() {
      closing = true;
      processStats.stop();
      await app.close();
      await admin?.close();
      await pipeline.idle();
      await compressor.idle();
      await purging.broadcast?.close();
      await origin.close();
      await store.close();
    },
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
function connectOrigin(config: EdgecacheConfig): OriginClient {
  return new OriginClient({
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
  const broadcast =
    config.redis && overrides.broadcastPurges !== false
      ? new PurgeBroadcast({ url: config.redis, prefix: config.redisPrefix, timeoutMs: config.redisTimeout, stats, log: log.child({ component: 'purge-broadcast' }) })
      : undefined;
  const purgeNode: NodePurge = async (request, within) => {
    const affected = await purgeLocally(request, within);
    countPurge(stats, request.invalidation === true, affected);
    return affected;
  };
  const coordinator =
    overrides.coordinator?.({ store, stats, purgeLocally }) ?? new LocalCoordinator(broadcast ? broadcasting(purgeNode, broadcast) : purgeNode);
  return { coordinator, purge: (selector, soft) => coordinator.purge({ selector, soft }), broadcast };
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
  });
}

type PipelineSettings = 'maxObjectSize' | 'jitter' | 'coalesce' | 'coalesceWait' | 'hitForMiss' | 'exposeTagHeaders';

interface RouteDependencies {
  pipeline: CachePipeline;
  purging: Purging;
  origin: OriginClient;
  stats: ProxyStats;
  outcomes: OutcomeRecorder;
  forwarding: Forwarding;
  log: Logger;
}

/** The proxy port's routes: GET/HEAD through the cache pipeline, PURGE, and the pass-through for the rest. */
async function registerRoutes(app: FastifyInstance, config: EdgecacheConfig, deps: RouteDependencies): Promise<void> {
  const { pipeline, purging, origin, stats, outcomes, forwarding, log } = deps;
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
    dispatcher: origin.dispatcher,
  });
}
