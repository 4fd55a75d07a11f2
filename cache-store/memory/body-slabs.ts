/**
 * Small bodies of the memory tier, packed into shared slabs instead of one ArrayBuffer each.
 *
 * Node keeps a native record for every ArrayBuffer (its backing store, the malloc chunk around it): 200,000 bodies
 * of 100 bytes, each its own Buffer, grew the process by 466 bytes apiece; as views of 64 KiB slabs, by 120
 * (docs/benchmarks.md, "Memory per entry"). A record whose body is in a slab keeps only where it is (the slab and a
 * small integer for offset and length); the Buffer view over those bytes, about 96 bytes of heap, is made when the
 * body is first read (`slabBody`) and kept from then on, so an entry never read since it was stored costs no view.
 * A view keeps its whole slab alive, so the tier tells the slabs when a body leaves it (`free`): a slab that is no
 * longer being filled and holds less than half its size in live bodies (or fewer live bodies than gone ones) is
 * compacted, its live bodies copied into the slab being filled, so the slabs never hold more than about twice the
 * live bytes (plus the slab being filled). Bodies larger than SLAB_BODY_LIMIT keep memory of their own.
 */

/** Bodies up to this many bytes go into slabs. */
export const SLAB_BODY_LIMIT = 2048;
/** Bytes per slab. */
export const SLAB_BYTES = 64 * 1024;
/** `span` = offset × SPAN_SCALE + length: both fit one small integer (offset < 2^16, length ≤ 2^11). */
const SPAN_SCALE = 4096;
/** The span of a record whose body has left the slabs. */
const FREED = -1;

/** A record whose body the slabs hold: where the bytes are, and the view over them once one was asked for. */
export interface SlabResident {
  /** The slab's bytes. */
  slab: Buffer;
  /** Offset × SPAN_SCALE + length. */
  span: number;
  /** The view over the bytes, made by the first `slabBody`; undefined until then (and after a move). */
  body: Buffer | undefined;
}

/** The body of a record in a slab: a view of its bytes, made once (the record keeps it). */
export function slabBody(resident: SlabResident): Buffer {
  let view = resident.body;
  if (view === undefined) {
    const offset = Math.floor(resident.span / SPAN_SCALE);
    view = resident.slab.subarray(offset, offset + (resident.span % SPAN_SCALE));
    resident.body = view;
  }
  return view;
}

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

/** What the slabs need from the tier to move a body: the record it holds for a key. */
export interface SlabOwner {
  /** The record the tier holds for `key` when its body is in a slab (undefined otherwise). */
  residentOf(key: string): SlabResident | undefined;
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

  /** Copies `body` into a slab, stored under `key`, and points `into` at it (the caller checked `fits`). */
  place(key: string, body: Uint8Array, into: SlabResident): void {
    let slab = this.current;
    while (slab === undefined || slab.filled + body.length > SLAB_BYTES) {
      const full = slab;
      this.current = { bytes: Buffer.allocUnsafeSlow(SLAB_BYTES), filled: 0, live: 0, keys: [], gone: 0 };
      this.slabs.set(this.current.bytes.buffer, this.current);
      // After the switch: compacting the full one places its live bodies (under half a slab) in the new one.
      if (full !== undefined) this.sealed(full);
      slab = this.current;
    }
    slab.bytes.set(body, slab.filled);
    into.slab = slab.bytes;
    into.span = slab.filled * SPAN_SCALE + body.length;
    // A record moved by a compaction whose view was made gets one of its new place: whoever holds the record reads
    // the same bytes there (a view read before keeps the old slab's, which nothing overwrites).
    if (into.body !== undefined) into.body = slab.bytes.subarray(slab.filled, slab.filled + body.length);
    slab.filled += body.length;
    slab.live += body.length;
    slab.keys.push(key);
  }

  /** Whether `body` is a view of one of these slabs. */
  holds(body: Uint8Array): boolean {
    return this.slabs.has(body.buffer);
  }

  /** A body placed here has left the tier (evicted, deleted or replaced). One already compacted away is ignored. */
  free(resident: SlabResident): void {
    const slab = this.slabs.get(resident.slab.buffer);
    if (slab === undefined || resident.span === FREED) return;
    slab.live -= resident.span % SPAN_SCALE;
    slab.gone++;
    // Not moved by a compaction from now on, even while the tier still holds it (a replaced record, until the
    // policy takes its successor): its bytes would be counted live again and never freed.
    resident.span = FREED;
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

  /**
   * Copies the live bodies of `slab` into the slab being filled; the old one is freed once no view is in use (a
   * view already handed out keeps its bytes, which nothing overwrites).
   */
  private relocate(slab: Slab): void {
    this.slabs.delete(slab.bytes.buffer);
    for (const key of slab.keys) {
      const resident = this.owner.residentOf(key);
      if (resident === undefined || resident.slab !== slab.bytes || resident.span === FREED) continue;
      const offset = Math.floor(resident.span / SPAN_SCALE);
      this.place(key, slab.bytes.subarray(offset, offset + (resident.span % SPAN_SCALE)), resident);
    }
  }
}
