/**
 * The checks every request passes before anything answers it, in one place: no more header fields than
 * edgecache accepts (request-limits.ts: 431), and a target in origin-form with exactly one well-formed Host
 * (policies/http/cache-key.ts checkTarget: 400). The validated target (normalised host, path, cache key) is then
 * carried on the request to every handler: the cache route, PURGE and the pass-through read it with targetOf().
 *
 * The hit path runs first, before Fastify's router, and calls the same checkRequest(): on a hit no
 * RequestTarget object is built (the hit path keys on the host checkRequest returns and the URL as received,
 * and answers nothing that has a fragment or fails a check), since nothing may be allocated there per hit. A
 * request the hit path does not answer is checked again by the router's hook, which builds the target once. The
 * check is cheap (an O(1) field count, a scan of the Host fields, a memoized Host), so running it twice on a miss
 * costs less than carrying a result across would; and both paths decide by the one function.
 */
import type { IncomingMessage } from 'node:http';
import type { IncomingHttpHeaders as H2Headers } from 'node:http2';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { checkH2Target, checkTarget, requestTarget, TARGET_PROBLEMS, type RequestTarget, type Scheme, type TargetProblem } from '../../policies/http/cache-key.js';
import { writeError } from './error-answer.js';
import { hasTooManyFields, TOO_MANY_FIELDS_MESSAGE } from './request-limits.js';

/** Why a request is refused before it is answered: the status and the one line the client gets. */
export interface RequestRefusal {
  readonly status: 400 | 431;
  readonly message: string;
}

const TOO_MANY_FIELDS: RequestRefusal = { status: 431, message: TOO_MANY_FIELDS_MESSAGE };
const REFUSALS = new Map<TargetProblem, RequestRefusal>(
  Object.values(TARGET_PROBLEMS).map((problem) => [problem, { status: 400, message: `bad request: ${problem.problem}` }]),
);

/**
 * The normalised Host of a request edgecache may answer, or why it must be refused. Allocates nothing (the
 * refusals are made once), so the hit path can call it on every request. `scheme` is the listener's.
 */
export function checkRequest(req: IncomingMessage, scheme: Scheme): string | RequestRefusal {
  const rawHeaders = req.rawHeaders;
  // Too many fields: some may have been dropped by node:http (see request-limits.ts).
  if (hasTooManyFields(rawHeaders)) return TOO_MANY_FIELDS;
  const host = checkTarget(req.url ?? '', req.headers.host, rawHeaders, scheme);
  return typeof host === 'string' ? host : (REFUSALS.get(host) as RequestRefusal);
}

/**
 * checkRequest for an HTTP/2 stream, from its header object and raw fields (the hit path for h2 and the routing of a
 * stream to Fastify, see h2-streams.ts): `:authority` stands for Host. Allocates nothing.
 */
export function checkH2Request(headers: H2Headers, rawHeaders: readonly string[], scheme: Scheme): string | RequestRefusal {
  if (hasTooManyFields(rawHeaders)) return TOO_MANY_FIELDS;
  const host = checkH2Target(headers[':path'] ?? '', headers[':authority'], headers.host, scheme);
  return typeof host === 'string' ? host : (REFUSALS.get(host) as RequestRefusal);
}

const TARGET = Symbol('edgecache.target');

type RequestWithTarget = FastifyRequest & { [TARGET]?: RequestTarget };

/**
 * Checks every request that reaches the router (an onRequest hook, before routing): a refused one gets its
 * one-line answer and `onRefused` is called; an accepted one carries its target to the handlers.
 */
export function registerRequestChecks(app: FastifyInstance, scheme: Scheme, onRefused: () => void): void {
  app.addHook('onRequest', (request, reply, done) => {
    const raw = request.raw;
    const host = checkRequest(raw, scheme);
    if (typeof host !== 'string') {
      onRefused();
      reply.hijack();
      writeError(reply.raw, host.status, host.message);
      return;
    }
    (request as RequestWithTarget)[TARGET] = requestTarget(raw.url as string, host, scheme);
    done();
  });
}

/** The validated target of a request that passed registerRequestChecks' hook. */
export function targetOf(request: object): RequestTarget {
  const target = (request as RequestWithTarget)[TARGET];
  if (target === undefined) throw new Error('request target read before the request checks ran');
  return target;
}
