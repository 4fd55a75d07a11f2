/**
 * Hit-for-miss (Varnish's name): the URLs whose last answer could not be shared (private, no-store, Set-Cookie)
 * skip request collapsing for --hit-for-miss, since the waiters of such a URL would each fetch their own answer
 * anyway. Memory stays bounded: keys are kept in expiry order (re-inserted when renewed), so the expired ones are
 * dropped from the front and URLs that are never requested again (a private answer per user or per token) do not
 * pile up; and a flood of distinct unshareable URLs (every 404 of a scan, say) would otherwise keep rate ×
 * --hit-for-miss keys, so past MAX_HIT_FOR_MISS_KEYS the soonest to expire go first (such a key merely collapses
 * again, and is detached). An expiry-ordered set, not a memo: an LRU cache would keep expired keys until pushed out.
 */

/** Most keys remembered per process (about 100 bytes each). */
export const MAX_HIT_FOR_MISS_KEYS = 10_000;

export class HitForMiss {
  /** Key → until when (epoch ms), soonest first. */
  private readonly until = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** Remembers `key` as unshareable for the window, from now. */
  mark(key: string): void {
    const now = this.now();
    this.until.delete(key);
    this.until.set(key, now + this.windowMs);
    for (const [oldest, until] of this.until) {
      if (until > now && this.until.size <= MAX_HIT_FOR_MISS_KEYS) break;
      this.until.delete(oldest);
    }
  }

  /** Whether `key` was marked within the window (an expired mark is forgotten). */
  has(key: string): boolean {
    const until = this.until.get(key);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.until.delete(key);
    return false;
  }

  /** Keys remembered. */
  get size(): number {
    return this.until.size;
  }
}
