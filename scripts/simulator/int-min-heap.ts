/**
 * Binary min-heap of (key, id) int32 pairs in preallocated typed arrays, for the offline reference
 * policies. Push at most `capacity` pairs more than you pop.
 */
export class IntMinHeap {
  private readonly keys: Int32Array;
  private readonly ids: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.keys = new Int32Array(capacity);
    this.ids = new Int32Array(capacity);
  }

  topKey(): number {
    return this.keys[0] as number;
  }

  topId(): number {
    return this.ids[0] as number;
  }

  push(key: number, id: number): void {
    const keys = this.keys;
    const ids = this.ids;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const parentKey = keys[parent] as number;
      if (parentKey <= key) break;
      keys[i] = parentKey;
      ids[i] = ids[parent] as number;
      i = parent;
    }
    keys[i] = key;
    ids[i] = id;
  }

  pop(): void {
    const keys = this.keys;
    const ids = this.ids;
    const n = --this.size;
    if (n === 0) return;
    const key = keys[n] as number;
    const id = ids[n] as number;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && (keys[child + 1] as number) < (keys[child] as number)) child++;
      const childKey = keys[child] as number;
      if (childKey >= key) break;
      keys[i] = childKey;
      ids[i] = ids[child] as number;
      i = child;
    }
    keys[i] = key;
    ids[i] = id;
  }
}
