/**
 * The memory tier's packed entries (packed-entry.ts), in shared slabs instead of one ArrayBuffer and an object
 * graph each, addressed by a handle: a small integer (slab index × 16384 + offset / 4) that the eviction policy
 * keeps as the key's value, so an entry at rest costs its bytes here and no object of its own.
 *
 * Node keeps a native record for every ArrayBuffer (its backing store, the malloc chunk around it): 200,000 bodies
 * of 100 bytes, each its own Buffer, grew the process by 466 bytes apiece; as views of 64 KiB slabs, by 120
 * (docs/benchmarks.md, "Memory per entry"). Slabs are filled once, front to back, and never written again where a
 * record was placed (but for its length, zeroed when it is freed, and one byte of its header: packed-entry.ts), so a view of a record's body stays valid for as
 * long as someone holds it, whatever the tier does meanwhile. A view keeps its whole slab alive, so the tier tells
 * the slabs when a record leaves it (`free`): a slab that is no longer being filled and holds less than half its
 * size in live records (or fewer live records than gone ones) is compacted, its live records copied into the slab
 * being filled and their owner told their new handles, so the slabs never hold more than about twice the live
 * bytes (plus the slab being filled).
 *
 * A record starts with its length (packed-entry.ts: packedLength, clearPackedLength), which is all the slabs read of it.
 */
import { clearPackedLength, packedLength } from './packed-entry.js';

/** Bytes per slab. */
export const SLAB_BYTES = 64 * 1024;
/** Records start at multiples of this (a handle counts offsets in these units). */
const ALIGN = 4;
const OFFSETS_PER_SLAB = SLAB_BYTES / ALIGN;
/** Handles stay below 2^31, small integers for V8 on 64-bit: 131,072 slabs, 8 GiB of records. */
const MAX_SLABS = 2 ** 31 / OFFSETS_PER_SLAB;

interface Slab {
  readonly index: number;
  readonly bytes: Buffer;
  /** Where the next record goes. */
  filled: number;
  /** Bytes of records still in the tier. */
  live: number;
  /** The keys of the records placed in it (some since gone: `relocate` checks each). */
  readonly keys: string[];
  /** Records placed in it that have left the tier (their keys above are kept alive until it is compacted). */
  gone: number;
}

/** What the slabs need from the tier to move a record. */
export interface RecordOwner {
  /** The handle the tier holds for `key`, or -1 when it holds none (the key left, or is held as objects). */
  handleOf(key: string): number;
  /** A compaction copied the record of `key` to `handle`. */
  moved(key: string, handle: number): void;
}

export class RecordSlabs {
  private current: Slab | undefined;
  /** Slabs by index (a handle's high part); undefined where a slab was let go and its index not yet reused. */
  private readonly slabs: (Slab | undefined)[] = [];
  private readonly freeIndices: number[] = [];
  private liveSlabs = 0;

  constructor(private readonly owner: RecordOwner) {}

  /** The slab bytes a handle's record is in. */
  bytesOf(handle: number): Buffer {
    return (this.slabs[Math.floor(handle / OFFSETS_PER_SLAB)] as Slab).bytes;
  }

  /** Where in bytesOf(handle) the record starts. */
  static offsetOf(handle: number): number {
    return (handle % OFFSETS_PER_SLAB) * ALIGN;
  }

  /**
   * Copies `record` into a slab, stored under `key`; returns its handle, or -1 when every slab index is taken
   * (8 GiB of records: the caller keeps the entry as objects instead).
   */
  place(key: string, record: Uint8Array): number {
    if (record.length > SLAB_BYTES) return -1;
    let slab = this.current;
    while (slab === undefined || slab.filled + record.length > SLAB_BYTES) {
      const full = slab;
      const index = this.freeIndices.pop() ?? this.slabs.length;
      if (index >= MAX_SLABS) return -1;
      const fresh: Slab = { index, bytes: Buffer.allocUnsafeSlow(SLAB_BYTES), filled: 0, live: 0, keys: [], gone: 0 };
      this.slabs[index] = fresh;
      this.liveSlabs++;
      this.current = fresh;
      // After the switch: compacting the full one places its live records (under half a slab) in the new one.
      if (full !== undefined) this.sealed(full);
      slab = this.current;
    }
    const at = slab.filled;
    slab.bytes.set(record, at);
    slab.filled = Math.min(SLAB_BYTES, at + Math.ceil(record.length / ALIGN) * ALIGN);
    slab.live += record.length;
    slab.keys.push(key);
    return slab.index * OFFSETS_PER_SLAB + at / ALIGN;
  }

  /** Whether `view` is a view of one of these slabs (tests: a stored body pins no memory but the tier's). */
  holds(view: Uint8Array): boolean {
    return this.slabs.some((slab) => slab !== undefined && slab.bytes.buffer === view.buffer);
  }

  /** A record placed here has left the tier (evicted, deleted or replaced). Freeing it twice is a no-op. */
  free(handle: number): void {
    const slab = this.slabs[Math.floor(handle / OFFSETS_PER_SLAB)];
    if (slab === undefined) return;
    const at = RecordSlabs.offsetOf(handle);
    const length = packedLength(slab.bytes, at);
    if (length === 0) return;
    // Its length zeroed: not moved by a compaction from now on, and not freed again (the bytes after it, which a
    // view may still read, are left as they are).
    clearPackedLength(slab.bytes, at);
    slab.live -= length;
    slab.gone++;
    if (slab !== this.current) this.sealed(slab);
  }

  /** Bytes of the slabs alive (filled or not) and of live records in them. */
  stats(): { slabs: number; bytes: number; live: number } {
    let live = 0;
    for (const slab of this.slabs) if (slab !== undefined) live += slab.live;
    return { slabs: this.liveSlabs, bytes: this.liveSlabs * SLAB_BYTES, live };
  }

  clear(): void {
    this.slabs.length = 0;
    this.freeIndices.length = 0;
    this.liveSlabs = 0;
    this.current = undefined;
  }

  /**
   * A slab no longer filled: let it go when empty, compact it when under half its bytes are live records, or when
   * most of the records placed in it have gone (their keys would otherwise stay alive with it).
   */
  private sealed(slab: Slab): void {
    if (slab.live <= 0) this.release(slab);
    else if (slab.live < SLAB_BYTES / 2 || 2 * slab.gone > slab.keys.length) this.relocate(slab);
  }

  private release(slab: Slab): void {
    if (this.slabs[slab.index] !== slab) return;
    this.slabs[slab.index] = undefined;
    this.freeIndices.push(slab.index);
    this.liveSlabs--;
  }

  /**
   * Copies the live records of `slab` into the slab being filled and tells the owner where each went; the old
   * slab's memory is freed once no view of it is in use (a view already handed out keeps its bytes, which nothing
   * overwrites). Its index is let go only after every record left it, so no handle of a new slab is mistaken for
   * one of its own meanwhile.
   */
  private relocate(slab: Slab): void {
    const first = slab.index * OFFSETS_PER_SLAB;
    for (const key of slab.keys) {
      const handle = this.owner.handleOf(key);
      if (handle < first || handle >= first + OFFSETS_PER_SLAB) continue;
      const at = RecordSlabs.offsetOf(handle);
      const length = packedLength(slab.bytes, at);
      if (length === 0) continue;
      const moved = this.place(key, slab.bytes.subarray(at, at + length));
      // No slab index left for the copy: it stays where it is, and so does the slab.
      if (moved === -1) continue;
      clearPackedLength(slab.bytes, at);
      slab.live -= length;
      this.owner.moved(key, moved);
    }
    if (slab.live <= 0) this.release(slab);
  }
}
