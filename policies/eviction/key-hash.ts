/**
 * 32-bit hash of a string: FNV-1a over UTF-16 code units, then the murmur3 finaliser so that
 * the low bits (which index the sketch) depend on every character. Allocation-free.
 */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  }
  return mix32(h);
}

/**
 * murmur3 fmix32: a bijective avalanche of a 32-bit integer, as a signed 32-bit integer (a small integer to V8:
 * kept unboxed in a PolicyEntry's field, where an unsigned result above 2^31 made the field a boxed double, 16
 * bytes more per entry). Callers use only its bits (`& mask`, `| 0`), so the sign changes no index.
 */
export function mix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
