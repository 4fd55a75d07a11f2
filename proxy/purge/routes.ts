/**
 * The purge interfaces: `PURGE <url>` on the proxy port (curl-friendly, one URL and all its variants; soft with
 * `Soft-Purge: 1`) and `POST /purge` on the admin port (URLs, prefixes, tags, everything; hard or soft).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { PurgeSelector } from '../../cache-store/purge.js';
import { keysForSchemes } from '../../policies/http/cache-key.js';
import { authorizePurge, PURGE_BODY_SCHEMA, selectorFromBody, type AuthResult, type PurgeBody } from './purge-request.js';
import type { ProxyStats } from '../admin/stats.js';
import { sendError } from '../http/error-answer.js';
import { targetOf } from '../http/request-target.js';
import { outcomeFields } from '../pipeline/outcome.js';

/** Applies a purge everywhere it must take effect; resolves with the number of entries affected. */
export type Purger = (selector: PurgeSelector, soft: boolean) => Promise<number>;

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/**
 * Refuses a purge: 401 with the challenge when no token was given (RFC 9110 §11.6.1), else 403. On the proxy
 * port the answer says what the cache did (nothing a client could be served from); the admin port caches nothing.
 */
function refuse(reply: FastifyReply, auth: Exclude<AuthResult, 'ok'>, disabledMessage: string, port: 'proxy' | 'admin'): FastifyReply {
  const options = port === 'admin' ? { admin: true } : { cacheStatus: { fwd: 'bypass' as const } };
  if (auth === 'missing') return sendError(reply, 401, 'purge needs Authorization: Bearer <token>', { ...options, fields: { 'www-authenticate': 'Bearer' } });
  return sendError(reply, 403, auth === 'disabled' ? disabledMessage : 'purge refused: wrong token', options);
}

export interface PurgeMethodOptions {
  purge: Purger;
  stats: ProxyStats;
  token: string | undefined;
}

export function registerPurgeMethod(app: FastifyInstance, options: PurgeMethodOptions): void {
  if (!app.supportedMethods.includes('PURGE')) app.addHttpMethod('PURGE');
  app.route({
    method: 'PURGE',
    url: '/*',
    handler: async (request, reply) => {
      // On the proxy port every response says what the cache did: here, nothing a client could be served from.
      const [xcacheName, xcache, cacheStatusName, cacheStatus] = outcomeFields('BYPASS', { fwd: 'bypass' });
      void reply.header(xcacheName, xcache).header(cacheStatusName, cacheStatus);
      const auth = authorizePurge(request.headers.authorization, options.token);
      if (auth !== 'ok') {
        options.stats.purgeAuthFailures++;
        return refuse(reply, auth, 'purge is disabled on this port: set EDGECACHE_ADMIN_TOKEN', 'proxy');
      }
      const target = targetOf(request);
      const soft = /^(1|true|yes)$/i.test(String(request.headers['soft-purge'] ?? ''));
      // Both schemes' keys (cache-key.ts keysForSchemes): a PURGE over either reaches what either kind of client got.
      const purged = await options.purge({ urls: keysForSchemes(target.host, target.path) }, soft);
      return reply.code(200).header('cache-control', 'no-store').send({ status: 'ok', purged, soft });
    },
  });
}

export interface AdminPurgeOptions {
  purge: Purger;
  stats: ProxyStats;
  token: string | undefined;
}

export function registerAdminPurge(admin: FastifyInstance, options: AdminPurgeOptions): void {
  admin.post<{ Body: PurgeBody }>('/purge', {
    schema: { body: PURGE_BODY_SCHEMA },
    // Authentication comes before body validation: an unauthenticated caller learns nothing about the API.
    onRequest: async (request, reply) => {
      let auth = authorizePurge(request.headers.authorization, options.token);
      if (auth === 'disabled' && LOOPBACK.test(request.socket.remoteAddress ?? '')) auth = 'ok';
      if (auth !== 'ok') {
        options.stats.purgeAuthFailures++;
        return refuse(reply, auth, 'purge from outside loopback needs EDGECACHE_ADMIN_TOKEN', 'admin');
      }
    },
    handler: async (request, reply) => {
      const parsed = selectorFromBody(request.body);
      if ('error' in parsed) return reply.code(400).send({ error: 'Bad Request', message: parsed.error });
      const purged = await options.purge(parsed.selector, parsed.soft);
      return { status: 'ok', purged, soft: parsed.soft };
    },
  });
}
