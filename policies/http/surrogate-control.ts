/**
 * Surrogate-Control (W3C Edge Architecture Specification 1.0, as Fastly, Akamai and Varnish use it): the origin
 * tells reverse proxies how long to keep a response, separately from what browsers see in Cache-Control.
 * Directives may be targeted at one surrogate with `;token`; edgecache announces its token in
 * `Surrogate-Capability` on every origin request.
 */

import { OWN_TARGETED_FIELD } from './targeted-cache-control.js';

const SURROGATE_TOKEN = 'edgecache';
export const SURROGATE_CAPABILITY = `${SURROGATE_TOKEN}="Surrogate/1.0"`;

/**
 * Response fields addressed to edgecache itself: Surrogate-Control and edgecache's own targeted cache-control
 * field (targeted-cache-control.ts). Stored with the entry, never relayed to clients.
 */
export const SURROGATE_ONLY_FIELDS: ReadonlySet<string> = new Set(['surrogate-control', OWN_TARGETED_FIELD]);

export interface SurrogateDirectives {
  noStore: boolean;
  /** Freshness lifetime in seconds. */
  maxAge: number | undefined;
  /** The `+M` of `max-age=N+M`: seconds a stale copy may stand in when the origin fails. */
  staleIfError: number | undefined;
}

const MAX_DELTA = 2_147_483_648;

/** The directives that apply to this surrogate: those targeted at it when there are any, else the untargeted ones. */
export function surrogateDirectives(value: string | string[] | undefined, token = SURROGATE_TOKEN): SurrogateDirectives | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(',') : value;
  const untargeted: string[] = [];
  const targeted: string[] = [];
  for (const raw of text.split(',')) {
    const semi = raw.indexOf(';');
    const directive = (semi === -1 ? raw : raw.slice(0, semi)).trim().toLowerCase();
    if (!directive) continue;
    if (semi === -1) untargeted.push(directive);
    else if (raw.slice(semi + 1).trim().toLowerCase() === token) targeted.push(directive);
  }
  const applicable = targeted.length > 0 ? targeted : untargeted;
  let result: SurrogateDirectives | null = null;
  for (const directive of applicable) {
    if (directive === 'no-store') {
      result = { noStore: true, maxAge: undefined, staleIfError: undefined };
      break;
    }
    const match = /^max-age=(\d+)(?:\+(\d+))?$/.exec(directive);
    if (match) {
      result = {
        noStore: false,
        maxAge: Math.min(Number(match[1]), MAX_DELTA),
        staleIfError: match[2] === undefined ? undefined : Math.min(Number(match[2]), MAX_DELTA),
      };
    }
  }
  return result;
}
