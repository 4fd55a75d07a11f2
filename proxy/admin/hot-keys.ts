/**
 * The dashboard's hottest keys: fresh hits served by the hit path, sampled one in 16 (a counter increment per
 * hit; a Map update per sample, no allocation for a key already counted). At most 1,000 keys are kept: when full,
 * every count is halved and the keys that fall to zero are dropped, so the list follows what is hot now.
 */
const SAMPLE_EVERY = 16;
const MAX_KEYS = 1_000;

export class HotKeys {
  private readonly counts = new Map<string, number>();
  private tick = 0;

  /** One fresh hit of `key`. */
  hit(key: string): void {
    if (++this.tick < SAMPLE_EVERY) return;
    this.tick = 0;
    const count = this.counts.get(key);
    if (count !== undefined) {
      this.counts.set(key, count + 1);
      return;
    }
    if (this.counts.size >= MAX_KEYS) this.decay();
    this.counts.set(key, 1);
  }

  /** The `limit` hottest keys with their estimated hits (samples × 16). */
  top(limit: number): Array<{ key: string; hits: number }> {
    return [...this.counts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([key, samples]) => ({ key, hits: samples * SAMPLE_EVERY }));
  }

  private decay(): void {
    for (const [key, count] of this.counts) {
      const halved = count >> 1;
      if (halved === 0) this.counts.delete(key);
      else this.counts.set(key, halved);
    }
  }
}

/** Several processes' lists as one (under --workers). */
export function mergeHotKeys(lists: ReadonlyArray<ReadonlyArray<{ key: string; hits: number }>>, limit: number): Array<{ key: string; hits: number }> {
  const sum = new Map<string, number>();
  for (const list of lists) for (const { key, hits } of list) sum.set(key, (sum.get(key) ?? 0) + hits);
  return [...sum]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, hits]) => ({ key, hits }));
}
