/**
 * The in-memory tier: records kept by an eviction policy (policies/eviction), which decides what stays within the
 * byte budget and holds each resident record, so one Map indexes both. Small entries are kept packed, as bytes in
 * shared slabs (packed-entry.ts, record-slabs.ts), and decoded when they are hit; a bounded set of them stays
 * decoded (decoded-entries.ts), the hot ones. `get` is synchronous so the hit path can call it directly: one
 * lookup, the policy records the access in O(1), and an entry already decoded (or kept as objects) is handed out
 * as it is, with no allocation.
 */
import { createEvictionPolicy, type EvictionPolicy, type EvictionPolicyName } from '../../policies/eviction/index.js';
import { recordSize, type CacheRecord } from '../entry.js';
import { DecodedEntries, DecodedEntry } from './decoded-entries.js';
import { decodedMark, decodeEntry, encodeEntry, packedTags, packedViews, setDecodedMark } from './packed-entry.js';
import { RecordSlabs } from './record-slabs.js';
import { TagIndex } from './tag-index.js';
import type { SyncCacheTier, TierStats } from '../tier.js';

/**
 * What a record kept as objects costs in process memory beyond what recordSize() charges (its body, header text,
 * key and a fixed 256 bytes): the JavaScript objects that hold it (metadata, headers object, the string objects of
 * every header value, the body's Buffer, the eviction-policy node and its Map slot). Such are the entries with a
 * large body and Vary records; small entries are packed (below). Measured beyond body and header text for a 100-byte
 * response kept as objects: about 460 bytes while it was never read, about 900 once served (the hit path's
 * prepared fields on its metadata), so that --memory-max bounds the memory the tier really holds.
 */
const MEMORY_ENTRY_OVERHEAD = 640;

/**
 * What a packed entry (packed-entry.ts, record-slabs.ts) costs beyond its packed bytes and its key's characters:
 * the key string's header and the policy's Map slot, the policy's node, the frequency sketch's share, the slab's
 * note of its key, and the slabs' room not yet reclaimed by compaction (measured: docs/benchmarks.md
 * "Packed small entries").
 */
const PACKED_ENTRY_OVERHEAD = 240;

/**
 * What a packed entry costs while it is decoded, beyond its packed form: the entry and metadata objects, the
 * headers object and its unshared values, the body's view, and once hit, the hit path's prepared head (measured as
 * above). The tier keeps a share of its budget for decoded entries (DECODED_SHARE) and lets more be decoded while
 * the budget has room.
 */
const DECODED_ENTRY_COST = 1024;

/** The share of --memory-max kept for decoded entries even when the packed ones fill the rest. */
const DECODED_SHARE = 1 / 16;

/** The value a key's policy entry holds between its record's release and its replacement (see set). */
const RELEASED = Symbol('released');

/**
 * The bytes a record is charged in the memory tier's budget: packed, its packed length, key and
 * PACKED_ENTRY_OVERHEAD; kept as objects, its recordSize and MEMORY_ENTRY_OVERHEAD.
 */
export function memoryRecordSize(record: CacheRecord): number {
  if (record.kind !== 'entry') return objectCharge(record);
  const packed = encodeEntry(record.meta.key, record);
  return packed === undefined ? objectCharge(record) : packedCharge(record.meta.key, packed.length);
}

function objectCharge(record: CacheRecord): number {
  return recordSize(record) + MEMORY_ENTRY_OVERHEAD;
}

function packedCharge(key: string, packedLength: number): number {
  return packedLength + key.length + PACKED_ENTRY_OVERHEAD;
}

/** What the policy holds for a key: a packed entry's handle, the same decoded, or a record kept as objects. */
type Held = number | DecodedEntry | CacheRecord | typeof RELEASED;

export interface MemoryTierOptions {
  maxBytes: number;
  /** Eviction policy (--eviction). */
  policy: EvictionPolicyName;
  now?: () => number;
  /** Called when a record leaves because of the budget (evicted, or not admitted), e.g. to spill it to disk. */
  onEvict?: (key: string, record: CacheRecord) => void;
}

