import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../scripts/simulator/prng.js';
import { nextUses, simulateOpt } from '../../scripts/simulator/opt.js';
import { simulatePerfectLfu } from '../../scripts/simulator/perfect-lfu.js';
import type { Trace } from '../../scripts/simulator/trace.js';

function traceOf(requests: number[], sizes?: number[]): Trace {
  const objects = Math.max(...requests) + 1;
  return {
    name: 'test',
    description: 'test',
    requests: Int32Array.from(requests),
    sizes: Float64Array.from(sizes ?? Array.from({ length: objects }, () => 1)),
    keys: Array.from({ length: objects }, (_, id) => `k${id}`),
  };
}

/** The best hit count over every choice on every miss: bypass, insert into free room, or evict any resident. */
function bruteForceHits(requests: readonly number[], capacity: number): number {
  const memo = new Map<number, number>();
  const best = (i: number, resident: number): number => {
    if (i === requests.length) return 0;
    const memoKey = i * 1024 + resident;
    const known = memo.get(memoKey);
    if (known !== undefined) return known;
    const bit = 1 << (requests[i] as number);
    let result: number;
    if ((resident & bit) !== 0) {
      result = 1 + best(i + 1, resident);
    } else {
      result = best(i + 1, resident);
      let count = 0;
      for (let b = resident; b !== 0; b &= b - 1) count++;
      if (count < capacity) {
        result = Math.max(result, best(i + 1, resident | bit));
      } else {
        for (let r = 1; r <= resident; r <<= 1) {
          if ((resident & r) !== 0) result = Math.max(result, best(i + 1, (resident & ~r) | bit));
        }
      }
    }
    memo.set(memoKey, result);
    return result;
  };
  return best(0, 0);
}

describe('nextUses', () => {
  it('points each request at the next request for the same object', () => {
    expect(Array.from(nextUses(traceOf([0, 1, 0, 2, 1])))).toEqual([2, 4, 0x7fffffff, 0x7fffffff, 0x7fffffff]);
  });
});

describe('simulateOpt (Bélády with bypass)', () => {
  it('matches a hand-worked trace', () => {
    // Cache of 2: a b c a b. On c, both residents come back before c (never), so c is bypassed.
    expect(simulateOpt(traceOf([0, 1, 2, 0, 1]), 2)).toEqual({ hits: 2, byteHits: 2 });
    // a b c b c a with room for 2: evicting a (used last) for c gives b, c hits; keeping a gives one.
    expect(simulateOpt(traceOf([0, 1, 2, 1, 2, 0]), 2).hits).toBe(2);
  });

  it('equals the brute-force optimum on random unit-size traces', () => {
    const random = mulberry32(42);
    for (let t = 0; t < 300; t++) {
      const objects = 2 + Math.floor(random() * 5);
      const length = 6 + Math.floor(random() * 10);
      const requests = Array.from({ length }, () => Math.floor(random() * objects));
      requests[0] = objects - 1;
      const capacity = 1 + Math.floor(random() * 3);
      expect(simulateOpt(traceOf(requests), capacity).hits, `trace ${requests.join(',')} capacity ${capacity}`).toBe(
        bruteForceHits(requests, capacity),
      );
    }
  });

  it('evicts several furthest-used objects to fit a big one, or bypasses it when they are needed sooner', () => {
    // Sizes a=2, b=2, c=4; capacity 4. c is needed again at 3, after a and b are done.
    expect(simulateOpt(traceOf([0, 1, 2, 2, 0], [2, 2, 4]), 4)).toEqual({ hits: 1, byteHits: 4 });
    // Here a and b come back before c does, so c is bypassed and a, b hit.
    expect(simulateOpt(traceOf([0, 1, 2, 0, 1, 2], [2, 2, 4]), 4)).toEqual({ hits: 2, byteHits: 4 });
    // Bigger than the whole cache: never cached.
    expect(simulateOpt(traceOf([0, 0, 0], [5]), 4).hits).toBe(0);
  });
});

describe('simulatePerfectLfu', () => {
  it('keeps the objects with the highest counts so far, keeping residents on ties', () => {
    // a a b c c c b a with room for 2: c replaces b on its second request; b (2) then loses to a (2).
    expect(simulatePerfectLfu(traceOf([0, 0, 1, 2, 2, 2, 1, 0]), 2)).toEqual({ hits: 3, byteHits: 3 });
  });
});
