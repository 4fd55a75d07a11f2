/**
 * Small bodies of the memory tier, packed into shared slabs instead of one ArrayBuffer each.
 *
 * Node keeps a native record for every ArrayBuffer (its backing store, the malloc chunk around it): 200,000 bodies
 * of 100 bytes, each its own Buffer, grew the process by 466 bytes apiece; as views of 64 KiB slabs, by 120
 * (docs/benchmarks.md, "Memory per entry"). A view keeps its whole slab alive, so the tier tells the slabs when a
 * body leaves it (`free`): a slab that is no longer being filled and holds less than half its size in live bodies
 * (or fewer live bodies than gone ones) is compacted, its live bodies copied into the slab being filled, so the
 * slabs never hold more than about twice the live bytes (plus the slab being filled). Bodies larger than
 * SLAB_BODY_LIMIT keep memory of their own.
 */

/** Bodies up to this many bytes go into slabs. */
export const SLAB_BODY_LIMIT = 2048;
/** Bytes per slab. */
export const SLAB_BYTES = 64 * 1024;

interface Slab {
  readonly bytes: Buffer;
  /** Where the next body goes. */
  filled: number;
  /** Bytes of bodies still in the tier. */
  live: number;
  /** The keys of the bodies placed in it (some since gone: `relocate` checks each). */
  readonly keys: string[];
  /** Bodies placed in it that have left the tier (their keys above are kept alive until it is compacted). */
  gone: number;
}

/** What the slabs need from the tier to move a body: the stored body of a key, and a way to replace it. */
export interface SlabOwner {
  /** The body the tier holds for `key` (undefined when none, or not a Buffer). */
  bodyOf(key: string): Buffer | undefined;
  /** Replaces the body the tier holds for `key` with `body` (the same bytes, elsewhere). */
  moveBody(key: string, body: Buffer): void;
}

export class BodySlabs {
  private current: Slab | undefined;
  /** Every slab with live bodies, by its memory. */
  private readonly slabs = new Map<ArrayBufferLike, Slab>();

  constructor(private readonly owner: SlabOwner) {}

  /** Whether a body of this size goes into a slab. */
  static fits(length: number): boolean {
    return length > 0 && length <= SLAB_BODY_LIMIT;
  }

  /** A copy of `body` in a slab, stored under `key` (the caller checked `fits`). */
  place(key: string, body: Uint8Array): Buffer {
    let slab = this.current;
    while (slab === undefined || slab.filled + body.length > SLAB_BYTES) {
      const full = slab;
      this.current = { bytes: Buffer.allocUnsafeSlow(SLAB_BYTES), filled: 0, live: 0, keys: [], gone: 0 };
      this.slabs.set(this.current.bytes.buffer, this.current);
      // After the switch: compacting the full one places its live bodies (under half a slab) in the new one.
      if (full !== undefined) this.sealed(full);
      slab = this.current;
    }
    const view = slab.bytes.subarray(slab.filled, slab.filled + body.length);
    view.set(body);
    slab.filled += body.length;
    slab.live += body.length;
    slab.keys.push(key);
    return view;
  }

  /** Whether `body` is a view of one of these slabs. */
  holds(body: Uint8Array): boolean {
    return this.slabs.has(body.buffer);
  }

  /** A body placed here has left the tier (evicted, deleted or replaced). Anything else is ignored. */
  free(body: Uint8Array): void {
    const slab = this.slabs.get(body.buffer);
    if (slab === undefined) return;
    slab.live -= body.length;
    slab.gone++;
    if (slab !== this.current) this.sealed(slab);
  }

  /** Bytes of the slabs alive (filled or not) and of live bodies in them. */
  stats(): { slabs: number; bytes: number; live: number } {
    let live = 0;
    for (const slab of this.slabs.values()) live += slab.live;
    return { slabs: this.slabs.size, bytes: this.slabs.size * SLAB_BYTES, live };
  }

  clear(): void {
    this.slabs.clear();
    this.current = undefined;
  }

  /**
   * A slab no longer filled: let it go when empty, compact it when under half its bytes are live bodies, or when
   * most of the bodies placed in it have gone (their keys would otherwise stay alive with it).
   */
  private sealed(slab: Slab): void {
    if (slab.live <= 0) this.slabs.delete(slab.bytes.buffer);
    else if (slab.live < SLAB_BYTES / 2 || 2 * slab.gone > slab.keys.length) this.relocate(slab);
  }

  /** Copies the live bodies of `slab` into the slab being filled; the old one is freed once no view is in use. */
  private relocate(slab: Slab): void {
    this.slabs.delete(slab.bytes.buffer);
    for (const key of slab.keys) {
      const body = this.owner.bodyOf(key);
      if (body === undefined || body.buffer !== slab.bytes.buffer) continue;
      this.owner.moveBody(key, this.place(key, body));
    }
  }
}
