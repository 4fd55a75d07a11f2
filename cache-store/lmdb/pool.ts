/**
 * Reusable body buffers for disk-tier hits served by the hit path (`LmdbTier.lease`).
 *
 * Why: a disk hit must hand out a private copy of the body (LMDB's memory is reused once the read transaction
 * ends). A fresh Buffer per hit is external memory, and V8 counts external memory allocated since the last full
 * GC against the old generation's limit: at a few hundred MB/s of 16 KiB copies it ran a mark-compact every
 * ~100 ms, which cost ~10 % of the CPU and stalled the event loop 5-20 ms each time. Copies into buffers
 * that are handed back and reused allocate nothing in the steady state.
 *
 * The contract: a leased body is private to its holder until the holder calls `release` — only once nothing
 * reads it any more (for a response: on 'finish', when the socket has taken every byte), and must never store
 * it (a tier it is promoted into gets a copy). A leased body that is never released (an aborted response, a
 * hit the hit path declines) is simply garbage collected. `release` ignores anything it did not lease, and a
 * second release of the same buffer.
 */

/** Smallest buffer handed out (smaller bodies get one of this size, viewed to their length). */
const MIN_CAPACITY = 1024;
/** Bodies larger than this are plain copies: few hits, and a large free list would hold memory for nothing. */
export const MAX_LEASED_BYTES = 256 * 1024;
/** Free buffers kept, in bytes, across all sizes. */
const MAX_FREE_BYTES = 8 * 1024 * 1024;

export class BodyPool {
  /** Free ArrayBuffers by capacity class (log2 of the capacity). */
  private readonly free: ArrayBuffer[][] = [];
  private freeBytes = 0;
  /** ArrayBuffers handed out and not yet released. Weak: an unreleased lease is collected with its body. */
  private readonly leased = new WeakSet<ArrayBuffer>();

  /**
   * A Buffer holding `length` bytes of `source` from `offset`: leased (see release) when `length` is at most
   * MAX_LEASED_BYTES, else a plain copy. `source` may be a view that the next LMDB call overwrites: it is copied
   * at once.
   */
  copy(source: Uint8Array, offset: number, length: number): Buffer {
    const from = new Uint8Array(source.buffer, source.byteOffset + offset, length);
    if (length > MAX_LEASED_BYTES || length === 0) {
      const out = Buffer.allocUnsafeSlow(length);
      out.set(from);
      return out;
    }
    const cls = length <= MIN_CAPACITY ? 10 : 32 - Math.clz32(length - 1);
    const list = this.free[cls];
    let memory = list?.pop();
    if (memory === undefined) {
      memory = new ArrayBuffer(1 << cls);
    } else {
      this.freeBytes -= memory.byteLength;
    }
    this.leased.add(memory);
    const out = Buffer.from(memory, 0, length);
    out.set(from);
    return out;
  }

  /** Whether `body` is a lease not yet released. */
  isLeased(body: Uint8Array): boolean {
    return body.byteOffset === 0 && this.leased.has(body.buffer as ArrayBuffer);
  }

  /** Hands a leased body back for reuse: its holder must not read it any more. Anything else is ignored. */
  release(body: Uint8Array): void {
    const memory = body.buffer as ArrayBuffer;
    if (body.byteOffset !== 0 || !this.leased.delete(memory)) return;
    if (this.freeBytes + memory.byteLength > MAX_FREE_BYTES) return;
    const cls = 31 - Math.clz32(memory.byteLength);
    (this.free[cls] ??= []).push(memory);
    this.freeBytes += memory.byteLength;
  }

  /** Forgets the free buffers. */
  clear(): void {
    this.free.length = 0;
    this.freeBytes = 0;
  }
}
