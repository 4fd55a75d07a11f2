/**
 * Binary min-heap of (expiresAt, key, stamp) triples.
 *
 * Deletion is lazy: when a key is removed or gets a new expiry, its old triple stays in the heap and
 * the owner discards it on pop by checking its stamp against the live entry's. The owner rebuilds the
 * heap when stale triples pile up ({@link ExpiryQueue.retain}), which keeps memory proportional to the
 * resident set.
 */
export class ExpiryQueue {
  // Parallel arrays rather than triple objects: pushes allocate nothing once the arrays have grown.
  private times: number[] = [];
  private keys: string[] = [];
  private stamps: number[] = [];

  get size(): number {
    return this.times.length;
  }

  peekTime(): number {
    return this.times.length === 0 ? Infinity : (this.times[0] as number);
  }

  peekKey(): string {
    return this.keys.length === 0 ? '' : (this.keys[0] as string);
  }

  peekStamp(): number {
    return this.stamps.length === 0 ? 0 : (this.stamps[0] as number);
  }

  push(time: number, key: string, stamp: number): void {
    const { times, keys, stamps } = this;
    let i = times.length;
    times.push(time);
    keys.push(key);
    stamps.push(stamp);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const parentTime = times[parent] as number;
      if (parentTime <= time) break;
      times[i] = parentTime;
      keys[i] = keys[parent] as string;
      stamps[i] = stamps[parent] as number;
      i = parent;
    }
    times[i] = time;
    keys[i] = key;
    stamps[i] = stamp;
  }

  pop(): void {
    const lastTime = this.times.pop();
    const lastKey = this.keys.pop();
    const lastStamp = this.stamps.pop();
    if (lastTime === undefined || lastKey === undefined || lastStamp === undefined || this.times.length === 0) return;
    this.siftDown(0, lastTime, lastKey, lastStamp);
  }

  clear(): void {
    this.times = [];
    this.keys = [];
    this.stamps = [];
  }

  /** Keeps only the triples `live(key, stamp)` accepts, and restores the heap order. */
  retain(live: (key: string, stamp: number) => boolean): void {
    const times: number[] = [];
    const keys: string[] = [];
    const stamps: number[] = [];
    for (let i = 0; i < this.times.length; i++) {
      const key = this.keys[i] as string;
      const stamp = this.stamps[i] as number;
      if (!live(key, stamp)) continue;
      times.push(this.times[i] as number);
      keys.push(key);
      stamps.push(stamp);
    }
    this.times = times;
    this.keys = keys;
    this.stamps = stamps;
    for (let i = (times.length >> 1) - 1; i >= 0; i--) {
      this.siftDown(i, times[i] as number, keys[i] as string, stamps[i] as number);
    }
  }

  private siftDown(start: number, time: number, key: string, stamp: number): void {
    const { times, keys, stamps } = this;
    const n = times.length;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && (times[right] as number) < (times[child] as number)) child = right;
      const childTime = times[child] as number;
      if (childTime >= time) break;
      times[i] = childTime;
      keys[i] = keys[child] as string;
      stamps[i] = stamps[child] as number;
      i = child;
    }
    times[i] = time;
    keys[i] = key;
    stamps[i] = stamp;
  }
}
