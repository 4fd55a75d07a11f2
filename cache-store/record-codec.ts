/**
 * The record envelope every lower tier stores a record in (the disk tier's `meta` values, and behind a header of
 * its own the Redis tier's meta values): the record as JSON, its body id and, when the body is small enough, the
 * body itself. Bodies of up to `inlineLimit` bytes are stored inside the value (a disk hit is then one LMDB
 * read); larger ones are stored by each tier on its own (chunks in LMDB's `bodies`, a body key in Redis). How
 * cache keys become LMDB keys, and LMDB's own housekeeping records, are in lmdb/layout.ts.
 *
 * A meta value is an envelope: 2 magic bytes, the format version, the record kind, a CRC-32 of everything after
 * it, the body id (float64), the length of the JSON (uint32), the record as UTF-8 JSON, then the inline body
 * bytes, if any. Anything that does not decode cleanly (wrong magic, version or checksum, malformed JSON, fields
 * of the wrong type, a length that does not add up) is reported as corrupt, never guessed at.
 */
import { crc32 } from 'node:zlib';
import { newEntryMeta, type CacheEntry, type EntryMeta, type VaryRecord } from './entry.js';
import { freshUntil } from '../policies/http/freshness.js';

/**
 * On-disk format version, kept in `info` and in every meta envelope. Bump it whenever the layout or the
 * encoding changes: a tier that finds another version clears itself instead of misreading.
 */
export const FORMAT_VERSION = 4;

/** Largest body stored inside its meta value (at most one chunk): bigger ones go to `bodies` in chunks. */
export const INLINE_LIMIT = 64 * 1024;

/** The inline limit for a given chunk size: a body is inline when it would be a single chunk of at most INLINE_LIMIT. */
function inlineLimitFor(chunkSize: number): number {
  return Math.min(INLINE_LIMIT, chunkSize);
}

const MAGIC_0 = 0x45; // 'E'
const MAGIC_1 = 0x43; // 'C'
const KIND_ENTRY = 1;
const KIND_VARY = 2;
export const HEADER_BYTES = 20; // magic(2) version(1) kind(1) crc32(4) bodyId(8) jsonLength(4)
/** Where the body id (float64, little-endian) sits in the envelope. */
export const BODY_ID_AT = 8;
/** The checksum covers everything from here: body id, JSON length, JSON and inline body. */
const CHECKED_FROM = 8;

export class CorruptRecordError extends Error {
  constructor(reason: string) {
    super(`corrupt disk-tier record: ${reason}`);
    this.name = 'CorruptRecordError';
  }
}

/** What the meta database says about an entry's body. */
export interface BodyLayout {
  bodyId: number;
  length: number;
  /** Chunks in `bodies`: 0 for an inline body. */
  chunkCount: number;
  chunkSize: number;
  /** Where an inline body starts in the meta value, or -1 when the body is in `bodies`. */
  inlineAt: number;
}

export type DecodedRecord =
  | { kind: 'entry'; key: string; size: number; meta: EntryMeta; body: BodyLayout }
  | { kind: 'vary'; key: string; size: number; record: VaryRecord };

/** A record encoded except for its body id, which is only known inside the write transaction. */
export interface PreparedRecord {
  kind: number;
  json: Buffer;
  /** Bytes of body stored inline (after the JSON); 0 when there is none or it goes to `bodies`. */
  inlineBytes: number;
  /** Chunks the body takes in `bodies` (0 when inline). */
  chunkCount: number;
}

/** Encodes everything but the body id. Throws if the record cannot be serialised (the write is declined). */
export function prepareRecord(key: string, record: CacheEntry | VaryRecord, size: number, chunkSize: number): PreparedRecord {
  if (record.kind === 'vary') {
    const payload = { k: key, s: size, r: { primaryKey: record.primaryKey, fields: record.fields, variants: record.variants } };
    return { kind: KIND_VARY, json: Buffer.from(JSON.stringify(payload)), inlineBytes: 0, chunkCount: 0 };
  }
  const { meta } = record;
  // freshUntil is no longer kept in the metadata, but stays in the record, as readers of this format expect it.
  const storedMeta = { ...meta, freshUntil: freshUntil(meta), deletableAt: Number.isFinite(meta.deletableAt) ? meta.deletableAt : null };
  const length = record.body.length;
  const inline = length <= inlineLimitFor(chunkSize);
  const chunkCount = inline ? 0 : chunkCountFor(length, chunkSize);
  const payload = {
    k: key,
    s: size,
    m: storedMeta,
    n: length,
    c: chunkCount,
    z: chunkSize,
    i: inline,
  };
  return { kind: KIND_ENTRY, json: Buffer.from(JSON.stringify(payload)), inlineBytes: inline ? length : 0, chunkCount };
}

export function chunkCountFor(length: number, chunkSize: number): number {
  return length === 0 ? 0 : Math.ceil(length / chunkSize);
}

/**
 * The meta value: envelope header (with the body id), the prepared JSON, then the inline body. `body` yields
 * the body's bytes (exactly `prepared.inlineBytes` of them) when it is stored inline.
 */
