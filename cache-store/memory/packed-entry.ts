/**
 * A small entry of the memory tier as bytes: what the tier keeps for an entry that is not being hit, so that a
 * million small responses cost a few hundred bytes each instead of an object graph each (metadata, header object,
 * value strings, body view: about 450 bytes beyond body and header text, docs/benchmarks.md "Memory per entry").
 * The tier decodes an entry when it is hit (memory-tier.ts keeps a bounded set of decoded entries, see
 * decoded-entries.ts) and lets the objects go again when the entry cools.
 *
 * Layout (little-endian; the record starts 4-byte aligned in a slab, see record-slabs.ts):
 *
 *     0  u16  record length (everything below; 0 once the slabs freed it)
 *     2  u16  body length (the identity body, then each compressed form, as forms.ts packs them for a lower tier)
 *     4  u16  status
 *     6  u8   flags: MUST_REVALIDATE, SHARED_MAX_AGE, HAS_VALIDATOR, NEVER_DELETABLE (deletableAt is Infinity),
 *             SHAPED_FIELDS (the header fields as field-shapes.ts writes them, not JSON)
 *     7  u8   when it was last decoded without being kept decoded (decoded-entries.ts), 0 for never: the one byte
 *             written after the record was placed
 *     8  u8   which of the times below are written as varints (bit i for the i-th; a double otherwise)
 *     9  u16  length of the header fields (shaped or JSON)
 *    11  u16  length of the extras' JSON (0 for none)
 *    13  f64  ageBase
 *    21       storedAt and deletableAt as differences from ageBase, lifetime, staleWhileRevalidate and
 *             staleIfError: each a zigzag varint (varint.ts) when it is a whole number of ms within 32 bits, else
 *             an f64; deletableAt left out when NEVER_DELETABLE
 *        then the header fields (a shape index and the values, field-shapes.ts; JSON when they have no shape),
 *        the extras as JSON {"t": tags, "v": vary, "p": primaryKey, "k": key, "e": encodings}, each only when it
 *        differs from the usual (no tags, no Vary, the primary key and the meta's key both the tier's key, no
 *        forms), then the body bytes.
 *
 * Most entries take about 30 bytes before their header fields (whole milliseconds, no expiry: a validator, no
 * extras), and their fields a byte of shape and one per value besides the values.
 */
import { fieldsRoom, fieldsShape, readFields, writeFields } from './field-shapes.js';
import { ByteCursor, unzigzag, writeVarint, zigzag } from './varint.js';
import { FORM_ORDER, splitPacked } from '../forms.js';
import { newEntryMeta, type CacheEntry, type EncodedForms, type EntryMeta, type FormsLayout, type StoredHeaders } from '../entry.js';

/** Bodies (with their compressed forms) up to this many bytes are packed; larger ones keep a Buffer of their own. */
export const PACKED_BODY_LIMIT = 2048;
/** Largest packed record: header, JSON and body. Longer header sections leave the entry as objects. */
const PACKED_RECORD_LIMIT = 8192;
/** Bytes before the times: the fixed fields, ageBase last. */
const FIXED = 21;
const MUST_REVALIDATE = 1;
const SHARED_MAX_AGE = 2;
const HAS_VALIDATOR = 4;
const NEVER_DELETABLE = 8;
/** The header fields are written by field-shapes.ts (a shape index and the values), not as JSON. */
const SHAPED_FIELDS = 16;
/** Bytes a packed record may take beyond its header fields, extras and body: the fixed part and five doubles. */
const MOST_NUMBERS = FIXED + 5 * 8;
/** Reads a record's times (decodeEntry and the others run one at a time: one cursor). */
const cursor = new ByteCursor();

