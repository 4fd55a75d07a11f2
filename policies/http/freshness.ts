/**
 * Freshness, storability and reuse decisions, as a shared cache (RFC 9111). http-cache-semantics computes
 * storability, the freshness lifetime, Age, revalidation headers and 304 updates; this module wraps it with the
 * guards a shared cache needs where the library is lenient (Set-Cookie, max-stale against must-revalidate,
 * Vary: *), and turns its answers into plain numbers stored with each entry so that the hit path compares two
 * integers instead of re-evaluating a policy.
 */
import type { IncomingHttpHeaders } from 'node:http';
import CachePolicy from 'http-cache-semantics';
import { deltaSeconds, parseCacheControl, pragmaNoCache, qualifiedDirectives, type Directives } from './cache-control.js';
import { formatHttpDate, parseHttpDate } from './http-date.js';
import { surrogateDirectives, type SurrogateDirectives } from './surrogate-control.js';
import { DEFAULT_TARGETED_FIELDS, targetedCacheControl } from './targeted-cache-control.js';

export type Clock = () => number;

export interface PolicyRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface PolicyResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/** Why a response was not stored; shown as `detail=` in Cache-Status. */
export type NotStorableReason =
  | 'method'
  | 'request-no-store'
  | 'no-store'
  | 'private'
  | 'authorization'
  | 'set-cookie'
  | 'vary-star'
  | 'not-cacheable'
  | 'zero-ttl';

/** Lifetimes computed once, when the response is stored. All times are epoch milliseconds or milliseconds. */
export interface Lifetimes {
  /** Epoch ms at which the response's age was 0: age(now) = (now - ageBase) / 1000. */
  ageBase: number;
  /** Freshness lifetime in ms (after TTL jitter, if any). */
  lifetime: number;
  /** stale-while-revalidate window after the entry is no longer fresh (see freshUntil), ms. */
  staleWhileRevalidate: number;
  /** stale-if-error window after the entry is no longer fresh, ms. */
  staleIfError: number;
  /** Stale content must never be served without revalidation: must-revalidate, proxy-revalidate, no-cache. */
  mustRevalidate: boolean;
  /**
   * s-maxage: for a shared cache it implies proxy-revalidate (RFC 9111 §5.2.2.10), so neither a client's
   * max-stale nor the operator's grace may serve it stale; the origin's own stale-while-revalidate and
   * stale-if-error still may.
   */
  sharedMaxAge: boolean;
  /** The response has a validator (ETag or Last-Modified), so a stale copy can be revalidated cheaply. */
  hasValidator: boolean;
}

/**
 * Epoch ms until which an entry is fresh. Worked out when asked rather than kept in every entry's metadata
 * (a boxed double there: 24 bytes per entry, and one more object for every hit to read).
 */
export function freshUntil(lifetimes: Pick<Lifetimes, 'ageBase' | 'lifetime'>): number {
  return lifetimes.ageBase + lifetimes.lifetime;
}

export interface FreshnessOptions {
  /** Store responses carrying Set-Cookie (off by default: a shared cache must not hand one user's cookie to another). */
  cacheSetCookie: boolean;
  /** Operator grace (ms): how long past freshness a stale entry may stand in for a failing origin. */
  staleIfErrorGrace?: number;
  /**
   * Targeted cache-control fields edgecache obeys (RFC 9213 §2.1), lower-case, most specific first
   * (--targeted-cache-control; DEFAULT_TARGETED_FIELDS when not given).
   */
  targetedFields?: readonly string[];
  now: Clock;
}

/** What a stored response can do for a request. */
export type Verdict =
  | 'fresh'
  /** Stale, but the request's max-stale allows it and the response does not forbid it. */
  | 'stale-allowed'
  /** Stale within stale-while-revalidate: serve it and refresh in the background. */
  | 'stale-while-revalidate'
  /** Must be validated with the origin before use. */
  | 'revalidate';

type PolicyClass = typeof CachePolicy;

/** A CachePolicy whose clock is ours, so tests can move time instead of sleeping. */
function policyClassWithClock(now: Clock): PolicyClass {
  return class ClockedCachePolicy extends CachePolicy {
    now(): number {
      return now();
    }
  } as PolicyClass;
}

