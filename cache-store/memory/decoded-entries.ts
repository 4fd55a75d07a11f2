/**
 * The packed entries of the memory tier that are decoded (objects the hit path reads: metadata with its prepared
 * hit head, body views), bounded in number: the hot part of a large set of small entries. When the set is full, a
 * new decoded entry takes the place of one not hit since the clock hand last passed it (CLOCK, the second-chance
 * approximation of LRU that page caches use: a hit only sets a flag), and that one goes back to its bytes alone.
 *
 * While the set is full, an entry decoded for the first time in a while is not kept (`keeps`): it serves its hit
 * and dies young, and only an entry decoded again soon after (within the last two "epochs", each as many decodes
 * as the set holds) takes a place. Without that, traffic spread evenly over many more entries than the set holds
 * would decode every hit into an entry that lives long enough to be promoted to V8's old generation, then dies
 * there: garbage collection cost more than the decoding (docs/benchmarks.md "Packed small entries").
 */
import type { CacheEntry, EncodedForms, EntryMeta } from '../entry.js';

/**
 * A packed entry while it is decoded: a CacheEntry (what the tier hands out) that also knows its packed bytes'
 * handle (record-slabs.ts) and whether it was hit since the clock hand last passed. A class, so that a spread
 * copy of one handed out (a plain object with the same fields) is never taken for one the tier holds.
 */
export class DecodedEntry implements CacheEntry {
  readonly kind = 'entry';
  /** Hit since the clock hand last passed. */
  hit = false;
  /** Its place in the clock (DecodedEntries), -1 while it is not in it. */
  slot = -1;

  constructor(
    /** The tier's key. */
    readonly key: string,
    readonly meta: EntryMeta,
    /** Views of its packed bytes (moved with them by a compaction, so the old slab can be freed). */
    public body: Buffer,
    public forms: EncodedForms | undefined,
    /** Its packed record's handle while the tier holds it; -1 once it left the tier (replaced, deleted, evicted). */
    public handle: number,
  ) {}
}

export class DecodedEntries {
  /** The clock: decoded entries, and holes where one left. */
  private readonly ring: (DecodedEntry | undefined)[] = [];
  private readonly holes: number[] = [];
  private hand = 0;
  /** Entries in the ring. */
  private count = 0;
  /** The current epoch's mark (1..255; 0 is "never"), and the decodes counted in it. */
  private mark = 1;
  private decodes = 0;

  /** `encoded` puts an entry back to its bytes alone (the tier's policy then holds its handle again). */
  constructor(private readonly encoded: (entry: DecodedEntry) => void) {}

  get size(): number {
    return this.count;
  }

  /**
   * Whether an entry just decoded is kept decoded: always while fewer than `limit` are; else only when it was
   * decoded and not kept within the last two epochs (`last`: the mark it was given then, 0 for never). Returns
   * the mark to give it when it is not kept (the caller stores it with the entry's bytes), or 0 when it is kept.
   */
  keeps(last: number, limit: number): number {
    if (++this.decodes >= limit) {
      this.decodes = 0;
      this.mark = this.mark === 255 ? 1 : this.mark + 1;
    }
    if (this.count < limit) return 0;
    const previous = this.mark === 1 ? 255 : this.mark - 1;
    return last === this.mark || last === previous ? 0 : this.mark;
  }

  /**
   * Adds a newly decoded entry. While `limit` or more are decoded, the clock lets go of up to two entries first
   * (more than one, so that a limit lowered because the tier filled up is reached again over the next decodes).
   */
  add(entry: DecodedEntry, limit: number): void {
    for (let i = 0; i < 2 && this.count >= limit && this.count > 0; i++) this.letGo();
    const hole = this.holes.pop();
    if (hole === undefined) {
      entry.slot = this.ring.length;
      this.ring.push(entry);
    } else {
      entry.slot = hole;
      this.ring[hole] = entry;
    }
    this.count++;
  }

  /**
   * An entry that left the tier (replaced, deleted, evicted) leaves the clock at once: its views would otherwise
   * keep its slab alive, long after the slab was compacted or let go, until the hand came round to it.
   */
  remove(entry: DecodedEntry): void {
    const at = entry.slot;
    if (at === -1 || this.ring[at] !== entry) return;
    this.ring[at] = undefined;
    this.holes.push(at);
    this.count--;
    entry.slot = -1;
  }

  clear(): void {
    for (const entry of this.ring) if (entry !== undefined) entry.slot = -1;
    this.ring.length = 0;
    this.holes.length = 0;
    this.hand = 0;
    this.count = 0;
  }

  /** Advances the hand to an entry not hit since it last passed (clearing the flags it passes) and lets it go. */
  private letGo(): void {
    const { ring } = this;
    for (;;) {
      if (this.hand >= ring.length) this.hand = 0;
      const at = this.hand++;
      const entry = ring[at];
      if (entry === undefined) continue;
      if (entry.hit) {
        entry.hit = false;
        continue;
      }
      ring[at] = undefined;
      this.holes.push(at);
      this.count--;
      entry.slot = -1;
      this.encoded(entry);
      return;
    }
  }
}
