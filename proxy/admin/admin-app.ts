/**
 * The admin listener, on its own port (loopback by default): probes (/livez, /readyz, /healthz), statistics
 * (JSON and Prometheus) and purge. In a single process it reports that process; under --workers it runs in the
 * cluster primary and reports the sum. The probes and /metrics never ask for the admin token (probes and scrapers
 * carry none); purges do whenever a token is set, which a non-loopback --admin-host requires (config/load.ts).
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { METRICS_CONTENT_TYPE } from './metrics.js';
import { DASHBOARD_HTML } from './dashboard.js';

/** How many hottest keys the dashboard lists. */
const HOT_KEYS_SHOWN = 10;
import { registerAdminPurge, type Purger } from '../purge/routes.js';
import type { ProxyStats } from './stats.js';

export interface AdminOptions {
  /** The /stats document. */
  snapshot: () => Promise<Record<string, unknown>>;
  /** The /metrics exposition text (prom-client; under --workers the sum over the workers). */
  metrics: () => Promise<string>;
  /** The hottest keys of fresh hits (the dashboard's list; under --workers merged over the workers). */
  hotKeys: (limit: number) => Promise<Array<{ key: string; hits: number }>>;
  /**
   * Why the node cannot serve now (not listening, no worker alive, a tier closed, the disk tier unable to write,
   * draining): an empty list when it is ready.
   */
  unready: () => Promise<string[]>;
  /** Where purge refusals are counted. */
  stats: ProxyStats;
  log: Logger;
  purge: Purger;
  token: string | undefined;
}

export function buildAdmin(options: AdminOptions): FastifyInstance {
  const admin = Fastify({
    loggerInstance: options.log.child({ component: 'admin' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Validate strictly: an unknown field or a wrong type is a 400, never silently dropped or coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    bodyLimit: 4 * 1024 * 1024,
  });
  // Liveness: the process answers (an orchestrator restarts it when it does not). Nothing else is checked: a
  // full disk or a draining process is alive, and restarting it would not help.
  admin.get('/livez', async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));
  // Readiness: whether a load balancer should send traffic here. /healthz is kept as its alias.
  const readiness = async (_request: unknown, reply: FastifyReply): Promise<FastifyReply> => {
    const problems = await options.unready();
    void reply.header('cache-control', 'no-store');
    if (problems.length === 0) return reply.send({ status: 'ok' });
    return reply.code(503).send({ status: 'unavailable', problems });
  };
  admin.get('/readyz', readiness);
  admin.get('/healthz', readiness);
  admin.get('/stats', () => options.snapshot());
  // The dashboard: one self-contained page (dashboard.ts) reading /metrics and /hot-keys, and purging through /purge.
  admin.get('/', async (_request, reply) => reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(DASHBOARD_HTML));
  admin.get('/hot-keys', async () => ({ keys: await options.hotKeys(HOT_KEYS_SHOWN) }));
  admin.get('/metrics', async (_request, reply) => reply.header('content-type', METRICS_CONTENT_TYPE).send(await options.metrics()));
  registerAdminPurge(admin, { purge: options.purge, stats: options.stats, token: options.token });
  admin.setErrorHandler((err, _request, reply) => {
    const error = err as { statusCode?: number; message: string; validation?: unknown };
    const status = error.validation ? 400 : (error.statusCode ?? 500);
    void reply.code(status).send({ error: status === 400 ? 'Bad Request' : 'Error', message: error.message });
  });
  return admin;
}