export class MemoryTier implements SyncCacheTier {
  readonly name = 'memory';
  readonly synchronous = true;
  private readonly policy: EvictionPolicy;
  private readonly tags = new TagIndex();
  /** Reused for every offer: the policy reports the keys that must leave here, and their records. */
  private readonly evicted: string[] = [];
  private readonly evictedRecords: unknown[] = [];
  private evictions = 0;
  private rejections = 0;
  /** Small entries, packed (see packed-entry.ts). */
  private readonly slabs: RecordSlabs;
  /** The packed entries held decoded (see decoded-entries.ts). */
  private readonly decoded: DecodedEntries;
  /** Decoded entries allowed whatever the packed ones take (DECODED_SHARE of the budget). */
  private readonly minDecoded: number;

  constructor(private readonly options: MemoryTierOptions) {
    const reserve = Math.floor(options.maxBytes * DECODED_SHARE);
    this.minDecoded = Math.max(1, Math.floor(reserve / DECODED_ENTRY_COST));
    this.policy = createEvictionPolicy(options.policy, { maxBytes: options.maxBytes - reserve, ...(options.now && { now: options.now }) });
    this.slabs = new RecordSlabs({
      handleOf: (key) => {
        const held = this.policy.peek(key) as Held | undefined;
        return typeof held === 'number' ? held : held instanceof DecodedEntry ? held.handle : -1;
      },
      moved: (key, handle) => {
        const held = this.policy.peek(key) as Held | undefined;
        if (typeof held === 'number') this.policy.replaceValue(key, handle);
        else if (held instanceof DecodedEntry) {
          // Its views follow the bytes, so that the old slab is freed (one read before keeps its own bytes).
          const moved = packedViews(this.slabs.bytesOf(handle), RecordSlabs.offsetOf(handle));
          held.handle = handle;
          held.body = moved.body;
          held.forms = moved.forms;
        }
      },
    });
    this.decoded = new DecodedEntries((entry) => {
      this.policy.replaceValue(entry.key, entry.handle);
      entry.handle = -1;
    });
  }

  get(key: string): CacheRecord | undefined {
    const held = this.policy.get(key) as Held | undefined;
    if (held === undefined) return undefined;
    if (typeof held === 'number') return this.decode(key, held);
    if (held instanceof DecodedEntry) held.hit = true;
    return held as CacheRecord;
  }

  /**
   * Stores a record if the policy admits it; false when it does not fit or is not admitted. A small entry is
   * packed into the tier's slabs (the given record is left as it was); another is kept as given.
   */
  set(key: string, given: CacheRecord): boolean {
    const expiresAt = given.kind === 'entry' ? given.meta.deletableAt : Infinity;
    // Checked before anything changes (the policy would refuse it half-way through).
    if (Number.isNaN(expiresAt)) throw new RangeError(`deletableAt must be a number, got NaN for ${key}`);
    const previous = this.policy.peek(key) as Held | undefined;
    if (previous !== undefined) {
      this.release(key, previous);
      // Until the offer replaces it: nothing to move or free (a compaction while this record is placed asks).
      this.policy.replaceValue(key, RELEASED);
    }
    let held: Held = given;
    let size = 0;
    const packed = given.kind === 'entry' ? encodeEntry(key, given) : undefined;
    if (packed !== undefined) {
      const handle = this.slabs.place(key, packed);
      if (handle !== -1) {
        held = handle;
        size = packedCharge(key, packed.length);
      }
    }
    if (held === given) size = objectCharge(given);
    this.tags.add(key, given);
    const { evicted, evictedRecords } = this;
    const resident = this.policy.offer(key, size, expiresAt, evicted, held, evictedRecords);
    if (!resident) this.rejections++;
    for (let i = 0; i < evicted.length; i++) {
      const gone = evicted[i] as string;
      const goneHeld = evictedRecords[i] as Held;
      // The record this one replaced (expired during the offer): already released.
      if (goneHeld === RELEASED) continue;
      this.drop(gone, goneHeld, gone === key && !resident);
    }
    evicted.length = 0;
    evictedRecords.length = 0;
    return resident;
  }

  /**
   * Whether the policy would admit a record of this size (its recordSize) now, to decide on promoting a disk
   * hit.
   */
  wouldAdmit(key: string, size: number): boolean {
    return this.policy.wouldAdmit(key, size + MEMORY_ENTRY_OVERHEAD);
  }

