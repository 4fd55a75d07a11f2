/**
 * Header rules for an intermediary (RFC 9110 §7.6): hop-by-hop fields and the fields that Connection nominates
 * never cross it, in either direction (§7.6.1), and it appends itself to Via (§7.6.3).
 */

/** Hop-by-hop fields, plus those undici refuses as request headers. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** edgecache's Via entry. */
const VIA = '1.1 edgecache';

/** Lower-cased field names listed in Connection. */
export function connectionNominated(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(',') : value;
  const names = new Set<string>();
  for (const token of text.split(',')) {
    const name = token.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names.size === 0 ? null : names;
}

export function isHopByHop(name: string, nominated: Set<string> | null): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || (nominated !== null && nominated.has(name));
}

/** Appends `value` to a list field (RFC 9110 §5.3). */
export function appendList(existing: string | string[] | undefined, value: string): string {
  if (existing === undefined) return value;
  return `${Array.isArray(existing) ? existing.join(', ') : existing}, ${value}`;
}

/** A Via value with this proxy appended (RFC 9110 §7.6.3). */
export function withVia(existing: string | string[] | undefined): string {
  return appendList(existing, VIA);
}

/** Response fields as they may be stored and relayed: hop-by-hop and Connection-nominated fields removed. */
export function endToEndResponseHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
  const nominated = connectionNominated(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || isHopByHop(name, nominated)) continue;
    out[name] = value;
  }
  return out;
}
