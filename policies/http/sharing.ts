/**
 * Whether a response that is not stored may still be shared: handed to the other requests that waited for the
 * same origin fetch (request collapsing). A shared cache may not hand anyone a response that is private to
 * whoever asked (RFC 9111 §3, §5.2.2.7) or that may not be reused without revalidation (§5.2.2.4).
 */
import { parseCacheControl } from './cache-control.js';
import type { NotStorableReason } from './freshness.js';

/** Why a fetched response was not stored: the cache-policy reasons, its size, or its framing. */
/** 'vary': a cached POST's answer varies on a field its key does not hold (post-freshness.ts). */
export type NotStoredReason = NotStorableReason | 'too-large' | 'close-delimited' | 'vary';

/** Reasons that are not about who may see the response: its size or framing. */
const SHAREABLE_UNSTORED = new Set<NotStoredReason>(['too-large', 'close-delimited']);
/** Reasons that are about its lifetime or status only (a 500, a 404 without freshness, max-age=0). */
const LIFETIME_ONLY = new Set<NotStoredReason>(['not-cacheable', 'zero-ttl']);

/**
 * Whether a response that is not stored may still be handed to the waiters of its fill. Yes when only its size,
 * framing, status or lifetime kept it out of the cache, unless it says no-cache (it may not be reused without
 * revalidation, RFC 9111 §5.2.2.4). Responses that are private, no-store, carry Set-Cookie, answer a request
 * with Authorization or say Vary: * have their own reasons and are never shared. (Whether the waiter's request
 * selects the same Vary variant is checked per waiter.)
 */
export function shareableUnstored(reason: NotStoredReason, responseHeaders: Readonly<Record<string, string | string[] | undefined>>): boolean {
  if (SHAREABLE_UNSTORED.has(reason)) return true;
  return LIFETIME_ONLY.has(reason) && !parseCacheControl(responseHeaders['cache-control']).has('no-cache');
}
