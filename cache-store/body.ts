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

/** Body from the chunks a fill collected: one Buffer when small, the chunks themselves when large. */
export function bodyFromChunks(chunks: Buffer[], length: number): Body {
  if (length <= CONTIGUOUS_LIMIT) return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
  return new ArrayBody(chunks.slice());
}

/** All bytes of a body as Buffers (for writing to another tier). */
export function bodyChunks(body: Body): Iterable<Buffer> {
  return isChunked(body) ? body.chunks(0, body.length) : [body];
}

/**
 * Writes bytes [start, end) of a body and ends the response. A chunked body is written with backpressure: the
 * next chunk is read only once the socket has drained, so a slow client holds at most one chunk in memory.
 */
export function writeBody(res: ServerResponse, body: Body, start = 0, end = body.length): void {
  if (!isChunked(body)) {
    res.end(start === 0 && end === body.length ? body : body.subarray(start, end));
    return;
  }
  const iterator = body.chunks(start, end)[Symbol.iterator]();
  const pump = (): void => {
    try {
      for (;;) {
        const next = iterator.next();
        if (next.done) {
          res.end();
          return;
        }
        if (!res.write(next.value)) {
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
