/**
 * Cache-Control parsing for the request-side decisions edgecache makes itself (RFC 9111 §5.2). Response-side
 * freshness is computed by http-cache-semantics; this parser only answers "which directives are present, with
 * which argument", and treats a duplicated directive with conflicting values as the more cautious one.
 */
import { RecentValues } from './recent-values.js';

export type Directives = ReadonlyMap<string, string | true>;

const EMPTY: Directives = new Map();

/**
 * The values parsed last (see RecentValues): Cache-Control values repeat (an origin sends the same few on every
 * response, clients send a handful), and a miss reads its response's value several times. Results are shared,
 * hence read-only.
 */
const recentValues = new RecentValues<Directives>(16);
/** Longer values are parsed every time (rare; a comparison of long strings would cost more than it saves). */
const RECENT_VALUE_LENGTH = 512;

/** The directives of a Cache-Control value (a read-only map, shared by every caller that parses the same text). */
export function parseCacheControl(value: string | string[] | undefined): Directives {
  if (value === undefined) return EMPTY;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text.length === 0) return EMPTY;
  if (text.length > RECENT_VALUE_LENGTH) return parseDirectives(text);
  const known = recentValues.get(text);
  if (known !== undefined) return known;
  const parsed = parseDirectives(text);
  recentValues.set(text, parsed);
  return parsed;
}

function parseDirectives(text: string): Directives {
  const out = new Map<string, string | true>();
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

/** Directives whose argument, in a response, lists header fields (RFC 9111 §5.2.2.4, §5.2.2.7). */
const QUALIFIABLE = new Set(['no-cache', 'private']);
/** A value where one of them may have an argument (also matches inside a quoted string: then the full reading decides). */
const MAY_QUALIFY = /(?:^|[\s,])(?:no-cache|private)\s*=/i;
const NO_FIELDS: readonly string[] = Object.freeze([]);

/** One directive of a Cache-Control value as written: its name (lower case), its argument unquoted, its text. */
interface DirectivePart {
  name: string;
  fields: string[] | undefined;
  text: string;
}

function directiveParts(text: string): DirectivePart[] {
  return (text.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? []).map((part) => {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    let fields: string[] | undefined;
    if (eq !== -1) {
      let arg = part.slice(eq + 1).trim();
      if (arg.startsWith('"') && arg.endsWith('"') && arg.length >= 2) arg = arg.slice(1, -1);
      const names = arg.split(',').map((f) => f.trim().toLowerCase()).filter((f) => f !== '');
      // An empty list names no field: read as the unqualified directive, the cautious reading.
      if (names.length > 0) fields = names;
    }
    return { name, fields, text: part };
  });
}

/**
 * The qualified forms of a response's `no-cache="f1, f2"` and `private="f1"` (RFC 9111 §5.2.2.4, §5.2.2.7): for a
 * shared cache, the response may be stored and reused without revalidation once the listed fields are left out
 * of the stored copy. Returns the listed field names (lower case) and the Cache-Control value without those
 * qualified directives, for the freshness rules to read as if they were absent. A directive that also appears
 * unqualified is not qualified (the unqualified form decides): it is kept, bare, as is one with an empty list.
 */
export function qualifiedDirectives(value: string): { fields: readonly string[]; rest: string } {
  // Nearly every value qualifies nothing: then it is read as it is (the parts below would only be re-joined).
  if (!MAY_QUALIFY.test(value)) return { fields: NO_FIELDS, rest: value };
  const parts = directiveParts(value);
  const plain = new Set(parts.filter((p) => QUALIFIABLE.has(p.name) && p.fields === undefined).map((p) => p.name));
  const fields: string[] = [];
  const kept: string[] = [];
  for (const part of parts) {
    if (QUALIFIABLE.has(part.name) && part.fields !== undefined && !plain.has(part.name)) {
      for (const field of part.fields) if (!fields.includes(field)) fields.push(field);
    } else if (QUALIFIABLE.has(part.name) && part.fields === undefined) {
      // Written bare: `no-cache=""` is no-cache (http-cache-semantics would read its empty argument as absent).
      kept.push(part.name);
    } else if (part.text.trim() !== '') {
      kept.push(part.text.trim());
    }
  }
  return { fields, rest: kept.join(', ') };
}