/**
 * http-cache-semantics expects one string per field; a response may repeat a field (two Cache-Control lines
 * arrive as an array). Repeated fields are combined as RFC 9110 §5.3 allows; Set-Cookie stays a list.
 */
function policyHeaders(headers: Record<string, string | string[] | undefined>): CachePolicy.Headers {
  const out: CachePolicy.Headers = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    out[name] = Array.isArray(value) && name !== 'set-cookie' ? value.join(', ') : value;
  }
  return out;
}

const MAX_AGE_VALUE = '2147483648';

/**
 * Age (RFC 9111 §5.1) as the cache policy should read it: a non-negative integer (delta-seconds), at most 2^31
 * (§1.2.2: as old as it gets). Several field lines, or a list, use the first value. A value with parameters
 * (`7200;foo=bar`) counts as its integer: an upstream cache said that much, and reading it younger is the unsafe
 * mistake. Anything else (negative, fractional, not a number) is ignored, as §5.1 says: undefined, no Age.
 */
function normalizeAge(age: string | string[] | undefined): string | undefined {
  const line = Array.isArray(age) ? age[0] : age;
  if (line === undefined) return undefined;
  const first = line.split(',', 1)[0] as string;
  const match = /^\s*(\d+)\s*(?:;.*)?$/.exec(first);
  if (!match) return undefined;
  const digits = match[1] as string;
  return digits.length > 10 || Number(digits) > 2_147_483_648 ? MAX_AGE_VALUE : String(Number(digits));
}

/** An Expires that is not an HTTP-date means "already expired" (RFC 9111 §5.3): a date long past. */
const ALREADY_EXPIRED = formatHttpDate(0);

const HAS_UPPER_CASE = /[A-Z]/;

/** Directive names are case-insensitive (RFC 9111 §5.2); http-cache-semantics matches them exactly. */
function lowerCaseDirectives(value: string): string {
  if (!HAS_UPPER_CASE.test(value)) return value;
  return value.replace(/(^|,)\s*([^=,]+)/g, (_m, sep: string, name: string) => `${sep}${name.toLowerCase()}`);
}

const CARRIED_FROM_CACHE_CONTROL = ['must-revalidate', 'proxy-revalidate', 'private', 'stale-while-revalidate', 'stale-if-error'];

/** Surrogate-Control (when it addresses edgecache) as the Cache-Control a shared cache obeys. */
function applySurrogateControl(out: CachePolicy.Headers, surrogate: SurrogateDirectives): void {
  const original = parseCacheControl(out['cache-control']);
  if (surrogate.noStore) {
    out['cache-control'] = 'no-store';
  } else if (surrogate.maxAge !== undefined) {
    const parts = [`max-age=${surrogate.maxAge}`];
    for (const name of CARRIED_FROM_CACHE_CONTROL) {
      const arg = original.get(name);
      if (arg === undefined || (name === 'stale-if-error' && surrogate.staleIfError !== undefined)) continue;
      parts.push(arg === true ? name : `${name}=${arg}`);
    }
    if (surrogate.staleIfError !== undefined) parts.push(`stale-if-error=${surrogate.staleIfError}`);
    out['cache-control'] = parts.join(', ');
    delete out.expires;
    delete out.pragma;
  }
}

/**
 * Response fields as the cache policy should read them: repeated fields combined, Age normalised, Date and
 * Expires checked as HTTP-dates (an invalid Date is absent, an invalid Expires is in the past), directive names
 * lower-cased; then the first valid targeted field (RFC 9213: Edgecache-Cache-Control, CDN-Cache-Control)
 * replaces Cache-Control and Expires, or else Surrogate-Control (when it addresses edgecache) is turned into the
 * Cache-Control a shared cache obeys, so http-cache-semantics decides with edgecache's own lifetime. Then the
 * qualified `no-cache="..."` and `private="..."` are left out (their fields are left out of the stored copy
 * instead, RFC 9111 §5.2.2.4, §5.2.2.7: see Freshness.unstoredFields), their names added to `qualified`. Last, a
 * must-understand response of a status edgecache understands drops its no-store (RFC 9111 §5.2.2.3).
 */
