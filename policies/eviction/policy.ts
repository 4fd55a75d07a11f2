/**
 * The contract between the memory tier and its eviction policy.
 *
 * A policy tracks keys and sizes, and holds one opaque value per resident key for its owner (the memory tier keeps
 * its records there, so one index serves both: one Map lookup per hit, one Map entry per record). It never reads
 * the values. The owner asks it what to keep and lets go of whatever the policy reports in `evicted`.
 */

/**
 * Every policy name, in the order the simulator reports them: the one list that the config's --eviction values,
 * createEvictionPolicy (index.ts) and the simulator read.
 */
export const EVICTION_POLICY_NAMES = ['lru', 'lfu', 'fifo', 'tinylfu', 's3fifo'] as const;

/** Names accepted by {@link createEvictionPolicy} (see `index.ts`). */
export type EvictionPolicyName = (typeof EVICTION_POLICY_NAMES)[number];

export interface EvictionPolicyOptions {
  /** Byte bound: the sum of resident entries' sizes never exceeds it. */
  maxBytes: number;
  /** Clock for expiry, ms. Default Date.now. */
  now?: () => number;
}

export interface EvictionPolicy {
  readonly name: EvictionPolicyName;
  readonly maxBytes: number;
  /** Sum of sizes of resident keys. */
  readonly bytes: number;
  /** Number of resident keys. */
  readonly count: number;
  has(key: string): boolean;
  /** A read hit on a resident key. O(1), no allocation. No-op for a key that is not resident. */
  recordAccess(key: string): void;
  /** recordAccess, returning the key's value (undefined when the key is not resident). */
  get(key: string): unknown;
  /** A resident key's value, without counting an access. */
  peek(key: string): unknown;
  /** Replaces a resident key's value, without counting an access (false, and nothing kept, when it is not resident). */
  replaceValue(key: string, value: unknown): boolean;
  /** Every resident key (a live iterator: do not offer or remove while iterating). */
  residentKeys(): IterableIterator<string>;
  /**
   * Offer a key that was just fetched (a miss), or a new size/expiry for a resident key.
   * `expiresAt` is the ms timestamp after which the entry is useless (Infinity when it never expires).
   * Pushes every key that must leave into `evicted` (caller-owned array, reused; the policy never allocates one):
   * expired keys first (any policy: an entry past expiresAt always goes before a live one), then the policy's victims,
   * and the offered key itself when the policy does not admit it (or it is larger than maxBytes).
   * Returns true when the key is resident afterwards. The byte bound holds after every call.
   * `value` is kept for the key while it is resident (replacing the one it had); `evictedValues`, when given,
   * receives the value of each key pushed into `evicted`, in the same order (the offered key's own when refused).
   */
  offer(key: string, size: number, expiresAt: number, evicted: string[], value?: unknown, evictedValues?: unknown[]): boolean;
  /** Would `offer` admit this key now (without changing residency)? Used to decide whether a disk-tier hit is promoted into memory. May count the access in a frequency sketch. */
  wouldAdmit(key: string, size: number): boolean;
  /** Forget a key (purge, explicit delete, expiry noticed by the caller); returns its value. No-op when not resident. */
  remove(key: string): unknown;
  /** Forget everything. */
  clear(): void;
}
