/**
 * What the cache holds. A CacheEntry is one stored response (one Vary variant); a VaryRecord sits under the
 * primary key of a URL whose responses vary and lists the request fields that select a variant.
 */
import { compactFields, shareFieldValues } from './field-values.js';
import { freshUntil, type Lifetimes } from '../policies/http/freshness.js';
import type { Body } from './body.js';

/** Response header fields as stored: lower-case names, hop-by-hop fields already removed. */
export type StoredHeaders = Record<string, string | string[]>;

/**
 * A slot on every EntryMeta for what the hit path prepares from it on the first hit (proxy/http/hit-head.ts: the
 * wire-ready head), so that a hit finds it on the object it already holds instead of in a side table (a WeakMap
 * lookup was about 1.5 % of a hit's CPU with thousands of hot keys). Non-enumerable, defined when the meta is made
 * (withHitSlot): filling it changes no hidden class, and copies (spread, Object.assign), JSON and the tiers'
 * codecs never carry it, so prepared fields are never shared by two metas.
 */
export const HIT_SLOT: unique symbol = Symbol('edgecache.hitSlot');

export interface EntryMeta extends Lifetimes {
  /** Full key: primary key, plus the Vary secondary key when the response varies. */
  key: string;
  /** Primary key (host + path): what URL purges and invalidation address. */
  primaryKey: string;
  status: number;
  headers: StoredHeaders;
  /** Epoch ms when the response was received. */
  storedAt: number;
  /** Lower-cased Vary field names, or null. */
  vary: string[] | null;
  /** Surrogate keys (tags). */
  tags: string[];
  /** Epoch ms after which the entry is useless and may be deleted; Infinity while it can still be revalidated. */
  deletableAt: number;
  /**
   * The compressed forms stored beside the body (see forms.ts), by their lengths; null or absent when there are
   * none. Part of the metadata so that a lower tier, which stores one body, keeps them after it (packed).
   */
  encodings?: FormsLayout | null;
  /** See HIT_SLOT. */
  [HIT_SLOT]?: unknown;
}

/** The lengths of an entry's stored forms: the identity body first, then each compressed form present. */
export interface FormsLayout {
  identity: number;
  br?: number;
  gzip?: number;
}

/** The compressed forms of a stored response (proxy/pipeline/compressor.ts makes them). */
export interface EncodedForms {
  br?: Body;
  gzip?: Body;
}

export interface CacheEntry {
  kind: 'entry';
  meta: EntryMeta;
  body: Body;
  /**
   * The body in each content coding edgecache compressed it to, beside the identity form `body` (see forms.ts).
   * Present whenever `meta.encodings` is; a lower tier keeps them packed after the body instead.
   */
  forms?: EncodedForms;
}

export interface VaryRecord {
  kind: 'vary';
  primaryKey: string;
  /** Lower-cased, sorted field names nominated by Vary. */
  fields: string[];
  /** Secondary keys of stored variants, least recently stored first. */
  variants: string[];
}

export type CacheRecord = CacheEntry | VaryRecord;

/** The tags of every entry without any (one array for all: tags are never added to a stored entry's). */
const NO_TAGS: string[] = [];

/**
 * Gives a new meta object its (empty) hit slot; see HIT_SLOT. `meta` is a fresh object literal whose last property
 * is `reserved: undefined`: deleting that last property leaves V8 the in-object room the slot then takes (8 bytes
 * per entry, where a property added to a literal without room costs an out-of-object array of about 40).
 */
export function withHitSlot(meta: EntryMeta & { reserved?: undefined }): EntryMeta {
  delete meta.reserved;
  return fillHitSlot(meta, undefined);
}

/**
 * Sets a meta's hit slot, non-enumerable whether or not the meta was made with one (a spread copy of a meta has
 * none: a plain assignment would add an enumerable property, which the next spread would copy).
 */