export function finishRecord(prepared: PreparedRecord, bodyId: number, body?: Iterable<Buffer>): Buffer {
  const jsonEnd = HEADER_BYTES + prepared.json.length;
  const out = Buffer.allocUnsafe(jsonEnd + prepared.inlineBytes);
  out[0] = MAGIC_0;
  out[1] = MAGIC_1;
  out[2] = FORMAT_VERSION;
  out[3] = prepared.kind;
  out.writeDoubleLE(bodyId, BODY_ID_AT);
  out.writeUInt32LE(prepared.json.length, 16);
  prepared.json.copy(out, HEADER_BYTES);
  let at = jsonEnd;
  if (prepared.inlineBytes > 0) {
    for (const part of body ?? []) {
      if (at + part.length > out.length) throw new Error(`body yielded more than ${prepared.inlineBytes} bytes`);
      at += part.copy(out, at);
    }
  }
  if (at !== out.length) throw new Error(`body yielded ${at - jsonEnd} bytes, expected ${prepared.inlineBytes}`);
  out.writeUInt32LE(crc32(out.subarray(CHECKED_FROM)), 4);
  return out;
}

/** Whether a meta value (undecoded) holds an entry rather than a Vary record. */
export function isEntryValue(buf: Uint8Array): boolean {
  return buf.length > 3 && buf[0] === MAGIC_0 && buf[1] === MAGIC_1 && buf[3] === KIND_ENTRY;
}

/** Decodes a meta value; throws CorruptRecordError on anything unexpected. */
export function decodeRecord(buf: Buffer): DecodedRecord {
  if (buf.length < HEADER_BYTES) throw new CorruptRecordError('truncated header');
  if (buf[0] !== MAGIC_0 || buf[1] !== MAGIC_1) throw new CorruptRecordError('bad magic');
  if (buf[2] !== FORMAT_VERSION) throw new CorruptRecordError(`format version ${buf[2]}, expected ${FORMAT_VERSION}`);
  // (lmdb-js's getBinaryFast returns a Buffer whose length property is overridden: use explicit bounds.)
  if (buf.readUInt32LE(4) !== crc32(new Uint8Array(buf.buffer, buf.byteOffset + CHECKED_FROM, buf.length - CHECKED_FROM))) {
    throw new CorruptRecordError('checksum mismatch');
  }
  const bodyId = buf.readDoubleLE(BODY_ID_AT);
  const jsonEnd = HEADER_BYTES + buf.readUInt32LE(16);
  if (jsonEnd > buf.length) throw new CorruptRecordError('truncated JSON');
  let payload: unknown;
  try {
    payload = JSON.parse(buf.toString('utf8', HEADER_BYTES, jsonEnd));
  } catch {
    throw new CorruptRecordError('malformed JSON');
  }
  if (!isObject(payload) || typeof payload.k !== 'string' || !isCount(payload.s)) throw new CorruptRecordError('bad envelope fields');
  const key = payload.k;
  const size = payload.s;
  if (buf[3] === KIND_VARY) {
    const r = payload.r;
    if (!isObject(r) || typeof r.primaryKey !== 'string' || !isStringArray(r.fields) || !isStringArray(r.variants)) {
      throw new CorruptRecordError('bad vary record');
    }
    if (jsonEnd !== buf.length) throw new CorruptRecordError('trailing bytes');
    return { kind: 'vary', key, size, record: { kind: 'vary', primaryKey: r.primaryKey, fields: r.fields, variants: r.variants } };
  }
  if (buf[3] !== KIND_ENTRY) throw new CorruptRecordError(`unknown record kind ${buf[3]}`);
  const { m, n, c, z, i } = payload;
  if (!isCount(n) || !isCount(c) || !isCount(z) || z === 0 || typeof i !== 'boolean' || !isCount(bodyId)) {
    throw new CorruptRecordError('bad body layout');
  }
  if (i ? c !== 0 || n > inlineLimitFor(z) || jsonEnd + n !== buf.length : c !== chunkCountFor(n, z) || jsonEnd !== buf.length) {
    throw new CorruptRecordError('bad body layout');
  }
  const meta = checkMeta(m);
  const body: BodyLayout = { bodyId, length: n, chunkCount: c, chunkSize: z, inlineAt: i ? jsonEnd : -1 };
  return { kind: 'entry', key, size, meta, body };
}

function checkMeta(m: unknown): EntryMeta {
  if (!isObject(m)) throw new CorruptRecordError('bad meta');
  const ok =
    typeof m.key === 'string' &&
    typeof m.primaryKey === 'string' &&
    typeof m.status === 'number' &&
    isObject(m.headers) &&
    Object.values(m.headers).every((v) => typeof v === 'string' || isStringArray(v)) &&
    typeof m.storedAt === 'number' &&
    (m.vary === null || isStringArray(m.vary)) &&
    isStringArray(m.tags) &&
    (m.deletableAt === null || typeof m.deletableAt === 'number') &&
    typeof m.ageBase === 'number' &&
    typeof m.lifetime === 'number' &&
    typeof m.staleWhileRevalidate === 'number' &&
    typeof m.staleIfError === 'number' &&
    typeof m.mustRevalidate === 'boolean' &&
    typeof m.hasValidator === 'boolean' &&
    (m.encodings === undefined || m.encodings === null || isFormsLayout(m.encodings));
  if (!ok) throw new CorruptRecordError('bad meta fields');
  // One literal (newEntryMeta) rather than a spread of the parsed object: every decoded meta then has the hidden
  // class of a filled one (adding a field to a spread copy gives each object a map of its own).
  const meta = m as unknown as EntryMeta;
  return newEntryMeta(meta, { ...meta, deletableAt: m.deletableAt === null ? Infinity : (m.deletableAt as number) }, 'decoded');
}

/** A stored entry's forms layout (entry.ts FormsLayout): the identity length and each form's. */
function isFormsLayout(v: unknown): boolean {
  return isObject(v) && isCount(v.identity) && (v.br === undefined || isCount(v.br)) && (v.gzip === undefined || isCount(v.gzip));
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

export function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
