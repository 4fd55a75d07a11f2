/**
 * Builds an edgecache instance from a configuration: the store, the origin client, the Fastify app for the
 * proxy port (hit path in front of the router, the cache pipeline for GET/HEAD, pass-through for the rest),
 * and the admin app. Nothing listens until `listen()`.
 */
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CacheStore, PurgeOptions, PurgeSelector } from '../cache-store/cache-store.js';
import { loadRedisClient } from '../cache-store/redis/connect.js';
import type { EdgecacheConfig } from '../config/settings.js';
import type { Scheme } from '../policies/http/cache-key.js';
import { Freshness } from '../policies/http/freshness.js';
import { buildAdmin } from './admin/admin-app.js';
import { buildStore, DataDirError } from '../cache-store/build-store.js';
import { CachePipeline } from './pipeline/cache-pipeline.js';
import { OutcomeRecorder } from './pipeline/outcome.js';
import { LocalCoordinator, type Coordinator, type PurgeRequest } from './cluster/coordinator.js';
import { createHitPath } from './http/hit-path.js';
import { probeRawHead } from './http/raw-head.js';
import { createLogger } from './logger.js';
import { Forwarding } from './origin/forwarding.js';
import { OriginClient } from './origin/origin-client.js';
import { registerPassthrough, upgradeConstraint } from './http/passthrough.js';
import { registerPurgeMethod, type Purger } from './purge/routes.js';
import { PARSER_MAX_FIELDS } from './http/request-limits.js';
import { registerRequestChecks, targetOf } from './http/request-target.js';
import { ALLOWED_METHODS, closingErrorResponse, sendError, writeError } from './http/error-answer.js';
import { broadcasting, PurgeBroadcast, type NodePurge } from './purge/broadcast.js';
import { startupError } from './startup.js';
import { countPurge, processMemory, ProxyStats } from './admin/stats.js';

/** What a coordinator factory gets to work with (see cluster-worker.ts). */
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

/**
 * Node's parser rejected the request: answer in one short plain-text line, with X-Cache and Cache-Status like
 * every other response, and close. Returns whether an answer was written.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: import('node:net').Socket): boolean {
  if (!socket.writable) {
    socket.destroy();
    return false;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  socket.end(closingErrorResponse(status, `${(http.STATUS_CODES[status] as string).toLowerCase()}: ${err.code ?? 'malformed request'}`));
  return true;
}

/** CONNECT (tunnels) is not something a caching reverse proxy does: 405, one line, and close. */
function answerConnect(socket: import('node:net').Socket): void {
  socket.on('error', () => socket.destroy());
  socket.end(closingErrorResponse(405, 'method CONNECT is not supported', { fields: { allow: ALLOWED_METHODS } }));
}

