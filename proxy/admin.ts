/** The admin listener, on its own port (loopback by default): health and statistics. */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CacheStore } from '../cache-store/cache-store.js';
import type { ProxyStats } from './stats.js';

export interface AdminOptions {
  store: CacheStore;
  stats: ProxyStats;
  log: Logger;
  startedAt: number;
}

export function buildAdmin(options: AdminOptions): FastifyInstance {
  const admin = Fastify({ loggerInstance: options.log.child({ component: 'admin' }) as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  admin.get('/healthz', async () => ({ status: 'ok' }));
  admin.get('/stats', async () => {
    const tiers = Object.fromEntries(options.store.stats().map((t) => [t.name, t]));
    return {
      uptimeSeconds: Math.round((Date.now() - options.startedAt) / 1000),
      ...options.stats.toJSON(),
      tiers,
    };
  });
  return admin;
}
