/** The admin listener, on its own port (loopback by default): health and statistics. */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CacheStore } from '../cache-store/cache-store.js';
import { registerAdminPurge, type Purger } from './purge-routes.js';
import type { ProxyStats } from './stats.js';

export interface AdminOptions {
  store: CacheStore;
  stats: ProxyStats;
  log: Logger;
  startedAt: number;
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
  admin.get('/healthz', async () => ({ status: 'ok' }));
  admin.get('/stats', async () => {
    const tiers = Object.fromEntries(options.store.stats().map((t) => [t.name, t]));
    return {
      uptimeSeconds: Math.round((Date.now() - options.startedAt) / 1000),
      ...options.stats.toJSON(),
      tiers,
    };
  });
  registerAdminPurge(admin, { purge: options.purge, stats: options.stats, token: options.token });
  admin.setErrorHandler((err, _request, reply) => {
    const error = err as { statusCode?: number; message: string; validation?: unknown };
    const status = error.validation ? 400 : (error.statusCode ?? 500);
    void reply.code(status).send({ error: status === 400 ? 'Bad Request' : 'Error', message: error.message });
  });
  return admin;
}
