import { BasePolicy } from './base-policy.js';
import { EntryList, type PolicyEntry } from './entry-list.js';

/**
 * Least recently used: a hit moves the key to the tail; victims leave from the head. Exact on every hit (the
 * simulator's reference; tinylfu, the default, skips moves that would not matter, see EntryList.touch).
 */
export class LruPolicy extends BasePolicy {
  readonly name = 'lru' as const;
  private readonly list = new EntryList();

  /** Resident keys from least to most recently used (allocates; for tests and debugging). */
  keys(): string[] {
    return this.list.keys();
  }

  protected override onAccess(entry: PolicyEntry): void {
    this.list.moveToBack(entry);
  }

  protected override link(entry: PolicyEntry, evicted: string[]): void {
    this.list.pushBack(entry);
    // The new entry is at the tail, so it is only reached if it is alone, and then it fits.
    while (this.usedBytes > this.maxBytes) {
      const victim = this.list.first;
      if (victim === undefined || victim === entry) break;
      this.evict(victim, evicted);
    }
  }

  protected override relink(entry: PolicyEntry, evicted: string[]): void {
    this.link(entry, evicted);
  }

  protected override unlink(entry: PolicyEntry): void {
    this.list.remove(entry);
  }

  protected override resetStructures(): void {
    this.list.reset();
  }
}