export function fillHitSlot(meta: EntryMeta, value: unknown): EntryMeta {
  // A meta made with its slot: a plain store keeps the property as it was defined (non-enumerable), and costs a
  // field write where defineProperty takes V8's slow path and a descriptor object (about 5 % of a first hit).
  if (Object.prototype.hasOwnProperty.call(meta, HIT_SLOT)) meta[HIT_SLOT] = value;
  else Object.defineProperty(meta, HIT_SLOT, { value, writable: true, enumerable: false, configurable: true });
  return meta;
}

/**
 * A new entry's metadata, every field listed in one object literal, always in this order. (Object spread followed
 * by new fields, `{ ...lifetimes, key, ... }`, gives V8 a dictionary-mode object with a hidden class of its own:
 * about 0.5 KB more per stored entry, and slower property reads on every hit.)
 */
export function newEntryMeta(
  lifetimes: Lifetimes,
  fields: Omit<EntryMeta, keyof Lifetimes | 'encodings'> & { encodings?: FormsLayout | null },
  /** 'decoded': the headers come from a tier's record (JSON.parse), already compact (see compactFields). */
  source: 'filled' | 'decoded' = 'filled',
): EntryMeta {
  return withHitSlot({
    ageBase: lifetimes.ageBase,
    lifetime: lifetimes.lifetime,
    staleWhileRevalidate: lifetimes.staleWhileRevalidate,
    staleIfError: lifetimes.staleIfError,
    mustRevalidate: lifetimes.mustRevalidate,
    sharedMaxAge: lifetimes.sharedMaxAge,
    hasValidator: lifetimes.hasValidator,
    key: fields.key,
    primaryKey: fields.primaryKey,
    status: fields.status,
    headers: source === 'decoded' ? shareFieldValues(fields.headers) : compactFields(fields.headers),
    storedAt: fields.storedAt,
    vary: fields.vary,
    tags: fields.tags.length === 0 ? NO_TAGS : fields.tags,
    deletableAt: fields.deletableAt,
    encodings: fields.encodings ?? null,
    reserved: undefined,
  });
}

const HEADER_OVERHEAD = 256;

/** Bytes a record is charged against a tier's budget: body, header text and a fixed overhead. */
export function recordSize(record: CacheRecord): number {
  if (record.kind === 'vary') {
    let size = HEADER_OVERHEAD + record.primaryKey.length;
    for (const v of record.variants) size += v.length + 16;
    return size;
  }
  let size = HEADER_OVERHEAD + record.body.length + record.meta.key.length;
  const forms = record.forms;
  if (forms !== undefined) size += (forms.br?.length ?? 0) + (forms.gzip?.length ?? 0);
  for (const name in record.meta.headers) {
    const value = record.meta.headers[name] as string | string[];
    size += name.length + 4 + (Array.isArray(value) ? value.reduce((n, v) => n + v.length + 4, 0) : value.length);
  }
  return size;
}

/**
 * How long an entry without a validator is kept past its stale windows, for requests that accept stale
 * responses (max-stale): like nginx's proxy_cache_path inactive=10m. Every tier treats it as gone after that.
 */
export const STALE_KEEP_MS = 10 * 60_000;

/**
 * When an entry stops being useful: never while it has a validator (a stale copy can be revalidated cheaply);
 * otherwise once no stale use is left (stale-while-revalidate, stale-if-error, the operator's grace, and the
 * keep period for max-stale requests).
 */
export function deletableAt(lifetimes: Lifetimes, grace = 0): number {
  if (lifetimes.hasValidator) return Infinity;
  if (lifetimes.mustRevalidate) return freshUntil(lifetimes);
  const staleUse = Math.max(lifetimes.staleWhileRevalidate, lifetimes.staleIfError, lifetimes.sharedMaxAge ? 0 : grace);
  return freshUntil(lifetimes) + staleUse + (lifetimes.sharedMaxAge ? 0 : STALE_KEEP_MS);
}