export async function createEdgecache(config: EdgecacheConfig, overrides: EdgecacheOverrides = {}): Promise<Edgecache> {
  const now = overrides.now ?? Date.now;
  const log = overrides.logger ?? createLogger(config.logLevel);
  const stats = new ProxyStats();
  const freshness = new Freshness({ cacheSetCookie: config.cacheSetCookie, staleIfErrorGrace: config.staleIfErrorGrace, now });
  if (config.redis) await loadRedisClient();
  let store: CacheStore;
  try {
    store = buildStore({ config, freshness, log, now, sweeper: overrides.sweeper ?? true });
  } catch (err) {
    throw err instanceof DataDirError ? startupError(err.message, err.cause) : err;
  }
  const origin = new OriginClient({
    origin: config.origin,
    connections: config.originConnections,
    connectTimeout: config.originConnectTimeout,
    headersTimeout: config.originHeadersTimeout,
    bodyTimeout: config.originBodyTimeout,
  });
  const forwarding = new Forwarding({
    originHost: origin.host,
    preserveHost: config.preserveHost,
    trustForwarded: config.trustForwarded,
    exposeTagHeaders: config.exposeTagHeaders,
  });
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
  const purge: Purger = (selector, soft) => coordinator.purge({ selector, soft });
  const outcomes = new OutcomeRecorder(stats);
  const pipeline = new CachePipeline({
    store,
    freshness,
    origin,
    stats,
    outcomes,
    log,
    now,
    maxObjectSize: config.maxObjectSize,
    forwarding,
    jitter: config.ttlJitter > 0 ? () => Math.random() * (config.ttlJitter / 100) : () => 0,
    coalesce: config.coalesce,
    coalesceWait: config.coalesceWait,
    hitForMiss: config.hitForMiss,
    exposeTagHeaders: config.exposeTagHeaders,
    coordinator,
  });
  // Prepared hit heads, if this Node writes them as expected (checked once per process).
  await probeRawHead();
  const serveFreshHit = createHitPath(store, outcomes, now, LISTENER_SCHEME);

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Fresh hits are answered before Fastify's router; the rest is handed to Fastify.
    serverFactory: (handler) => {
      // A missing Host is refused by the onRequest hook (one line, counted in badRequests), not by Node's bare 400.
      const server = http.createServer({ requireHostHeader: false }, (req, res) => {
        if (!serveFreshHit(req, res)) handler(req, res);
      });
      // Fields beyond this are dropped by node:http; one more than accepted shows a request over the limit.
      server.maxHeadersCount = PARSER_MAX_FIELDS;
      // CONNECT is not proxied; without a listener Node would drop the connection without an answer.
      server.on('connect', (_req: http.IncomingMessage, socket: import('node:net').Socket) => answerConnect(socket));
      return server;
    },
    clientErrorHandler: (err, socket) => {
      if (answerClientError(err, socket)) stats.badRequests++;
    },
    return503OnClosing: true,
    forceCloseConnections: true,
    routerOptions: { maxParamLength: 65_535, constraints: { upgrade: upgradeConstraint } },
  });

  // Every request's field count, target and Host are checked before routing; the target is carried to every handler.
  registerRequestChecks(app, LISTENER_SCHEME, () => stats.badRequests++);

  const cacheRoutes = async (scope: FastifyInstance): Promise<void> => {
    scope.route({
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
  };
  await app.register(cacheRoutes);
  registerPurgeMethod(app, { purge, stats, token: config.adminToken });
  await registerPassthrough(app, {
    origin: config.origin,
    invalidate: (urls) => coordinator.purge({ selector: { urls }, soft: false, invalidation: true }),
    stats,
    outcomes,
    forwarding,
    dispatcher: origin.dispatcher,
  });
  app.setErrorHandler((error, request, reply) => {
    const err = error as { statusCode?: number; message: string };
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) log.error({ err, url: request.url }, 'request failed');
    void sendError(reply, status, status === 500 ? 'internal error' : err.message);
  });
  app.setNotFoundHandler((request, reply) => {
    void sendError(reply, 405, `method ${request.method} is not supported`, { fields: { allow: ALLOWED_METHODS } });
  });

  const startedAt = Date.now();
  // Event-loop delay: the first thing to look at when latency has a tail (a long synchronous step somewhere).
  const loopResolutionMs = 10;
  const loopDelay = monitorEventLoopDelay({ resolution: loopResolutionMs });
  loopDelay.enable();
  // The histogram records the time between two samples, so an idle loop reads as the sampling interval: the
  // delay is what exceeds it (in ms, to the microsecond).
  const delayMs = (ns: number): number => Math.max(0, Math.round(ns / 1e3 - loopResolutionMs * 1e3) / 1e3);
  const snapshot = async (): Promise<Record<string, unknown>> => ({
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    eventLoopDelayMs: { p50: delayMs(loopDelay.percentile(50)), p99: delayMs(loopDelay.percentile(99)), max: delayMs(loopDelay.max) },
    memory: processMemory(),
    ...stats.toJSON(),
    tiers: Object.fromEntries(store.stats().map((t) => [t.name, t])),
  });
  let closing = false;
  // Ready while the proxy port accepts connections: listen() opens it before the admin port, close() closes it
  // first, and /healthz says 503 from the moment close() starts.
  const admin =
    overrides.admin === false
      ? undefined
      : buildAdmin({ snapshot, healthy: async () => !closing && app.server.listening, stats, log, purge, token: config.adminToken });

  return {
    app,
    admin,
    store,
    stats,
    pipeline,
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
      loopDelay.disable();
      await app.close();
      await admin?.close();
      await pipeline.idle();
      await broadcast?.close();
      await origin.close();
      await store.close();
    },
  };
}
