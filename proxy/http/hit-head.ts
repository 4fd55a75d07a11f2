/**
 * The fresh hit's head. A stored entry's headers are flattened once into a wire-ready array (kept per
 * EntryMeta, so an entry decoded again from disk with the same metadata reuses it) and serialized once into a
 * prepared head (raw-head.ts); a fresh hit then only refreshes the Age and Cache-Status values when their whole
 * seconds change, so the hit path writes a stored head and a stored Buffer without rebuilding either. The other
 * responses built from a stored entry (stored-response.ts) start from the same array.
 */
import type { ServerResponse } from 'node:http';
import type { Body } from '../../cache-store/body.js';
import { fillHitSlot, HIT_SLOT, type CacheEntry, type StoredHeaders } from '../../cache-store/entry.js';
import { accepts, decodable, encodingPreference, formEtag, storedCoding, variesOnEncoding, type Coding, type Form } from '../../policies/http/content-coding.js';
import { allowsContentLength } from '../../policies/http/message-body.js';
import { withVia } from '../../policies/http/intermediary.js';
import { SURROGATE_ONLY_FIELDS } from '../../policies/http/surrogate-control.js';
import { outcomeFields } from '../pipeline/outcome.js';
import { flat, preparedHead, rawHeadSupported, serializeFields, setRawHead, setRawHeadOnce, statusLine, type PreparedHead } from './raw-head.js';

export type WireValue = string | string[];

/**
 * What a stored response's hits and other responses are built from, made on its first hit. The field arrays are
 * made only when something asks for them (a response that cannot take the prepared head, an HTTP/2 hit, a
 * response other than a fresh hit): most entries are only ever served a prepared head, and every object kept per
 * entry costs memory and the full collections' marking time.
 */
