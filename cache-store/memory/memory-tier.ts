/**
 * The in-memory tier: records kept by an eviction policy (policies/eviction), which decides what stays within the
 * byte budget and holds each resident record, so one Map indexes both. `get` is synchronous and allocation-free
 * so the hit path can call it directly: one lookup, and the policy records the access in O(1).
 */
import { createEvictionPolicy, type EvictionPolicy, type EvictionPolicyName } from '../../policies/eviction/index.js';
import { recordSize, type CacheRecord, type EncodedForms, type EntryMeta } from '../entry.js';
import { BodySlabs, slabBody, type SlabResident } from './body-slabs.js';
import { TagIndex } from './tag-index.js';
import type { SyncCacheTier, TierStats } from '../tier.js';

/**
 * What a record costs in process memory beyond what recordSize() charges (its body, header text, key and a
 * fixed 256 bytes): the JavaScript objects that hold it (metadata, headers object, the string objects of every
 * header value, the body's Buffer, the eviction-policy node and its Map slot; a small body shares a slab's
 * ArrayBuffer, see body-slabs.ts, whose slabs may hold up to about twice the live small bodies). No cache-policy
 * object is kept per entry (Freshness.storedPolicy makes one for a revalidation). Measured beyond body and header
 * text for a 100-byte response: about 460 bytes while it was never read since it was stored, about 900 once served
 * (its body's view made, see body-slabs.ts, and the hit path's prepared fields on its metadata)
 * (`npm run bench:entry-memory -- --read-once`, test/proxy/memory-bounds.test.ts). With recordSize's fixed 256 and
 * the header text, the charge is about what such an entry holds once served (1,172 bytes charged, 1,139 held; the
 * test's 1 KiB entries are charged at least three quarters of it), so that --memory-max bounds the memory the
 * tier really holds, also with many small entries (docs/reliability.md "Memory" says what RSS to expect per budget).
 */
const MEMORY_ENTRY_OVERHEAD = 640;

/** The bytes a record is charged in the memory tier's budget. */
export function memoryRecordSize(record: CacheRecord): number {
  return recordSize(record) + MEMORY_ENTRY_OVERHEAD;
}

/**
 * An entry as the tier keeps it when its body is in a slab: `body` is made from `slab` and `span` when the record
 * is first read (see body-slabs.ts), so an entry never read since it was stored holds no Buffer view. It leaves the
 * tier only through `get` and `onEvict`, with its body made. A class, so that a spread copy of one handed out
 * (a plain object with the same fields) is never taken for a record whose bytes the slabs hold.
 */
class SlabEntry implements SlabResident {
  readonly kind = 'entry';
  body: Buffer | undefined = undefined;
  slab: Buffer;
  span = 0;

  constructor(
    readonly meta: EntryMeta,
    readonly forms: EncodedForms | undefined,
    /** The body to copy into a slab (BodySlabs.place points the record at its copy). */
    given: Buffer,
  ) {
    this.slab = given;
  }
}

/** A record the tier holds: as given (a large body, a Vary record), or with its body in a slab. */
type HeldRecord = CacheRecord | SlabEntry;

/** Whether the record's body is a slab's (and may not have its view yet). */
function inSlab(record: HeldRecord): record is SlabEntry {
  return record instanceof SlabEntry;
}

/** The record as handed out: with its body's view made. */
function readable(record: HeldRecord): CacheRecord {
  if (record.kind === 'entry' && record.body === undefined) slabBody(record as SlabEntry);
  return record as CacheRecord;
}

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
  /** Small bodies, packed (see body-slabs.ts). */
  private readonly slabs: BodySlabs;

  constructor(private readonly options: MemoryTierOptions) {
    this.policy = createEvictionPolicy(options.policy, { maxBytes: options.maxBytes, ...(options.now && { now: options.now }) });
    this.slabs = new BodySlabs({
      residentOf: (key) => {
        const record = this.policy.peek(key) as HeldRecord | undefined;
        return record !== undefined && inSlab(record) ? record : undefined;
      },
    });
  }

  get(key: string): CacheRecord | undefined {
    const record = this.policy.get(key) as HeldRecord | undefined;
    return record === undefined ? undefined : readable(record);
  }

  /**
   * Stores a record if the policy admits it; false when it does not fit or is not admitted. A small body is
   * copied into the tier's slabs: what the tier holds is then a record of its own, with the same metadata.
   */
  set(key: string, given: CacheRecord): boolean {
    const record = this.packed(key, given);
    const previous = this.policy.peek(key) as HeldRecord | undefined;
    if (previous !== undefined) {
      this.tags.remove(key, previous);
      this.freeBody(previous);
    }
    this.tags.add(key, record);
    const expiresAt = record.kind === 'entry' ? record.meta.deletableAt : Infinity;
    const { evicted, evictedRecords } = this;
    const resident = this.policy.offer(key, memoryRecordSize(given), expiresAt, evicted, record, evictedRecords);
    if (!resident) this.rejections++;
    for (let i = 0; i < evicted.length; i++) {
      const gone = evicted[i] as string;
      const goneRecord = evictedRecords[i] as HeldRecord;
      // The record this one replaced (expired during the offer): its tags are already gone.
      if (gone === key && goneRecord !== record) continue;
      this.drop(gone, goneRecord, gone === key && !resident);
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
    const record = this.policy.remove(key) as HeldRecord | undefined;
    if (record === undefined) return;
    this.tags.remove(key, record);
    this.freeBody(record);
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
    this.tags.clear();
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
    };
  }

  close(): void {
    this.clear();
  }

  /** A key the policy let go: forget it here and hand it to onEvict (e.g. the disk tier in spill mode). */
  private drop(key: string, record: HeldRecord, rejected: boolean): void {
    // Its body's view is made before the slab lets the bytes go (onEvict may keep them, e.g. spill them to disk).
    const gone = readable(record);
    this.tags.remove(key, gone);
    this.freeBody(record);
    if (!rejected) this.evictions++;
    this.options.onEvict?.(key, gone);
  }

  /** The record as kept: a small body copied into a slab (the given record is left as it was). */
  private packed(key: string, record: CacheRecord): HeldRecord {
    if (record.kind !== 'entry' || !Buffer.isBuffer(record.body) || !BodySlabs.fits(record.body.length)) return record;
    const held = new SlabEntry(record.meta, record.forms, record.body);
    this.slabs.place(key, record.body, held);
    return held;
  }

  private freeBody(record: HeldRecord): void {
    if (inSlab(record)) this.slabs.free(record);
  }
}
