import { BasePolicy } from './base-policy.js';
import { EntryList, type PolicyEntry } from './entry-list.js';

/**
 * First in, first out: hits change nothing; victims leave in insertion order. A re-offer (new
 * body or size) counts as a fresh insertion and moves the key to the tail.
 */
export class FifoPolicy extends BasePolicy {
  readonly name = 'fifo' as const;
  private readonly list = new EntryList();

  /** Resident keys from oldest to newest insertion (allocates; for tests and debugging). */
  keys(): string[] {
    return this.list.keys();
  }

  protected override onAccess(_entry: PolicyEntry): void {}

  protected override link(entry: PolicyEntry, evicted: string[]): void {
    this.list.pushBack(entry);
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
