/**
 * Binary min-heap of (expiresAt, key) pairs.
 *
 * Deletion is lazy: when a key is removed or gets a new expiry, its old pair stays in the heap and
 * the owner discards it on pop by checking it against the live entry. The owner rebuilds the heap
 * when stale pairs pile up, which keeps memory proportional to the resident set.
 */
export class ExpiryQueue {
  // Parallel arrays rather than pair objects: pushes allocate nothing once the arrays have grown.
  private times: number[] = [];
  private keys: string[] = [];

  get size(): number {
    return this.times.length;
  }

  /** Earliest expiry in the heap; Infinity when empty. */
  peekTime(): number {
    return this.times.length === 0 ? Infinity : (this.times[0] as number);
  }

  /** Key of the earliest expiry; '' when empty. */
  peekKey(): string {
    return this.keys.length === 0 ? '' : (this.keys[0] as string);
  }

  push(time: number, key: string): void {
    const times = this.times;
    const keys = this.keys;
    let i = times.length;
    times.push(time);
    keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const parentTime = times[parent] as number;
      if (parentTime <= time) break;
      times[i] = parentTime;
      keys[i] = keys[parent] as string;
      i = parent;
    }
    times[i] = time;
    keys[i] = key;
  }

  /** Removes the earliest pair. */
  pop(): void {
    const times = this.times;
    const keys = this.keys;
    const lastTime = times.pop();
    const lastKey = keys.pop();
    if (lastTime === undefined || lastKey === undefined || times.length === 0) return;
    this.siftDown(0, lastTime, lastKey);
  }

  clear(): void {
    this.times = [];
    this.keys = [];
  }

  /** Replaces the contents with the given pairs in O(n). */
  rebuild(times: number[], keys: string[]): void {
    this.times = times;
    this.keys = keys;
    for (let i = (times.length >> 1) - 1; i >= 0; i--) {
      this.siftDown(i, times[i] as number, keys[i] as string);
    }
  }

  private siftDown(start: number, time: number, key: string): void {
    const times = this.times;
    const keys = this.keys;
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
      i = child;
    }
    times[i] = time;
    keys[i] = key;
  }
}
