/**
 * A small entry of the memory tier as bytes: what the tier keeps for an entry that is not being hit, so that a
 * million small responses cost a few hundred bytes each instead of an object graph each (metadata, header object,
 * value strings, body view: about 450 bytes beyond body and header text, docs/benchmarks.md "Memory per entry").
 * The tier decodes an entry when it is hit (memory-tier.ts keeps a bounded set of decoded entries, see
 * decoded-entries.ts) and lets the objects go again when the entry cools.
 *
 * Layout (little-endian; the record starts 8-byte aligned in a slab, see record-slabs.ts):
 *
 *     0  u32  record length (header, JSON and body)
 *     4  u32  body length (the identity body, then each compressed form, as forms.ts packs them for a lower tier)
 *     8  u16  status
 *    10  u8   flags: MUST_REVALIDATE, SHARED_MAX_AGE, HAS_VALIDATOR
 *    11  u8   when it was last decoded without being kept decoded (decoded-entries.ts), 0 for never; the one byte
 *         written after the record was placed
 *    12  u32  JSON length
 *    16  f64  ageBase, lifetime, staleWhileRevalidate, staleIfError, storedAt, deletableAt (Infinity as such)
 *    64  JSON {"h": headers, "t": tags, "v": vary, "p": primaryKey, "k": key, "e": encodings}, each but "h" only
 *         when it differs from the usual (no tags, no Vary, the primary key and the meta's key both the tier's key,
 *         no forms)
 *         then the body bytes.
 *
 * The header fields go through JSON because JSON.parse builds an object with room for exactly its fields (what
 * compactFields makes for a filled entry), and reads strings and arrays of strings in one native pass.
 */
import { newEntryMeta, type CacheEntry, type EncodedForms, type EntryMeta, type FormsLayout, type StoredHeaders } from '../entry.js';

/** Bodies (with their compressed forms) up to this many bytes are packed; larger ones keep a Buffer of their own. */
export const PACKED_BODY_LIMIT = 2048;
/** Largest packed record: header, JSON and body. Longer header sections leave the entry as objects. */
const PACKED_RECORD_LIMIT = 8192;
const HEADER = 64;
const MUST_REVALIDATE = 1;
const SHARED_MAX_AGE = 2;
const HAS_VALIDATOR = 4;

/** What JSON carries of the metadata. */
interface PackedFields {
  h: StoredHeaders;
  t?: string[];
  v?: string[];
  p?: string;
  k?: string;
  e?: FormsLayout;
}

/** An entry's body and forms as packed bytes, or undefined when they cannot be (a chunked body, too large). */
function packedBodyLength(entry: CacheEntry): number | undefined {
  const { body, forms } = entry;
  if (!Buffer.isBuffer(body)) return undefined;
  let length = body.length;
  if (forms !== undefined) {
    const layout = entry.meta.encodings;
    if (layout == null || layout.identity !== body.length) return undefined;
    for (const coding of FORM_ORDER) {
      const form = forms[coding];
      if ((form === undefined) !== (layout[coding] === undefined)) return undefined;
      if (form === undefined) continue;
      if (!Buffer.isBuffer(form) || form.length !== layout[coding]) return undefined;
      length += form.length;
    }
  } else if (entry.meta.encodings != null) return undefined;
  return length <= PACKED_BODY_LIMIT ? length : undefined;
}

const FORM_ORDER = ['br', 'gzip'] as const;

/** The JSON part of a packed entry. */
function fieldsJson(key: string, meta: EntryMeta): string {
  const fields: PackedFields = { h: meta.headers };
  if (meta.tags.length > 0) fields.t = meta.tags;
  if (meta.vary !== null) fields.v = meta.vary;
  if (meta.primaryKey !== key) fields.p = meta.primaryKey;
  if (meta.key !== key) fields.k = meta.key;
  if (meta.encodings != null) fields.e = meta.encodings;
  return JSON.stringify(fields);
}

/** Reused for every encoding: the tier copies the bytes into a slab. */
let scratch = Buffer.allocUnsafeSlow(PACKED_RECORD_LIMIT);

/**
 * The entry as packed bytes (a view of a buffer reused by the next call: copy it before encoding another), or
 * undefined when it is not packed: a body over PACKED_BODY_LIMIT or chunked, forms that do not match their layout,
 * a record over PACKED_RECORD_LIMIT.
 */