function responsePolicyHeaders(
  headers: Record<string, string | string[] | undefined>,
  status: number,
  targeted: readonly string[],
  qualified?: string[],
): CachePolicy.Headers {
  const out = policyHeaders(headers);
  if (out.age !== undefined) {
    const age = normalizeAge(headers.age);
    if (age === undefined) delete out.age;
    else out.age = age;
  }
  if (headers.date !== undefined && parseHttpDate(headers.date) === undefined) delete out.date;
  if (headers.expires !== undefined) {
    const expires = parseHttpDate(headers.expires);
    out.expires = expires === undefined ? ALREADY_EXPIRED : formatHttpDate(expires);
  }
  const cc = out['cache-control'];
  if (typeof cc === 'string') out['cache-control'] = lowerCaseDirectives(cc);
  const own = targetedCacheControl(headers, targeted);
  if (own !== null) {
    out['cache-control'] = own;
    delete out.expires;
    delete out.pragma;
  } else {
    const surrogate = surrogateDirectives(headers['surrogate-control']);
    if (surrogate) applySurrogateControl(out, surrogate);
  }
  if (typeof out['cache-control'] === 'string') {
    const { fields, rest } = qualifiedDirectives(out['cache-control']);
    out['cache-control'] = rest;
    qualified?.push(...fields);
  }
  const directives = parseCacheControl(out['cache-control']);
  if (directives.has('must-understand') && directives.has('no-store') && UNDERSTOOD_STATUSES.has(status)) {
    out['cache-control'] = [...directives]
      .filter(([name]) => name !== 'no-store')
      .map(([name, arg]) => (arg === true ? name : `${name}=${arg}`))
      .join(', ');
  }
  return out;
}

/**
 * Final statuses edgecache understands (RFC 9110 §15): it may store any of them that has explicit freshness, and
 * only these when the response says must-understand (RFC 9111 §5.2.2.3). 206 is not among them: a partial
 * response is never stored.
 */
const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([
  200, 203, 204, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 421, 451, 500, 501, 502, 503, 504,
]);

/** Statuses http-cache-semantics stores at all (its own list); it refuses every other one. */
const LIBRARY_STATUSES: ReadonlySet<number> = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501]);

/** Whether a status is final and of a class edgecache knows, so that explicit freshness lets it be stored (RFC 9111 §3). */
function storableWithExplicitFreshness(status: number): boolean {
  return status >= 200 && status <= 599 && status !== 206 && status !== 304;
}

/**
 * The status http-cache-semantics is given. A final status the library does not store (400, 500, 502, 503,
 * 504, or an unrecognised 299, 499, 599) but which has explicit freshness (max-age, s-maxage, Expires, after the
 * targeted fields) is presented as a 200: only the freshness it was given then decides, never a heuristic, as
 * the explicit lifetime always takes precedence. So is one marked `public` (explicitly cacheable, RFC 9111 §4.2.2),
 * which the library may then give a heuristic lifetime. Otherwise the real status stays, and with it the library's
 * refusal or its heuristic (for heuristically cacheable statuses only).
 */
function libraryStatus(status: number, view: CachePolicy.Headers): number {
  if (LIBRARY_STATUSES.has(status) || !storableWithExplicitFreshness(status)) return status;
  const directives = parseCacheControl(view['cache-control']);
  const explicit = directives.has('max-age') || directives.has('s-maxage') || view.expires !== undefined;
  // `public` marks a response explicitly cacheable: a heuristic lifetime is allowed whatever its status (RFC 9111
  // §4.2.2), as for the heuristically cacheable ones.
  return explicit || directives.has('public') ? 200 : status;
}

/**
 * The response as the policy object sees it. Set-Cookie is left out: edgecache decides about cookies itself
 * (refused unless --cache-set-cookie), while http-cache-semantics would give any shared response with a cookie
 * a lifetime of 0 unless it also says public, which would make --cache-set-cookie store nothing.
 */
