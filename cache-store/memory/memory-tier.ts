/**
 * The in-memory tier: records in a Map, with an eviction policy (policies/eviction) deciding what stays
 * within the byte budget. `get` is synchronous and allocation-free so the hit path can call it directly;
 * the policy records the access in O(1).
 */
import { createEvictionPolicy, type EvictionPolicy, type EvictionPolicyName } from '../../policies/eviction/index.js';
import { recordSize, type CacheRecord } from '../entry.js';
import { TagIndex } from './tag-index.js';
import type { SyncCacheTier, TierStats } from '../tier.js';

/**
 * What a record costs in process memory beyond what recordSize() charges (its body, header text, key and a
 * fixed 256 bytes): the JavaScript objects that hold it (metadata, headers object, the string objects of every
 * header value, the body's Buffer and ArrayBuffer, the Map and eviction-policy nodes). No cache-policy object is
 * kept per entry (Freshness.storedPolicy makes one for a revalidation). Measured at about 730 bytes beyond body
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
  private readonly records = new Map<string, CacheRecord>();
  private readonly policy: EvictionPolicy;
  private readonly tags = new TagIndex();
  /** Reused for every offer: the policy reports the keys that must leave here. */
  private readonly evicted: string[] = [];
  private evictions = 0;
  private rejections = 0;

  constructor(private readonly options: MemoryTierOptions) {
    this.policy = createEvictionPolicy(options.policy, { maxBytes: options.maxBytes, ...(options.now && { now: options.now }) });
  }

  get(key: string): CacheRecord | undefined {
    const record = this.records.get(key);
    if (record !== undefined) this.policy.recordAccess(key);
    return record;
  }

  /** Stores a record if the policy admits it; false when it does not fit or is not admitted. */
  set(key: string, record: CacheRecord): boolean {
    const previous = this.records.get(key);
    if (previous !== undefined) this.tags.remove(key, previous);
    this.records.set(key, record);
    this.tags.add(key, record);
    const expiresAt = record.kind === 'entry' ? record.meta.deletableAt : Infinity;
    const resident = this.policy.offer(key, memoryRecordSize(record), expiresAt, this.evicted);
    if (!resident) this.rejections++;
    for (const gone of this.evicted) this.drop(gone, gone === key && !resident);
    this.evicted.length = 0;
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
    const record = this.records.get(key);
    if (record === undefined) return;
    this.records.delete(key);
    this.tags.remove(key, record);
    this.policy.remove(key);
  }

  keys(prefix: string): string[] {
    const out: string[] = [];
    for (const key of this.records.keys()) if (key.startsWith(prefix)) out.push(key);
    return out;
  }

  keysForTag(tag: string): string[] {
    return this.tags.keys(tag);
  }

  clear(): void {
    this.records.clear();
    this.tags.clear();
    this.policy.clear();
  }

  stats(): TierStats {
    return {
      name: this.name,
      policy: this.policy.name,
      entries: this.records.size,
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
  private drop(key: string, rejected: boolean): void {
    const record = this.records.get(key);
    if (record === undefined) return;
    this.records.delete(key);
    this.tags.remove(key, record);
    if (!rejected) this.evictions++;
    this.options.onEvict?.(key, record);
  }
}