export function encodeEntry(key: string, entry: CacheEntry): Buffer | undefined {
  const bodyLength = packedBodyLength(entry);
  if (bodyLength === undefined) return undefined;
  const { meta } = entry;
  const json = fieldsJson(key, meta);
  // At most 3 bytes of UTF-8 per UTF-16 code unit: checked before writing, so nothing is truncated.
  if (HEADER + json.length * 3 + bodyLength > scratch.length) {
    if (HEADER + Buffer.byteLength(json) + bodyLength > PACKED_RECORD_LIMIT) return undefined;
    scratch = Buffer.allocUnsafeSlow(HEADER + json.length * 3 + bodyLength);
  }
  const out = scratch;
  const jsonLength = out.write(json, HEADER, 'utf8');
  const length = HEADER + jsonLength + bodyLength;
  if (length > PACKED_RECORD_LIMIT) return undefined;
  out.writeUInt32LE(length, 0);
  out.writeUInt32LE(bodyLength, 4);
  out.writeUInt16LE(meta.status, 8);
  out[10] = (meta.mustRevalidate ? MUST_REVALIDATE : 0) | (meta.sharedMaxAge ? SHARED_MAX_AGE : 0) | (meta.hasValidator ? HAS_VALIDATOR : 0);
  out[11] = 0;
  out.writeUInt32LE(jsonLength, 12);
  out.writeDoubleLE(meta.ageBase, 16);
  out.writeDoubleLE(meta.lifetime, 24);
  out.writeDoubleLE(meta.staleWhileRevalidate, 32);
  out.writeDoubleLE(meta.staleIfError, 40);
  out.writeDoubleLE(meta.storedAt, 48);
  out.writeDoubleLE(meta.deletableAt, 56);
  let at = HEADER + jsonLength;
  at += (entry.body as Buffer).copy(out, at);
  if (entry.forms !== undefined) {
    for (const coding of FORM_ORDER) {
      const form = entry.forms[coding];
      if (form !== undefined) at += (form as Buffer).copy(out, at);
    }
  }
  return out.subarray(0, length);
}

/** When the record at `at` was last decoded and not kept decoded (see decoded-entries.ts `keeps`). */
export function decodedMark(bytes: Buffer, at: number): number {
  return bytes[at + 11] as number;
}

export function setDecodedMark(bytes: Buffer, at: number, mark: number): void {
  bytes[at + 11] = mark;
}

/** A packed record's length, read from its first bytes (`at` is where it starts in `bytes`). */
export function packedLength(bytes: Buffer, at: number): number {
  return bytes.readUInt32LE(at);
}

/** The decoded fields of a packed record (tags, keys, headers) without making an entry: for bookkeeping. */
function packedFields(bytes: Buffer, at: number): PackedFields {
  const jsonLength = bytes.readUInt32LE(at + 12);
  return JSON.parse(bytes.toString('utf8', at + HEADER, at + HEADER + jsonLength)) as PackedFields;
}

/** The surrogate keys of a packed entry. */
export function packedTags(bytes: Buffer, at: number): readonly string[] {
  return packedFields(bytes, at).t ?? NO_TAGS;
}

const NO_TAGS: readonly string[] = [];

/**
 * The entry packed at `at` in `bytes`, stored under `key`: new metadata (with its own hit slot), and the body and
 * forms as views of `bytes` (which must never be overwritten while a view is alive: slabs are filled once).
 */
export function decodeEntry(key: string, bytes: Buffer, at: number): { meta: EntryMeta; body: Buffer; forms: EncodedForms | undefined } {
  const bodyLength = bytes.readUInt32LE(at + 4);
  const jsonLength = bytes.readUInt32LE(at + 12);
  const flags = bytes[at + 10] as number;
  const fields = packedFields(bytes, at);
  const meta = newEntryMeta(
    {
      ageBase: bytes.readDoubleLE(at + 16),
      lifetime: bytes.readDoubleLE(at + 24),
      staleWhileRevalidate: bytes.readDoubleLE(at + 32),
      staleIfError: bytes.readDoubleLE(at + 40),
      mustRevalidate: (flags & MUST_REVALIDATE) !== 0,
      sharedMaxAge: (flags & SHARED_MAX_AGE) !== 0,
      hasValidator: (flags & HAS_VALIDATOR) !== 0,
    },
    {
      key: fields.k ?? key,
      primaryKey: fields.p ?? key,
      status: bytes.readUInt16LE(at + 8),
      headers: fields.h,
      storedAt: bytes.readDoubleLE(at + 48),
      vary: fields.v ?? null,
      tags: fields.t ?? [],
      deletableAt: bytes.readDoubleLE(at + 56),
      encodings: fields.e ?? null,
    },
    'decoded',
  );
  return { meta, ...views(bytes, at, jsonLength, bodyLength, fields.e) };
}

/** The body and forms of the entry packed at `at` in `bytes`, as views (after a compaction moved it). */
export function packedViews(bytes: Buffer, at: number): { body: Buffer; forms: EncodedForms | undefined } {
  const fields = packedFields(bytes, at);
  return views(bytes, at, bytes.readUInt32LE(at + 12), bytes.readUInt32LE(at + 4), fields.e);
}

function views(bytes: Buffer, at: number, jsonLength: number, bodyLength: number, layout: FormsLayout | undefined): { body: Buffer; forms: EncodedForms | undefined } {
  const start = at + HEADER + jsonLength;
  if (layout === undefined) return { body: bytes.subarray(start, start + bodyLength), forms: undefined };
  const forms: EncodedForms = {};
  let from = start + layout.identity;
  for (const coding of FORM_ORDER) {
    const length = layout[coding];
    if (length === undefined) continue;
    forms[coding] = bytes.subarray(from, from + length);
    from += length;
  }
  return { body: bytes.subarray(start, start + layout.identity), forms };
}