function policyView(headers: Record<string, string | string[] | undefined>, status: number, targeted: readonly string[]): CachePolicy.Headers {
  const out = responsePolicyHeaders(headers, status, targeted);
  delete out['set-cookie'];
  return out;
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

export class Freshness {
  readonly now: Clock;
  private readonly Policy: PolicyClass;
  /** --cache-set-cookie: responses carrying Set-Cookie may be stored (and the cookie with them). */
  readonly cacheSetCookie: boolean;
  /** Operator grace (ms) for serving stale entries when the origin fails. */
  readonly grace: number;
  /** Targeted cache-control fields, most specific first. */
  readonly targetedFields: readonly string[];

  constructor(options: FreshnessOptions) {
    this.now = options.now;
    this.cacheSetCookie = options.cacheSetCookie;
    this.grace = options.staleIfErrorGrace ?? 0;
    this.targetedFields = options.targetedFields ?? DEFAULT_TARGETED_FIELDS;
    this.Policy = policyClassWithClock(options.now);
  }

  createPolicy(request: PolicyRequest, response: PolicyResponse): CachePolicy {
    const headers = policyView(response.headers, response.status, this.targetedFields);
    return new this.Policy(request, { status: libraryStatus(response.status, headers), headers }, { shared: true });
  }

  /**
   * The policy of a stale entry after a 304 (RFC 9111 §4.3.4). When the 304 matches the stored validator,
   * http-cache-semantics' revalidatedPolicy computes it; otherwise the stored response, with the 304's fields
   * merged in by the caller, gets a fresh policy.
   */
  revalidatedPolicy(stale: CachePolicy, request: PolicyRequest, notModifiedHeaders: Record<string, string | string[] | undefined>, merged: PolicyResponse): CachePolicy {
    const { policy, matches } = stale.revalidatedPolicy(request, { status: 304, headers: policyView(notModifiedHeaders, merged.status, this.targetedFields) });
    return matches ? policy : this.createPolicy(request, merged);
  }

  /** The response's fields as the cache reads them (targeted fields applied, dates checked). */
  private view(response: PolicyResponse): CachePolicy.Headers {
    return responsePolicyHeaders(response.headers, response.status, this.targetedFields);
  }

  /**
   * Header fields the stored copy of a response leaves out: those its qualified `no-cache="..."` and
   * `private="..."` list (lower case). A shared cache may then store the response (§5.2.2.7) and reuse it without
   * revalidation (§5.2.2.4) as if the directive were absent; the response to the client that asked keeps them.
   */
  unstoredFields(response: PolicyResponse): string[] {
    const fields: string[] = [];
    responsePolicyHeaders(response.headers, response.status, this.targetedFields, fields);
    return fields;
  }

  /**
   * The cache policy of a stored response, for revalidating it: the validators a conditional request carries
   * (RFC 9111 §4.3.1) and the update a 304 makes (§4.3.4). Stored entries do not keep the policy object they were
   * stored with (about half a kilobyte each, in every tier): it is made again from the stored status and fields,
   * which hold everything it reads (validators, Cache-Control, the targeted and Surrogate-Control fields), for the
   * request at hand without the request fields that would make it refuse a stored response (its own
   * Cache-Control, Pragma and Authorization), so that it stands for the response as stored.
   */
  storedPolicy(meta: PolicyResponse, request: PolicyRequest): CachePolicy {
    const headers: PolicyRequest['headers'] = {};
    for (const name in request.headers) {
      if (name !== 'cache-control' && name !== 'pragma' && name !== 'authorization') headers[name] = request.headers[name];
    }
    return this.createPolicy({ method: request.method, url: request.url, headers }, { status: meta.status, headers: meta.headers });
  }

  /** Returns why the response must not be stored, or null when it may be. */
  notStorableReason(policy: CachePolicy, request: PolicyRequest, response: PolicyResponse): NotStorableReason | null {
    if (request.method !== 'GET') return 'method';
    const reqcc = parseCacheControl(request.headers['cache-control']);
    if (reqcc.has('no-store')) return 'request-no-store';
    const rescc = parseCacheControl(this.view(response)['cache-control']);
    if (rescc.has('must-understand') && !UNDERSTOOD_STATUSES.has(response.status)) return 'not-cacheable';
    if (rescc.has('no-store')) return 'no-store';
    if (rescc.has('private')) return 'private';
    // (no-cache="Set-Cookie" or private="Set-Cookie": the cookie is left out of the stored copy, which may be kept.)
    if (response.headers['set-cookie'] !== undefined && !this.cacheSetCookie && !this.unstoredFields(response).includes('set-cookie')) return 'set-cookie';
    const vary = headerText(response.headers.vary);
    if (vary !== undefined && vary.split(',').some((f) => f.trim() === '*')) return 'vary-star';
    // A status the cache does not store (206, 5xx...) or no freshness information: `not-cacheable`, as documented.
    if (!policy.storable()) return request.headers.authorization !== undefined ? 'authorization' : 'not-cacheable';
    const lifetimes = this.lifetimes(policy, response, 0);
    const usableStale = lifetimes.staleIfError > 0 || lifetimes.staleWhileRevalidate > 0;
    if (lifetimes.lifetime <= 0 && !lifetimes.hasValidator && !usableStale) return 'zero-ttl';
    return null;
  }

  /**
   * Lifetimes of a storable response. `jitter` in [0, 1) shortens the freshness lifetime by that fraction
   * (never lengthens it: RFC 9111 does not allow serving a response as fresh beyond what the origin said).
   */
  lifetimes(policy: CachePolicy, response: PolicyResponse, jitter: number): Lifetimes {
    const now = this.now();
    const rescc = parseCacheControl(this.view(response)['cache-control']);
    const ageBase = now - policy.age() * 1000;
    const maxAge = policy.maxAge();
    const lifetime = Math.max(0, Math.floor(maxAge * 1000 * (1 - jitter)));
    const hasValidator = response.headers.etag !== undefined || response.headers['last-modified'] !== undefined;
    return {
      ageBase,
      lifetime,
      staleWhileRevalidate: (deltaSeconds(rescc, 'stale-while-revalidate') ?? 0) * 1000,
      staleIfError: (deltaSeconds(rescc, 'stale-if-error') ?? 0) * 1000,
      mustRevalidate: rescc.has('must-revalidate') || rescc.has('proxy-revalidate') || rescc.has('no-cache'),
      sharedMaxAge: rescc.has('s-maxage'),
      hasValidator,
    };
  }

  /**
   * How a stored response may be used for this request (RFC 9111 §4, §4.2.4, §5.2.1; RFC 5861).
   * Unlike http-cache-semantics' evaluateRequest, a request's max-stale never overrides must-revalidate,
   * proxy-revalidate, s-maxage or no-cache, and a fresh must-revalidate response is reused.
   */
  evaluate(entry: Lifetimes, requestHeaders: IncomingHttpHeaders, now: number = this.now()): Verdict {
    const cacheControl = requestHeaders['cache-control'];
    let reqcc: Directives | undefined;
    if (cacheControl !== undefined) {
      reqcc = parseCacheControl(cacheControl);
      if (reqcc.has('no-cache')) return 'revalidate';
    } else if (pragmaNoCache(requestHeaders.pragma)) {
      return 'revalidate';
    }
    const age = now - entry.ageBase;
    if (reqcc) {
      const maxAge = deltaSeconds(reqcc, 'max-age');
      if (maxAge !== undefined && age > maxAge * 1000) return 'revalidate';
      const minFresh = deltaSeconds(reqcc, 'min-fresh');
      if (minFresh !== undefined && entry.lifetime - age < minFresh * 1000) return 'revalidate';
    }
    if (age < entry.lifetime) return 'fresh';
    if (entry.mustRevalidate) return 'revalidate';
    if (reqcc?.has('max-stale') && !entry.sharedMaxAge) {
      const maxStale = deltaSeconds(reqcc, 'max-stale');
      if (maxStale === undefined ? reqcc.get('max-stale') === true : age - entry.lifetime <= maxStale * 1000) return 'stale-allowed';
    }
    if (age < entry.lifetime + entry.staleWhileRevalidate) return 'stale-while-revalidate';
    return 'revalidate';
  }

  /**
   * Whether a stale entry may stand in for an origin error. The origin's stale-if-error (RFC 5861 §4) allows
   * it within its window; the operator's grace allows it otherwise. must-revalidate, proxy-revalidate and
   * no-cache forbid both (RFC 9111 §4.2.4 and §5.2.2.2: "MUST NOT reuse ... without successful validation",
   * a 504 instead), and s-maxage forbids the grace, which the origin did not ask for.
   */
  canServeStaleOnError(entry: Lifetimes, now: number = this.now()): boolean {
    if (entry.mustRevalidate) return false;
    const window = entry.sharedMaxAge ? entry.staleIfError : Math.max(entry.staleIfError, this.grace);
    return now - entry.ageBase < entry.lifetime + window;
  }
}
