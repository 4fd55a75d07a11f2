/**
 * The Cache-Status response field (RFC 9211): edgecache's member, and its place after those of caches nearer the
 * origin. What each response says is decided in proxy/pipeline/outcome.ts.
 */

/** RFC 9211 §2.2 forward reasons. */
export type ForwardReason = 'bypass' | 'method' | 'uri-miss' | 'vary-miss' | 'miss' | 'request' | 'stale' | 'partial';

const CACHE_NAME = 'edgecache';

export interface CacheStatusFields {
  hit?: boolean;
  fwd?: ForwardReason;
  fwdStatus?: number;
  ttl?: number;
  stored?: boolean;
  collapsed?: boolean;
  detail?: string;
}

export function formatCacheStatus(fields: CacheStatusFields): string {
  let out = CACHE_NAME;
  if (fields.hit) out += '; hit';
  if (fields.fwd) out += `; fwd=${fields.fwd}`;
  if (fields.fwdStatus !== undefined) out += `; fwd-status=${fields.fwdStatus}`;
  if (fields.ttl !== undefined) out += `; ttl=${fields.ttl}`;
  if (fields.stored) out += '; stored';
  if (fields.collapsed) out += '; collapsed';
  if (fields.detail) out += `; detail=${fields.detail}`;
  return out;
}

/** RFC 9211 §2: a cache adds its member after those of caches nearer the origin. */
export function appendCacheStatus(existing: string | string[] | undefined, ours: string): string {
  if (existing === undefined || existing === '') return ours;
  return `${Array.isArray(existing) ? existing.join(', ') : existing}, ${ours}`;
}
