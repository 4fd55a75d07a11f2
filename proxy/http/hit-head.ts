/**
 * The fresh hit's head. A stored entry's headers are flattened once into a wire-ready array (kept per
 * EntryMeta, so an entry decoded again from disk with the same metadata reuses it) and serialized once into a
 * prepared head (raw-head.ts); a fresh hit then only refreshes the Age and Cache-Status values when their whole
 * seconds change, so the hit path writes a stored head and a stored Buffer without rebuilding either. The other
 * responses built from a stored entry (stored-response.ts) start from the same array.
 */
import type { ServerResponse } from 'node:http';
import type { CacheEntry, EntryMeta } from '../../cache-store/entry.js';
import { allowsContentLength } from '../../policies/http/message-body.js';
import { withVia } from '../../policies/http/intermediary.js';
import { SURROGATE_ONLY_FIELDS } from '../../policies/http/surrogate-control.js';
import { outcomeFields } from '../pipeline/outcome.js';
import { flat, preparedHead, rawHeadSupported, serializeFields, setRawHead, statusLine, type PreparedHead } from './raw-head.js';

export type WireValue = string | string[];

interface Prepared {
  /** [name, value, ...] ending with age, x-cache, cache-status (HIT values). */
  hit: WireValue[];
  /** The same without the last three pairs and without content-length, for building other responses. */
  base: WireValue[];
  originCacheStatus: string | string[] | undefined;
  /** The Age the `hit` array (and `head`) currently carry. */
  age: number;
  /** Status line and the `hit` fields before Age, serialized; undefined when not prepared (see raw-head.ts). */
  headStart: string | undefined;
  /** The whole hit head for the current Age. */
  head: PreparedHead | undefined;
  /** The HTTP/2 hit's header object (h2HitHeaders), made on the first h2 hit, and the Age it carries. */
  h2: H2Fields | undefined;
  h2Age: number;
}

/** An HTTP/2 response header object: `:status` and the fields. */
export type H2Fields = Record<string, WireValue | number>;

/**
 * Fields HTTP/2 does not carry (RFC 9113 §8.2.2: connection-specific; node:http2 refuses to send them). Stored
 * responses never have them (hop-by-hop fields are not stored), so this only guards the h2 header object.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

const SKIPPED_FROM_STORE = new Set(['age', 'content-length', 'cache-status', 'via', 'x-cache']);

function prepare(entry: CacheEntry): Prepared {
  const base: WireValue[] = [];
  const headers = entry.meta.headers;
  for (const name in headers) {
    if (SKIPPED_FROM_STORE.has(name) || SURROGATE_ONLY_FIELDS.has(name)) continue;
    base.push(name, headers[name] as WireValue);
  }
  base.push('via', withVia(headers.via));
  const length = allowsContentLength(entry.meta.status) ? ['content-length', String(entry.body.length)] : [];
  // Age and Cache-Status are filled in per second of Age (hitPrepared).
  const hit = [...base, ...length, 'age', '', ...outcomeFields('HIT', { hit: true })];
  const fields = rawHeadSupported() ? serializeFields(hit.slice(0, -6)) : undefined;
  const headStart = fields === undefined ? undefined : flat([statusLine(entry.meta.status), fields]);
  const prepared: Prepared = { hit, base, originCacheStatus: headers['cache-status'], age: NaN, headStart, head: undefined, h2: undefined, h2Age: NaN };
  preparedByMeta.set(entry.meta, prepared);
  return prepared;
}

/** Wire-ready headers per stored response; a meta object always describes one body, so its length is fixed. */
const preparedByMeta = new WeakMap<EntryMeta, Prepared>();

function prepared(entry: CacheEntry): Prepared {
  return preparedByMeta.get(entry.meta) ?? prepare(entry);
}

/**
 * A stored entry's fields as every response built from it starts (`base`: without Content-Length, Age, X-Cache
 * and Cache-Status), and the Cache-Status of caches nearer the origin, which edgecache's own is appended to.
 */
export function storedFields(entry: CacheEntry): { readonly base: readonly WireValue[]; readonly originCacheStatus: string | string[] | undefined } {
  return prepared(entry);
}

export function ageSeconds(entry: CacheEntry, now: number): number {
  return Math.max(0, Math.floor((now - entry.meta.ageBase) / 1000));
}

/** Remaining freshness in whole seconds, consistent with Age: lifetime - age (negative once stale). */
export function ttlSeconds(entry: CacheEntry, now: number): number {
  return Math.floor(entry.meta.lifetime / 1000) - ageSeconds(entry, now);
}

/**
 * A fresh hit's headers as the array writeHitHead falls back to (and npm run bench:micro times), reusing the
 * stored array while Age and ttl stay the same.
 */
export function hitHeaders(entry: CacheEntry, now: number): WireValue[] {
  return hitPrepared(entry, now).hit;
}

/**
 * The hit path: writes a fresh hit's status and headers, as a prepared head when the response allows it
 * (raw-head.ts), else through writeHead with the stored array.
 */
export function writeHitHead(res: ServerResponse, entry: CacheEntry, now: number): void {
  const p = hitPrepared(entry, now);
  if (p.head === undefined || !setRawHead(res, entry.meta.status, p.head)) res.writeHead(entry.meta.status, p.hit);
}

function hitPrepared(entry: CacheEntry, now: number): Prepared {
  const p = prepared(entry);
  const age = ageSeconds(entry, now);
  if (age !== p.age) {
    const ttl = Math.floor(entry.meta.lifetime / 1000) - age;
    const h = p.hit;
    const ageText = String(age);
    const outcome = outcomeFields('HIT', { hit: true, ttl }, p.originCacheStatus);
    h[h.length - 5] = ageText;
    h[h.length - 1] = outcome[3];
    p.age = age;
    // Without a Cache-Status from upstream every value here is edgecache's own (digits and tokens): no check needed.
    const tail =
      p.headStart === undefined
        ? undefined
        : p.originCacheStatus === undefined
          ? `age: ${ageText}\r\n${outcome[0]}: ${outcome[1]}\r\n${outcome[2]}: ${outcome[3]}\r\n`
          : serializeFields(['age', ageText, ...outcome]);
    if (tail === undefined) p.head = undefined;
    else {
      // Not flattened here: setRawHead joins it with the connection fields into the one flat string sent, so a
      // new second of Age costs one join (and one head string per entry), whatever the number of hot keys.
      const fields = p.headStart + tail;
      if (p.head === undefined) p.head = preparedHead(fields);
      else {
        p.head.fields = fields;
        p.head.connectionFields = '';
      }
    }
  }
  return p;
}

/**
 * The h2 hit path's header object (h2-streams.ts): `:status` and the same fields as the HTTP/1.1 hit head, built
 * once per entry, with Age and Cache-Status refreshed when the whole seconds of Age change. node:http2 copies it in
 * `stream.respond()`, so one object serves every hit.
 */
export function h2HitHeaders(entry: CacheEntry, now: number): H2Fields {
  const p = hitPrepared(entry, now);
  let fields = p.h2;
  if (fields === undefined) {
    fields = { ':status': entry.meta.status };
    const h = p.hit;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i] as string;
      if (!CONNECTION_SPECIFIC.has(name)) fields[name] = h[i + 1] as WireValue;
    }
    p.h2 = fields;
    p.h2Age = p.age;
  } else if (p.h2Age !== p.age) {
    const h = p.hit;
    fields.age = h[h.length - 5] as string;
    fields['cache-status'] = h[h.length - 1] as string;
    p.h2Age = p.age;
  }
  return fields;
}