interface Prepared {
  /** [name, value, ...] ending with age, x-cache, cache-status (HIT values); made on demand (hitFields). */
  hit: WireValue[] | undefined;
  /** The same without the last three pairs and without content-length, for building other responses (baseOf). */
  base: WireValue[] | undefined;
  /** The body's length, for Content-Length (-1: the status allows none). */
  length: number;
  /**
   * The Age and Cache-Status values for `age` and their serialized lines (shared by entries with the same Age, ttl
   * and upstream Cache-Status: see hitTail); one field rather than three.
   */
  now: HitTail;
  /** The stored fields of this form (its Content-Encoding and ETag): what the client's validators are held to. */
  headers: StoredHeaders;
  originCacheStatus: string | string[] | undefined;
  /** The Age the `hit` array (and `now`) currently carry. */
  age: number;
  /** Status line and the `hit` fields before Age, serialized; undefined when not prepared (see raw-head.ts). */
  headStart: string | undefined;
  /** The whole hit head kept for one second of Age, `headAge` (see writeHitHead). */
  head: PreparedHead | undefined;
  headAge: number;
  /** Hits in second `age` of Age before its head is kept. */
  ageHits: number;
  /** The compressed forms' own (made when first served). */
  br?: Prepared;
  gzip?: Prepared;
  /**
   * The content coding the stored body is in, when the origin sent it compressed in a coding edgecache can undo
   * ('gzip', 'br', 'deflate'); undefined for an identity body (or one in a coding it leaves alone).
   */
  encoded: 'br' | 'gzip' | 'deflate' | undefined;
  /**
   * The stored body is in a content coding edgecache can neither undo nor serve in another form (zstd, several
   * codings...), chosen by the origin by Accept-Encoding (its Vary says so; edgecache does not key on that field
   * with --compress on): only a client that accepts it may have it (the pipeline decides: the hit path declines).
   * Without that Vary the origin says any client may have it (RFC 9111 §4.1), and every client does.
   */
  foreign: boolean;
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

/** The stored fields of a compressed form: its Content-Encoding, and an entity tag of its own (RFC 9110 §8.8.3). */
function formHeaders(headers: StoredHeaders, form: string): StoredHeaders {
  const out: StoredHeaders = {};
  for (const name in headers) if (name !== 'content-encoding') out[name] = headers[name] as WireValue;
  if (form !== 'identity') out['content-encoding'] = form;
  const etag = formEtag(headers.etag, form);
  if (etag !== undefined) out.etag = etag;
  return out;
}

/** The fields every response built from these stored fields starts with (no Content-Length, Age, X-Cache...). */
function baseFields(headers: StoredHeaders): WireValue[] {
  const base: WireValue[] = [];
  for (const name in headers) {
    if (SKIPPED_FROM_STORE.has(name) || SURROGATE_ONLY_FIELDS.has(name)) continue;
    base.push(name, headers[name] as WireValue);
  }
  base.push('via', withVia(headers.via));
  return base;
}

/**
 * The fields of a form made on the fly from a stored entry (the origin's coding undone, or a coding applied
 * before the stored form exists): no Content-Length (the length is not known in advance); the entity tag of the
 * form, weak when the bytes are not reproducible (a compression made now may differ from the stored one).
 */
export function onTheFlyFields(entry: CacheEntry, form: Form, weak: boolean): { base: WireValue[]; headers: StoredHeaders; originCacheStatus: string | string[] | undefined } {
  const headers = formHeaders(entry.meta.headers, form);
  if (weak && typeof headers.etag === 'string' && !headers.etag.startsWith('W/')) headers.etag = `W/${headers.etag}`;
  return { base: baseFields(headers), headers, originCacheStatus: headers['cache-status'] };
}

/**
 * The Age of prepared fields not made for any Age yet. A small integer, as every Age is (whole seconds): NaN would
 * make V8 keep the three Age fields of every entry's prepared fields as boxed doubles, 48 bytes per served entry.
 */
const NO_AGE = -1;

function prepare(entry: CacheEntry, form: Coding | undefined, length: number): Prepared {
  const headers = form === undefined ? entry.meta.headers : formHeaders(entry.meta.headers, form);
  const withLength = allowsContentLength(entry.meta.status) ? length : -1;
  // Age and Cache-Status are filled in per second of Age (hitPrepared).
  const fields = rawHeadSupported() ? serializeFields(headFields(baseFields(headers), withLength)) : undefined;
  const headStart = fields === undefined ? undefined : flat([statusLine(entry.meta.status), fields]);
  const coding = form === undefined ? storedCoding(headers['content-encoding']) : undefined;
  return {
    hit: undefined,
    base: undefined,
    length: withLength,
    now: NO_TAIL,
    headers,
    originCacheStatus: headers['cache-status'],
    age: NO_AGE,
    headStart,
    head: undefined,
    headAge: NO_AGE,
    ageHits: 0,
    encoded: decodable(coding) ? coding : undefined,
    foreign: form === undefined && coding !== 'identity' && !decodable(coding) && variesOnEncoding(headers.vary),
    h2: undefined,
    h2Age: NO_AGE,
  };
}

/** A hit's fields before Age: the base fields and Content-Length. */
function headFields(base: WireValue[], length: number): WireValue[] {
  return length < 0 ? base : [...base, 'content-length', String(length)];
}

function baseOf(p: Prepared): WireValue[] {
  p.base ??= baseFields(p.headers);
  return p.base;
}

/** The hit's field array for the Age `p` carries (writeHead's, and the HTTP/2 header object's source). */
function hitFields(p: Prepared): WireValue[] {
  if (p.hit === undefined) {
    const outcome = outcomeFields('HIT', { hit: true });
    outcome[3] = p.now.cacheStatus;
    p.hit = [...headFields(baseOf(p), p.length), 'age', p.now.ageText, ...outcome];
  }
  return p.hit;
}

/**
 * Wire-ready headers per stored response, kept in its metadata's hit slot (a meta object always describes one
 * body, so its length is fixed; an entry decoded again from disk with the same metadata reuses them). A meta made
 * without a slot (a spread copy) gets one on its first hit, non-enumerable too (fillHitSlot).
 */
function prepared(entry: CacheEntry): Prepared {
  const meta = entry.meta;
  const kept = meta[HIT_SLOT] as Prepared | undefined;
  if (kept !== undefined) return kept;
  const made = prepare(entry, undefined, entry.body.length);
  fillHitSlot(meta, made);
  return made;
}

/** The prepared fields of one form of a stored entry ('identity': the body as stored). */
function preparedForm(entry: CacheEntry, form: Form): Prepared {
  const p = prepared(entry);
  if (form === 'identity') return p;
  const own = p[form];
  if (own !== undefined) return own;
  const made = prepare(entry, form, (entry.forms?.[form] as Body).length);
  p[form] = made;
  return made;
}

/** Whether the entry has a compressed form in `coding`. */
function hasForm(entry: CacheEntry, coding: Form): boolean {
  return coding === 'identity' || entry.forms?.[coding] !== undefined;
}

/**
 * The form of a stored entry to send a client with this Accept-Encoding: the one it prefers among those stored
 * ('identity' is the body as stored). Undefined when no stored form is acceptable: the body is in a coding the
 * client does not accept (the pipeline decodes it on the fly), or the client refuses identity and no
 * compressed form is stored (yet). Reads the entry's prepared fields and the memoised Accept-Encoding: nothing
 * is parsed or allocated per hit.
 */
export function servedForm(entry: CacheEntry, acceptEncoding: string | string[] | undefined): Form | undefined {
  const p = prepared(entry);
  const pref = encodingPreference(acceptEncoding);
  if (p.foreign) return undefined;
  if (p.encoded !== undefined) return accepts(pref, p.encoded) ? 'identity' : undefined;
  if (entry.forms === undefined) return pref.identity ? 'identity' : undefined;
  // chooseForm's loop, without a closure per hit.
  const order = pref.order;
  for (let i = 0; i < order.length; i++) {
    const form = order[i] as Form;
    if (hasForm(entry, form)) return form;
  }
  return undefined;
}

/** The body of one form of a stored entry. */
export function formBody(entry: CacheEntry, form: Form): Body {
  return form === 'identity' ? entry.body : (entry.forms?.[form] as Body);
}

/** Whether a stored body is in a content coding edgecache can neither undo nor replace (see Prepared.foreign). */
export function foreignCoding(entry: CacheEntry): boolean {
  return prepared(entry).foreign;
}

/** The content coding a stored body is in when edgecache can undo it (see Prepared.encoded). */
export function encodedAs(entry: CacheEntry): 'br' | 'gzip' | 'deflate' | undefined {
  return prepared(entry).encoded;
}

/**
 * A stored entry's fields as every response built from it starts (`base`: without Content-Length, Age, X-Cache
 * and Cache-Status), the stored fields of that form (`headers`, for the client's validators), and the
 * Cache-Status of caches nearer the origin, which edgecache's own is appended to. `form` is the one served.
 */
export function storedFields(
  entry: CacheEntry,
  form: Form = 'identity',
): { readonly base: readonly WireValue[]; readonly headers: StoredHeaders; readonly originCacheStatus: string | string[] | undefined } {
  const p = preparedForm(entry, form);
  baseOf(p);
  return p as Prepared & { base: WireValue[] };
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
export function hitHeaders(entry: CacheEntry, now: number, form: Form = 'identity'): WireValue[] {
  return hitFields(hitPrepared(entry, now, form));
}

/**
 * Hits an entry takes in one second of its Age before that second's head is kept on it. A kept head outlives
 * the young generation and is copied out of it (a scavenge's most costly work), then left as garbage in the old
 * one a second later: with many hot keys, each hit about once a second, keeping every head made GC about a third
 * of the CPU (docs/benchmarks.md). Below this many hits the head is joined for the response alone, which a
 * scavenge frees for nothing; an entry hit more often keeps one head per second and writes it as it is.
 */
const HEAD_KEEP_HITS = 8;

/**
 * The hit path: writes a fresh hit's status and headers, as a prepared head when the response allows it
 * (raw-head.ts), else through writeHead with the hit's field array.
 */
export function writeHitHead(res: ServerResponse, entry: CacheEntry, now: number, form: Form = 'identity'): void {
  const p = hitPrepared(entry, now, form);
  const status = entry.meta.status;
  let done: boolean;
  const tail = p.now.tail;
  if (p.headStart === undefined || tail === undefined) done = false;
  else if (p.headAge === p.age) done = setRawHead(res, status, p.head as PreparedHead);
  else if (++p.ageHits < HEAD_KEEP_HITS) done = setRawHeadOnce(res, status, p.headStart, tail);
  else {
    // Not flattened here: setRawHead joins it with the connection fields into the one flat string sent.
    const fields = p.headStart + tail;
    if (p.head === undefined) p.head = preparedHead(fields);
    else {
      p.head.fields = fields;
      p.head.connectionFields = '';
    }
    p.headAge = p.age;
    done = setRawHead(res, status, p.head);
  }
  if (!done) res.writeHead(status, hitFields(p));
}

/** The Age, X-Cache and Cache-Status values of a hit, and their serialized lines, for one (Age, ttl, upstream). */
interface HitTail {
  ageText: string;
  cacheStatus: string;
  /** Undefined when a value cannot be sent as a prepared head (an upstream Cache-Status writeHead would refuse). */
  tail: string | undefined;
}

/** The tail of prepared fields not made for any Age yet (NO_AGE). */
const NO_TAIL: HitTail = { ageText: '', cacheStatus: '', tail: undefined };

/**
 * Hit tails by (Age, ttl) and the Cache-Status of caches nearer the origin: with many hot keys nearly every hit is
 * an entry's first in a new second of its Age, and entries stored with the same lifetime around the same time
 * share the tail, instead of each building (and keeping, until its next second) its own values and lines.
 * Bounded: cleared when it holds TAIL_CACHE_MAX tails; an upstream value longer than UPSTREAM_SHARED_MAX, or sent
 * as several fields, is not kept here.
 */
const tails = new Map<string, HitTail>();
const TAIL_CACHE_MAX = 50_000;
const UPSTREAM_SHARED_MAX = 256;

function makeTail(age: number, ttl: number, upstream: string | string[] | undefined): HitTail {
  const ageText = String(age);
  const outcome = outcomeFields('HIT', { hit: true, ttl }, upstream);
  return { ageText, cacheStatus: outcome[3], tail: serializeFields(['age', ageText, ...outcome]) };
}

function hitTail(age: number, ttl: number, upstream: string | string[] | undefined): HitTail {
  if (typeof upstream === 'object' || (upstream !== undefined && upstream.length > UPSTREAM_SHARED_MAX)) return makeTail(age, ttl, upstream);
  const key = upstream === undefined ? `${age} ${ttl}` : `${age} ${ttl} ${upstream}`;
  let tail = tails.get(key);
  if (tail === undefined) {
    tail = makeTail(age, ttl, upstream);
    if (tails.size >= TAIL_CACHE_MAX) tails.clear();
    tails.set(key, tail);
  }
  return tail;
}

function hitPrepared(entry: CacheEntry, now: number, form: Form): Prepared {
  const p = preparedForm(entry, form);
  const age = ageSeconds(entry, now);
  if (age !== p.age) {
    const now = hitTail(age, Math.floor(entry.meta.lifetime / 1000) - age, p.originCacheStatus);
    p.now = now;
    const h = p.hit;
    if (h !== undefined) {
      h[h.length - 5] = now.ageText;
      h[h.length - 1] = now.cacheStatus;
    }
    p.age = age;
    p.ageHits = 0;
  }
  return p;
}

/**
 * The h2 hit path's header object (h2-streams.ts): `:status` and the same fields as the HTTP/1.1 hit head, built
 * once per entry and form, with Age and Cache-Status refreshed when the whole seconds of Age change. node:http2 copies it in
 * `stream.respond()`, so one object serves every hit.
 */
export function h2HitHeaders(entry: CacheEntry, now: number, form: Form = 'identity'): H2Fields {
  const p = hitPrepared(entry, now, form);
  let fields = p.h2;
  if (fields === undefined) {
    fields = { ':status': entry.meta.status };
    const h = hitFields(p);
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i] as string;
      if (!CONNECTION_SPECIFIC.has(name)) fields[name] = h[i + 1] as WireValue;
    }
    p.h2 = fields;
    p.h2Age = p.age;
  } else if (p.h2Age !== p.age) {
    fields.age = p.now.ageText;
    fields['cache-status'] = p.now.cacheStatus;
    p.h2Age = p.age;
  }
  return fields;
}