  delete(key: string): void {
    const held = this.policy.remove(key) as Held | undefined;
    if (held !== undefined) this.release(key, held);
  }

  /** Whether `body` lives in this tier's slabs (tests: a stored body pins no memory but the tier's). */
  holdsInSlab(body: Uint8Array): boolean {
    return this.slabs.holds(body);
  }

  keys(prefix: string): string[] {
    const out: string[] = [];
    for (const key of this.policy.residentKeys()) if (key.startsWith(prefix)) out.push(key);
    return out;
  }

  keysForTag(tag: string): string[] {
    return this.tags.keys(tag);
  }

  clear(): void {
    for (const key of this.policy.residentKeys()) {
      const held = this.policy.peek(key);
      if (held instanceof DecodedEntry) held.handle = -1;
    }
    this.tags.clear();
    this.decoded.clear();
    this.slabs.clear();
    this.policy.clear();
  }

  stats(): TierStats {
    const slabs = this.slabs.stats();
    return {
      name: this.name,
      policy: this.policy.name,
      entries: this.policy.count,
      bytes: this.policy.bytes,
      maxBytes: this.options.maxBytes,
      evictions: this.evictions,
      rejections: this.rejections,
      slabBytes: slabs.bytes,
      slabLiveBytes: slabs.live,
      decodedEntries: this.decoded.size,
      decodedBytes: this.decoded.size * DECODED_ENTRY_COST,
    };
  }

  close(): void {
    this.clear();
  }

  /**
   * A packed entry being hit: decoded, and held decoded by the policy until the clock lets it go, unless the
   * decoded set is full and the entry was not decoded recently (see decoded-entries.ts).
   */
  private decode(key: string, handle: number): DecodedEntry {
    const bytes = this.slabs.bytesOf(handle);
    const at = RecordSlabs.offsetOf(handle);
    const { meta, body, forms } = decodeEntry(key, bytes, at);
    const limit = Math.max(this.minDecoded, Math.floor((this.options.maxBytes - this.policy.bytes) / DECODED_ENTRY_COST));
    const mark = this.decoded.keeps(decodedMark(bytes, at), limit);
    if (mark !== 0) {
      setDecodedMark(bytes, at, mark);
      // Not the tier's: handed out for this hit only.
      return new DecodedEntry(key, meta, body, forms, -1);
    }
    const entry = new DecodedEntry(key, meta, body, forms, handle);
    this.policy.replaceValue(key, entry);
    this.decoded.add(entry, limit);
    return entry;
  }

  /** The record a policy value stands for, made when it is packed. */
  private record(key: string, held: Exclude<Held, typeof RELEASED>): CacheRecord {
    if (typeof held !== 'number') return held;
    const { meta, body, forms } = decodeEntry(key, this.slabs.bytesOf(held), RecordSlabs.offsetOf(held));
    return forms === undefined ? { kind: 'entry', meta, body } : { kind: 'entry', meta, body, forms };
  }

  /** A key's record has left the policy (or is about to be replaced): its tags and packed bytes go. */
  private release(key: string, held: Held): void {
    if (held === RELEASED) return;
    if (typeof held === 'number') {
      const bytes = this.slabs.bytesOf(held);
      const tags = packedTags(bytes, RecordSlabs.offsetOf(held));
      if (tags.length > 0) this.tags.remove(key, { kind: 'entry', meta: { tags } });
      this.slabs.free(held);
      return;
    }
    this.tags.remove(key, held);
    if (held instanceof DecodedEntry) {
      this.slabs.free(held.handle);
      held.handle = -1;
      this.decoded.remove(held);
    }
  }

  /** A key the policy let go: forget it here and hand it to onEvict (e.g. the disk tier in spill mode). */
  private drop(key: string, held: Exclude<Held, typeof RELEASED>, rejected: boolean): void {
    // Decoded before the slab lets the bytes go (onEvict may keep them, e.g. spill them to disk; slabs are never
    // overwritten, so its views stay valid).
    const gone = this.options.onEvict === undefined ? undefined : this.record(key, held);
    this.release(key, held);
    if (!rejected) this.evictions++;
    if (gone !== undefined) this.options.onEvict?.(key, gone);
  }
}
