/**
 * A body stored in the disk tier, read chunk by chunk on demand. Each chunk is copied out of the memory map
 * (getBinary), so a later write to the environment can never change bytes a reader already holds, and a byte
 * range reads only the chunks it covers. A chunk that is gone (the entry was evicted or replaced after `get`,
 * possibly by another process) ends the iteration with an error; writeBody then aborts the response.
 */
import type { Database } from 'lmdb';
import type { ChunkedBody } from '../body.js';

export class MissingChunkError extends Error {
  constructor(readonly bodyId: number, readonly chunk: number) {
    super(`disk tier: chunk ${chunk} of body ${bodyId} is missing`);
    this.name = 'MissingChunkError';
  }
}

export class LmdbBody implements ChunkedBody {
  readonly kind = 'chunked';

  constructor(
    private readonly bodies: Database<Buffer, [number, number]>,
    readonly bodyId: number,
    readonly length: number,
    readonly chunkSize: number,
    /** Called when a chunk is missing, before the error is thrown (the tier decides whether it is corrupt). */
    private readonly onMissing: (bodyId: number, chunk: number) => void,
  ) {}

  /** Whether this body is stored in `bodies` (the database of a given tier). */
  isIn(bodies: Database<Buffer, [number, number]>): boolean {
    return this.bodies === bodies;
  }

  /** Number of chunks the body is stored in. */
  get chunkCount(): number {
    return Math.ceil(this.length / this.chunkSize);
  }

  /** Chunk `index`, a private copy. Throws MissingChunkError if it is not stored (or has the wrong size). */
  readChunk(index: number): Buffer {
    const expected = Math.min(this.chunkSize, this.length - index * this.chunkSize);
    const chunk = this.bodies.getBinary([this.bodyId, index]);
    if (chunk === undefined || chunk.length !== expected) {
      this.onMissing(this.bodyId, index);
      throw new MissingChunkError(this.bodyId, index);
    }
    return chunk;
  }

  *chunks(start: number, end: number): Iterable<Buffer> {
    start = Math.max(0, start);
    end = Math.min(this.length, end);
    if (start >= end) return;
    const first = Math.floor(start / this.chunkSize);
    const last = Math.floor((end - 1) / this.chunkSize);
    for (let i = first; i <= last; i++) {
      const chunk = this.readChunk(i);
      const offset = i * this.chunkSize;
      const from = Math.max(0, start - offset);
      const to = Math.min(chunk.length, end - offset);
      yield from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to);
    }
  }
}
