/**
 * A stored body: one Buffer (small objects: the hit path writes it in one call), or a sequence of chunks read
 * on demand (large objects, and everything the disk tier holds beyond one chunk), so that serving a 100 MB
 * object never needs a 100 MB allocation and a byte range reads only the chunks it covers.
 */
import type { ServerResponse } from 'node:http';

export interface ChunkedBody {
  readonly kind: 'chunked';
  readonly length: number;
  /** The bytes [start, end) as a sequence of Buffers, read lazily. */
  chunks(start: number, end: number): Iterable<Buffer>;
}

export type Body = Buffer | ChunkedBody;

/** Bodies up to this size are kept as one Buffer. */
export const CONTIGUOUS_LIMIT = 1024 * 1024;

export function isChunked(body: Body): body is ChunkedBody {
  return !Buffer.isBuffer(body);
}

/** A chunked body over Buffers already in memory (as received from the origin). */
export class ArrayBody implements ChunkedBody {
  readonly kind = 'chunked';
  readonly length: number;

  constructor(private readonly parts: readonly Buffer[]) {
    this.length = parts.reduce((n, p) => n + p.length, 0);
  }

  *chunks(start: number, end: number): Iterable<Buffer> {
    let offset = 0;
    for (const part of this.parts) {
      const partEnd = offset + part.length;
      if (partEnd > start && offset < end) yield part.subarray(Math.max(0, start - offset), Math.min(part.length, end - offset));
      offset = partEnd;
      if (offset >= end) return;
    }
  }
}

/**
 * Body from the chunks a fill collected: one Buffer when small, the chunks themselves when large. A small body
 * gets memory of its own (see ownedBuffer); a large one keeps the chunks, which are each nearly a whole read.
 */
export function bodyFromChunks(chunks: Buffer[], length: number): Body {
  if (length > CONTIGUOUS_LIMIT) return new ArrayBody(chunks.slice());
  if (chunks.length === 1) return ownedBuffer(chunks[0] as Buffer);
  const out = Buffer.allocUnsafeSlow(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * `bytes` in memory of their own, exactly their size: `bytes` itself when it already is, else a copy. What a
 * tier keeps for long must not be a view into a larger buffer: a body received from the origin is a slice of
 * the socket read that carried it (headers included), a Buffer.from() copy of under 4 KiB a slice of Node's
 * shared 8 KiB pool, a Redis value a slice of the reply. Kept, each pins the whole of that memory — and, scattered
 * through malloc's heap, keeps the heap from shrinking after the short-lived buffers around it are freed.
 */
export function ownedBuffer(bytes: Buffer): Buffer {
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length ? bytes : exactCopy(bytes);
}

/** A copy of `bytes` in memory of its own, exactly their size (unlike Buffer.from, never a slice of the pool). */
export function exactCopy(bytes: Uint8Array): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  copy.set(bytes);
  return copy;
}

/** All bytes of a body as Buffers (for writing to another tier). */
export function bodyChunks(body: Body): Iterable<Buffer> {
  return isChunked(body) ? body.chunks(0, body.length) : [body];
}

/**
 * Writes bytes [start, end) of a body and ends the response. A chunked body is written with backpressure: the
 * next chunk is read only while less than SEQUENCE_QUEUE_BYTES (1 MiB) wait in the socket's buffer, so a slow client
 * holds at most that and one chunk in memory.
 */
export function writeBody(res: ServerResponse, body: Body, start = 0, end = body.length): void {
  if (!isChunked(body)) {
    res.end(start === 0 && end === body.length ? body : body.subarray(start, end));
    return;
  }
  writeSequence(res, body.chunks(start, end));
}

/** Bytes a sequence keeps queued on a response's socket before it waits for 'drain' (a slow client holds this much). */
const SEQUENCE_QUEUE_BYTES = 1024 * 1024;

/**
 * Writes a sequence of Buffers, read lazily, and ends the response: the next one is read only while less than
 * SEQUENCE_QUEUE_BYTES wait in the socket's buffer. A Buffer that cannot be read (the disk tier lost a chunk) aborts the response.
 */
export function writeSequence(res: ServerResponse, sequence: Iterable<Buffer>): void {
  const iterator = sequence[Symbol.iterator]();
  const pump = (): void => {
    try {
      for (;;) {
        const next = iterator.next();
        if (next.done) {
          res.end();
          return;
        }
        // Up to SEQUENCE_QUEUE_BYTES wait in the socket's buffer: the next chunk is read while the kernel sends
        // the previous ones, rather than after the buffer has emptied.
        if (!res.write(next.value) && res.writableLength >= SEQUENCE_QUEUE_BYTES) {
          res.once('drain', pump);
          return;
        }
      }
    } catch {
      // A chunk that cannot be read (the disk tier lost it) leaves the response incomplete: abort it.
      res.destroy();
    }
  };
  res.once('close', () => res.off('drain', pump));
  pump();
}
