/**
 * The in-memory tier: records kept by an eviction policy (policies/eviction), which decides what stays within the
 * byte budget and holds each resident record, so one Map indexes both. `get` is synchronous and allocation-free
 * so the hit path can call it directly: one lookup, and the policy records the access in O(1).
 */
import { createEvictionPolicy, type EvictionPolicy, type EvictionPolicyName } from '../../policies/eviction/index.js';
import { recordSize, type CacheRecord } from '../entry.js';
import { TagIndex } from './tag-index.js';
import type { SyncCacheTier, TierStats } from '../tier.js';

/**
 * What a record costs in process memory beyond what recordSize() charges (its body, header text, key and a
 * fixed 256 bytes): the JavaScript objects that hold it (metadata, headers object, the string objects of every
 * header value, the body's Buffer and ArrayBuffer, the eviction-policy node and its Map slot). No cache-policy object is
 * kept per entry (Freshness.storedPolicy makes one for a revalidation). Measured at about 710 bytes beyond body
 * and header text for a small response (`npm run bench:entry-memory`, test/proxy/memory-bounds.test.ts); charged
 * so that --memory-max bounds the memory the tier really holds, also when it holds many small entries.
 */
const MEMORY_ENTRY_OVERHEAD = 640;

/** The bytes a record is charged in the memory tier's budget. */
export function memoryRecordSize(record: CacheRecord): number {
  return recordSize(record) + MEMORY_ENTRY_OVERHEAD;
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

  constructor(private readonly options: MemoryTierOptions) {
    this.policy = createEvictionPolicy(options.policy, { maxBytes: options.maxBytes, ...(options.now && { now: options.now }) });
  }

  get(key: string): CacheRecord | undefined {
    return this.policy.get(key) as CacheRecord | undefined;
  }

  /** Stores a record if the policy admits it; false when it does not fit or is not admitted. */
  set(key: string, record: CacheRecord): boolean {
    const previous = this.policy.peek(key) as CacheRecord | undefined;
    if (previous !== undefined) this.tags.remove(key, previous);
    this.tags.add(key, record);
    const expiresAt = record.kind === 'entry' ? record.meta.deletableAt : Infinity;
    const { evicted, evictedRecords } = this;
    const resident = this.policy.offer(key, memoryRecordSize(record), expiresAt, evicted, record, evictedRecords);
    if (!resident) this.rejections++;
    for (let i = 0; i < evicted.length; i++) {
      const gone = evicted[i] as string;
      const goneRecord = evictedRecords[i] as CacheRecord;
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
    const record = this.policy.remove(key) as CacheRecord | undefined;
    if (record !== undefined) this.tags.remove(key, record);
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
    this.policy.clear();
  }

  stats(): TierStats {
    return {
      name: this.name,
      policy: this.policy.name,
      entries: this.policy.count,
      bytes: this.policy.bytes,
      maxBytes: this.options.maxBytes,
      evictions: this.evictions,
      rejections: this.rejections,
    };
  }

  close(): void {
    this.clear();
  }

  /** A key the policy let go: forget it here and hand it to onEvict (e.g. the disk tier in spill mode). */
  private drop(key: string, record: CacheRecord, rejected: boolean): void {
    this.tags.remove(key, record);
    if (!rejected) this.evictions++;
    this.options.onEvict?.(key, record);
  }
}