/** What the extras' JSON carries of the metadata: only what differs from the usual. */
interface PackedExtras {
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

/** The extras of a packed entry as JSON, or '' when it has none. */
function extrasJson(key: string, meta: EntryMeta): string {
  const extras: PackedExtras = {};
  if (meta.tags.length > 0) extras.t = meta.tags;
  if (meta.vary !== null) extras.v = meta.vary;
  if (meta.primaryKey !== key) extras.p = meta.primaryKey;
  if (meta.key !== key) extras.k = meta.key;
  if (meta.encodings != null) extras.e = meta.encodings;
  for (const _ in extras) return JSON.stringify(extras);
  return '';
}

/** Whether a time is written as a varint (a whole number of ms within 32 bits) rather than an f64. */
function small(value: number): boolean {
  return Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff;
}

/** Writes a time at `at` in the form `small` chose; returns where the next one goes. */
function writeTime(out: Buffer, at: number, value: number, asVarint: boolean): number {
  if (asVarint) return writeVarint(out, at, zigzag(value));
  return out.writeDoubleLE(value, at);
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
  const extras = extrasJson(key, meta);
  // At most 3 bytes of UTF-8 per UTF-16 code unit: room checked before writing, so nothing is truncated (a record
  // that ends up over PACKED_RECORD_LIMIT is declined below).
  const shape = fieldsShape(meta.headers);
  const json = shape === -1 ? JSON.stringify(meta.headers) : '';
  const most = MOST_NUMBERS + (shape === -1 ? json.length * 3 : fieldsRoom(meta.headers)) + extras.length * 3 + bodyLength;
  if (most > scratch.length) scratch = Buffer.allocUnsafeSlow(most);
  const out = scratch;
  const ageBase = meta.ageBase;
  const never = meta.deletableAt === Infinity;
  const times = [meta.storedAt - ageBase, meta.lifetime, meta.staleWhileRevalidate, meta.staleIfError, meta.deletableAt - ageBase];
  let forms = 0;
  let at = FIXED;
  for (let i = 0; i < (never ? 4 : 5); i++) {
    const value = times[i] as number;
    const asInt = small(value);
    if (asInt) forms |= 1 << i;
    at = writeTime(out, at, value, asInt);
  }
  let headersLength: number;
  if (shape === -1) headersLength = out.write(json, at, 'utf8');
  else {
    const end = writeFields(shape, meta.headers, out, at);
    // A value over 64 KiB: far over PACKED_RECORD_LIMIT anyway.
    if (end === -1) return undefined;
    headersLength = end - at;
  }
  at += headersLength;
  const extrasLength = extras === '' ? 0 : out.write(extras, at, 'utf8');
  at += extrasLength;
  const length = at + bodyLength;
  if (length > PACKED_RECORD_LIMIT) return undefined;
  out.writeUInt16LE(length, 0);
  out.writeUInt16LE(bodyLength, 2);
  out.writeUInt16LE(meta.status, 4);
  out[6] =
    (meta.mustRevalidate ? MUST_REVALIDATE : 0) |
    (meta.sharedMaxAge ? SHARED_MAX_AGE : 0) |
    (meta.hasValidator ? HAS_VALIDATOR : 0) |
    (never ? NEVER_DELETABLE : 0) |
    (shape !== -1 ? SHAPED_FIELDS : 0);
  out[7] = 0;
  out[8] = forms;
  out.writeUInt16LE(headersLength, 9);
  out.writeUInt16LE(extrasLength, 11);
  out.writeDoubleLE(ageBase, FIXED - 8);
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
  return bytes[at + 7] as number;
}

export function setDecodedMark(bytes: Buffer, at: number, mark: number): void {
  bytes[at + 7] = mark;
}

/** A packed record's length, read from its first bytes (`at` is where it starts in `bytes`). */
export function packedLength(bytes: Buffer, at: number): number {
  return bytes.readUInt16LE(at);
}

/** Marks a record as freed: its length reads 0 from now on (record-slabs.ts). */
export function clearPackedLength(bytes: Buffer, at: number): void {
  bytes.writeUInt16LE(0, at);
}

/** Where a packed record's parts are: its times (decoded), the JSON texts and the body. */
interface PackedParts {
  storedAt: number;
  lifetime: number;
  staleWhileRevalidate: number;
  staleIfError: number;
  deletableAt: number;
  headersAt: number;
  extrasAt: number;
  bodyAt: number;
}

/** Reads the times and finds the parts of the record at `at` (offsets in `bytes`). */
function parts(bytes: Buffer, at: number): PackedParts {
  const forms = bytes[at + 8] as number;
  const ageBase = bytes.readDoubleLE(at + FIXED - 8);
  const never = ((bytes[at + 6] as number) & NEVER_DELETABLE) !== 0;
  cursor.bytes = bytes;
  cursor.at = at + FIXED;
  const storedAt = ageBase + readTime(forms, 0);
  const lifetime = readTime(forms, 1);
  const staleWhileRevalidate = readTime(forms, 2);
  const staleIfError = readTime(forms, 3);
  const deletableAt = never ? Infinity : ageBase + readTime(forms, 4);
  const headersAt = cursor.at;
  cursor.bytes = EMPTY;
  const extrasAt = headersAt + bytes.readUInt16LE(at + 9);
  const bodyAt = extrasAt + bytes.readUInt16LE(at + 11);
  return { storedAt, lifetime, staleWhileRevalidate, staleIfError, deletableAt, headersAt, extrasAt, bodyAt };
}

const EMPTY = Buffer.alloc(0);

/** The i-th time at the cursor, in the form bit i of `forms` says (see writeTime). */
function readTime(forms: number, i: number): number {
  return (forms & (1 << i)) !== 0 ? unzigzag(cursor.varint()) : cursor.double();
}

function extrasOf(bytes: Buffer, where: PackedParts): PackedExtras {
  return where.bodyAt === where.extrasAt ? NO_EXTRAS : (JSON.parse(bytes.toString('utf8', where.extrasAt, where.bodyAt)) as PackedExtras);
}

const NO_EXTRAS: PackedExtras = {};

/** The surrogate keys of a packed entry. */
export function packedTags(bytes: Buffer, at: number): readonly string[] {
  return extrasOf(bytes, parts(bytes, at)).t ?? NO_TAGS;
}

const NO_TAGS: readonly string[] = [];

/**
 * The entry packed at `at` in `bytes`, stored under `key`: new metadata (with its own hit slot), and the body and
 * forms as views of `bytes` (which must never be overwritten while a view is alive: slabs are filled once).
 */
export function decodeEntry(key: string, bytes: Buffer, at: number): { meta: EntryMeta; body: Buffer; forms: EncodedForms | undefined } {
  const where = parts(bytes, at);
  const flags = bytes[at + 6] as number;
  const extras = extrasOf(bytes, where);
  const meta = newEntryMeta(
    {
      ageBase: bytes.readDoubleLE(at + FIXED - 8),
      lifetime: where.lifetime,
      staleWhileRevalidate: where.staleWhileRevalidate,
      staleIfError: where.staleIfError,
      mustRevalidate: (flags & MUST_REVALIDATE) !== 0,
      sharedMaxAge: (flags & SHARED_MAX_AGE) !== 0,
      hasValidator: (flags & HAS_VALIDATOR) !== 0,
    },
    {
      key: extras.k ?? key,
      primaryKey: extras.p ?? key,
      status: bytes.readUInt16LE(at + 4),
      headers: (flags & SHAPED_FIELDS) !== 0 ? readFields(bytes, where.headersAt) : (JSON.parse(bytes.toString('utf8', where.headersAt, where.extrasAt)) as StoredHeaders),
      storedAt: where.storedAt,
      vary: extras.v ?? null,
      tags: extras.t ?? [],
      deletableAt: where.deletableAt,
      encodings: extras.e ?? null,
    },
    'decoded',
  );
  return { meta, ...views(bytes, at, where.bodyAt, extras.e) };
}

/** The body and forms of the entry packed at `at` in `bytes`, as views (after a compaction moved it). */
export function packedViews(bytes: Buffer, at: number): { body: Buffer; forms: EncodedForms | undefined } {
  const where = parts(bytes, at);
  return views(bytes, at, where.bodyAt, extrasOf(bytes, where).e);
}

function views(bytes: Buffer, at: number, start: number, layout: FormsLayout | undefined): { body: Buffer; forms: EncodedForms | undefined } {
  const packedBody = bytes.subarray(start, start + bytes.readUInt16LE(at + 2));
  return layout === undefined ? { body: packedBody, forms: undefined } : splitPacked(packedBody, layout);
}
