/**
 * The header fields of a packed entry (packed-entry.ts) without their names: responses of one origin repeat the same
 * field names in the same order (`content-type`, `cache-control`, `etag`, `date`...), so a packed entry keeps the
 * index of its list of names (its shape) and its values alone, about 45 bytes fewer than the same fields as JSON for
 * a typical API response.
 *
 * Each shape gets a function made for it that builds the headers object as one object literal, so that a decoded
 * entry's fields are laid out as compactly as JSON.parse or compactFields lay them out (room for exactly its
 * fields), and faster than JSON.parse reads them. The names come from stored responses; they are written into that
 * function's source only as JSON string literals, and a list with a name that an object literal would not make an
 * own property of (`__proto__`) gets no shape. The shapes are this process's own, bounded in number: when the
 * table is full, or a value is too long, the caller keeps the fields as JSON instead.
 */
import type { StoredHeaders } from '../entry.js';
import { ByteCursor, writeVarint } from './varint.js';

/**
 * Shapes this process makes at most: each costs a compiled function (about a kilobyte or two, outside the memory
 * tier's budget), so an origin that sends ever new field names (a name with a request id in it) must not grow the
 * table without bound. Responses of one origin have a handful of shapes; past this many, fields are kept as JSON.
 */
const MAX_SHAPES = 1024;
/** A value (each one of an array) longer than this is not packed. */
const MAX_VALUE_BYTES = 0xffff;

/** Reads the values in order: the state a shape's builder reads from, set before each call (no closure per read). */
const cursor = new ByteCursor();
const reader = {
  one(): string {
    const length = cursor.varint();
    const start = cursor.at;
    cursor.at = start + length;
    return cursor.bytes.toString('utf8', start, start + length);
  },
  many(): string[] {
    const count = cursor.varint();
    const values: string[] = [];
    for (let i = 0; i < count; i++) values.push(reader.one());
    return values;
  },
};

type Builder = (one: () => string, many: () => string[]) => StoredHeaders;

/** One builder per shape, by index. */
const shapes: Builder[] = [];
/** Shape index by the list of names (each followed by "[]" when its value is an array), one per line. */
const shapeIndex = new Map<string, number>();

/** The shape index of these fields (made if new), or -1 when they get none (the table is full, `__proto__`). */
export function fieldsShape(headers: StoredHeaders): number {
  let key = '';
  for (const name in headers) key += Array.isArray(headers[name]) ? `${name}[]\n` : `${name}\n`;
  const known = shapeIndex.get(key);
  if (known !== undefined) return known;
  if (shapes.length >= MAX_SHAPES) return -1;
  const names = Object.keys(headers);
  if (names.includes('__proto__')) return -1;
  const fields = names.map((name) => `${JSON.stringify(name)}: ${Array.isArray(headers[name]) ? 'many' : 'one'}()`).join(', ');
  // Its source is made of JSON string literals only (see above).
  const build = new Function('one', 'many', `return { ${fields} };`) as Builder;
  shapes.push(build);
  shapeIndex.set(key, shapes.length - 1);
  return shapes.length - 1;
}

/**
 * Writes the fields' shape index (from fieldsShape) and values at `at` in `out`, which has fieldsRoom(headers)
 * bytes from there; returns where they end, or -1 when a value is over 64 KiB (too long to pack).
 */
export function writeFields(shape: number, headers: StoredHeaders, out: Buffer, at: number): number {
  let p = writeVarint(out, at, shape);
  for (const name in headers) {
    const value = headers[name] as string | string[];
    if (typeof value === 'string') {
      p = writeValue(value, out, p);
      if (p === -1) return -1;
      continue;
    }
    if (value.length > 0xffff) return -1;
    p = writeVarint(out, p, value.length);
    for (const one of value) {
      p = writeValue(one, out, p);
      if (p === -1) return -1;
    }
  }
  return p;
}

/** Writes a value's length (a varint) and its UTF-8 bytes. */
function writeValue(value: string, out: Buffer, at: number): number {
  // The length first, in as many bytes as the longest the value may take; the bytes then move back if it took fewer.
  const most = value.length * 3;
  const lengthBytes = varintBytes(most);
  const length = out.write(value, at + lengthBytes, 'utf8');
  if (length > MAX_VALUE_BYTES) return -1;
  const p = writeVarint(out, at, length);
  if (p !== at + lengthBytes) out.copyWithin(p, at + lengthBytes, at + lengthBytes + length);
  return p + length;
}

function varintBytes(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : 3;
}

/** The room writeFields may need for these fields, at most. */
export function fieldsRoom(headers: StoredHeaders): number {
  let room = 3;
  for (const name in headers) {
    const value = headers[name] as string | string[];
    if (typeof value === 'string') room += 3 + value.length * 3;
    else {
      room += 3;
      for (const one of value) room += 3 + one.length * 3;
    }
  }
  return room;
}

/** The fields written by writeFields at `at` in `bytes`. */
export function readFields(bytes: Buffer, at: number): StoredHeaders {
  cursor.bytes = bytes;
  cursor.at = at;
  const build = shapes[cursor.varint()] as Builder;
  const headers = build(reader.one, reader.many);
  cursor.bytes = EMPTY;
  return headers;
}

const EMPTY = Buffer.alloc(0);
