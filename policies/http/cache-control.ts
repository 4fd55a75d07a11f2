/**
 * Cache-Control parsing for the request-side decisions edgecache makes itself (RFC 9111 §5.2). Response-side
 * freshness is computed by http-cache-semantics; this parser only answers "which directives are present, with
 * which argument", and treats a duplicated directive with conflicting values as the more cautious one.
 */
export type Directives = Map<string, string | true>;

const EMPTY: Directives = new Map();

export function parseCacheControl(value: string | string[] | undefined): Directives {
  if (value === undefined) return EMPTY;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text.length === 0) return EMPTY;
  const out: Directives = new Map();
  // Split on commas that are not inside a quoted string (no-cache="a, b").
  const parts = text.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name) continue;
    let arg: string | true = true;
    if (eq !== -1) {
      arg = part.slice(eq + 1).trim();
      if (arg.startsWith('"') && arg.endsWith('"') && arg.length >= 2) arg = arg.slice(1, -1);
    }
    const previous = out.get(name);
    // RFC 9111 §4.2.1: conflicting duplicates make freshness invalid; keeping the smaller age is the safe reading.
    if (previous !== undefined && typeof previous === 'string' && typeof arg === 'string') {
      const a = Number(previous);
      const b = Number(arg);
      if (Number.isFinite(a) && Number.isFinite(b)) arg = String(Math.min(a, b));
    }
    out.set(name, arg);
  }
  return out;
}

/** A delta-seconds argument (RFC 9111 §1.2.2): digits only; anything else is absent. Large values saturate. */
export function deltaSeconds(directives: Directives, name: string): number | undefined {
  const arg = directives.get(name);
  if (typeof arg !== 'string' || !/^\d+$/.test(arg)) return undefined;
  const n = Number(arg);
  return n > 2_147_483_648 ? 2_147_483_648 : n;
}

/** Whether `Pragma: no-cache` applies: only when the request has no Cache-Control (RFC 9111 §5.4). */
export function pragmaNoCache(pragma: string | string[] | undefined): boolean {
  if (pragma === undefined) return false;
  const text = Array.isArray(pragma) ? pragma.join(',') : pragma;
  return /(^|,)\s*no-cache\s*(,|$)/i.test(text);
}
