/**
 * The admin listener, on its own port (loopback by default): health, statistics (JSON and Prometheus) and
 * purge. In a single process it reports that process; under --workers it runs in the cluster primary and
 * reports the sum.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { formatMetrics, METRICS_CONTENT_TYPE } from './metrics.js';
import { registerAdminPurge, type Purger } from '../purge/routes.js';
import type { ProxyStats } from './stats.js';

export interface AdminOptions {
  /** The /stats document (also what /metrics is formatted from). */
  snapshot: () => Promise<Record<string, unknown>>;
  /** Resolves false when the service cannot serve (e.g. no worker alive). */
  healthy: () => Promise<boolean>;
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
  admin.get('/healthz', async (_request, reply) => {
    if (await options.healthy()) return { status: 'ok' };
    return reply.code(503).send({ status: 'unavailable' });
  });
  admin.get('/stats', () => options.snapshot());
  admin.get('/metrics', async (_request, reply) => reply.header('content-type', METRICS_CONTENT_TYPE).send(formatMetrics(await options.snapshot())));
  registerAdminPurge(admin, { purge: options.purge, stats: options.stats, token: options.token });
  admin.setErrorHandler((err, _request, reply) => {
    const error = err as { statusCode?: number; message: string; validation?: unknown };
    const status = error.validation ? 400 : (error.statusCode ?? 500);
    void reply.code(status).send({ error: status === 400 ? 'Bad Request' : 'Error', message: error.message });
  });
  return admin;
}
