/**
 * Intrusive doubly-linked list of {@link PolicyEntry} nodes.
 *
 * Every policy keeps its queues as these lists: moving a node is a few pointer writes, so a hit
 * allocates nothing. A circular list around a sentinel keeps link/unlink free of null checks.
 */

/**
 * One resident key (or, for S3-FIFO, one ghost key). A single shape shared by all policies keeps
 * property access monomorphic; each policy uses the fields it needs.
 */
export class PolicyEntry {
  key = '';
  size = 0;
  /**
   * 0 when the entry never expires; else the stamp of its pending triple in the policy's expiry queue (a small
   * integer: the time itself, a boxed double in every node, would cost 16 bytes more per entry).
   */
  expiry = 0;
  prev: PolicyEntry = this;
  next: PolicyEntry = this;
  /** LFU: access count. S3-FIFO: 0..3 saturating counter. */
  freq = 0;
  /** Which of the policy's lists holds the entry (policy-defined constants). */
  queue = 0;
  /** TinyLFU: the key's hash, computed once so hits never rehash the string. */
  hash = 0;
  /** The list clock when the entry was last placed at a list's tail (see {@link EntryList.touch}). */
  stamp = 0;
  /** What the policy's owner keeps for this key (the memory tier's record), so it needs no index of its own. */
  value: unknown = undefined;
}

/**
 * Counts placements at the tail of every list (shared by all lists, so an entry moved between lists keeps a stamp
 * no newer than its place): `clock - entry.stamp` is at least the number of entries placed behind it since. A
 * 32-bit counter that wraps (a stamp stays a small integer, never a boxed double, however long the process runs);
 * distances are taken modulo 2^32, so one entry left unplaced for over 4 billion placements may be moved once late.
 */
let clock = 0;

/** Sets the counter (tests: to check the wrap). */
export function setListClock(value: number): void {
  clock = value | 0;
}

/** The next stamp. */
function tick(): number {
  clock = (clock + 1) | 0;
  return clock;
}

/**
 * Lists shorter than this keep exact recency order on every hit; longer ones skip moving an entry that is already
 * in their newer half (see {@link EntryList.touch}).
 */
export const EXACT_ORDER_BELOW = 128;

export class EntryList {
  private readonly sentinel = new PolicyEntry();
  /** Number of linked entries. */
  length = 0;
  /** Sum of linked entries' sizes. */
  bytes = 0;

  /** Oldest entry (head), or undefined when empty. */
  get first(): PolicyEntry | undefined {
    const head = this.sentinel.next;
    return head === this.sentinel ? undefined : head;
  }

  /** Newest entry (tail), or undefined when empty. */
  get last(): PolicyEntry | undefined {
    const tail = this.sentinel.prev;
    return tail === this.sentinel ? undefined : tail;
  }

  /** The entry after `entry` towards the tail, or undefined at the tail. */
  after(entry: PolicyEntry): PolicyEntry | undefined {
    return entry.next === this.sentinel ? undefined : entry.next;
  }

  /** Links an unlinked entry at the tail (the newest end). */
  pushBack(entry: PolicyEntry): void {
    const tail = this.sentinel.prev;
    entry.prev = tail;
    entry.next = this.sentinel;
    entry.stamp = tick();
    tail.next = entry;
    this.sentinel.prev = entry;
    this.length++;
    this.bytes += entry.size;
  }

  /** Unlinks an entry that this list holds. */
  remove(entry: PolicyEntry): void {
    entry.prev.next = entry.next;
    entry.next.prev = entry.prev;
    entry.prev = entry;
    entry.next = entry;
    this.length--;
    this.bytes -= entry.size;
  }

  /** Moves an entry that this list holds to the tail. */
  moveToBack(entry: PolicyEntry): void {
    entry.stamp = tick();
    const tail = this.sentinel.prev;
    if (tail === entry) return;
    entry.prev.next = entry.next;
    entry.next.prev = entry.prev;
    entry.prev = tail;
    entry.next = this.sentinel;
    tail.next = entry;
    this.sentinel.prev = entry;
  }

  /**
   * A hit's move to the tail, skipped when the entry is certainly in the newer half of a long list already (fewer
   * than half the list's length placed behind it since it was last placed): it is then as far from eviction as
   * a move would matter for, and a hit on one of many hot keys costs no writes to its neighbours, which are
   * cache misses (memcached bumps an item at most once a minute for the same reason). Exact below
   * {@link EXACT_ORDER_BELOW} entries.
   */
  touch(entry: PolicyEntry): void {
    const length = this.length;
    if (length >= EXACT_ORDER_BELOW && (clock - entry.stamp) >>> 0 < length >>> 1) return;
    this.moveToBack(entry);
  }

  /** Moves all of `other`'s entries, in order, to this list's tail. O(1). */
  appendAll(other: EntryList): void {
    if (other === this || other.length === 0) return;
    const otherHead = other.sentinel.next;
    const otherTail = other.sentinel.prev;
    const tail = this.sentinel.prev;
    tail.next = otherHead;
    otherHead.prev = tail;
    otherTail.next = this.sentinel;
    this.sentinel.prev = otherTail;
    this.length += other.length;
    this.bytes += other.bytes;
    other.reset();
  }

  /** Forgets all entries without touching them (their links are left stale). */
  reset(): void {
    this.sentinel.next = this.sentinel;
    this.sentinel.prev = this.sentinel;
    this.length = 0;
    this.bytes = 0;
  }

  /** Keys from head (oldest) to tail; allocates, for tests and debugging only. */
  keys(): string[] {
    const out: string[] = [];
    for (let e = this.sentinel.next; e !== this.sentinel; e = e.next) out.push(e.key);
    return out;
  }
}
