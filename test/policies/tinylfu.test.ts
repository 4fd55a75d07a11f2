import { describe, expect, it } from 'vitest';
import { TinyLfuPolicy } from '../../policies/eviction/tinylfu.js';

/**
 * Two unit slots and no window: every new key is immediately a candidate for the main area, and
 * the protected segment (80% of 2 bytes) holds one key.
 */
function twoSlotCache(): { policy: TinyLfuPolicy; evicted: string[] } {
  const policy = new TinyLfuPolicy({ maxBytes: 2, windowFraction: 0 });
  const evicted: string[] = [];
  policy.offer('a', 1, Infinity, evicted);
  policy.offer('b', 1, Infinity, evicted);
  policy.recordAccess('a');
  policy.recordAccess('b');
  return { policy, evicted };
}

describe('TinyLfuPolicy', () => {
  it('fills the main area without admission checks while there is room, and promotes hits to protected', () => {
    const { policy, evicted } = twoSlotCache();
    expect(evicted).toEqual([]);
    // b's promotion pushed protected over its 1.6 bytes, demoting a back to probation.
    expect(policy.segments()).toEqual({ window: [], probation: ['a'], protected: ['b'] });
    expect(policy.frequencyOf('a')).toBe(2);
  });

  it('rejects a one-hit wonder against a more frequent victim', () => {
    const { policy, evicted } = twoSlotCache();
    expect(policy.offer('x', 1, Infinity, evicted)).toBe(false);
    expect(evicted).toEqual(['x']);
    expect(policy.has('x')).toBe(false);
    expect(policy.segments()).toEqual({ window: [], probation: ['a'], protected: ['b'] });
  });

  it('keeps the victim on a tie and admits the candidate once its frequency is higher', () => {
    const { policy, evicted } = twoSlotCache();
    policy.offer('x', 1, Infinity, evicted);
    expect(policy.offer('x', 1, Infinity, evicted)).toBe(false);
    expect(policy.frequencyOf('x')).toBe(2);
    expect(evicted).toEqual(['x', 'x']);
    evicted.length = 0;
    expect(policy.offer('x', 1, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual(['a']);
    expect(policy.segments()).toEqual({ window: [], probation: ['x'], protected: ['b'] });
  });

  it('admits new keys into the LRU window and moves window overflow to probation', () => {
    // Window = 1% of 300 = 3 bytes.
    const policy = new TinyLfuPolicy({ maxBytes: 300 });
    const evicted: string[] = [];
    for (const key of ['a', 'b', 'c', 'd', 'e']) policy.offer(key, 1, Infinity, evicted);
    policy.recordAccess('c');
    expect(policy.segments()).toEqual({ window: ['d', 'e', 'c'], probation: ['a', 'b'], protected: [] });
    expect(evicted).toEqual([]);
  });

  it('makes a big candidate beat every victim it displaces', () => {
    const policy = new TinyLfuPolicy({ maxBytes: 10, windowFraction: 0 });
    const evicted: string[] = [];
    for (const key of ['a', 'b', 'c', 'd', 'e']) policy.offer(key, 2, Infinity, evicted);
    // a is seen twice in all; the big key three times, then offered when the cache is full.
    policy.recordAccess('a');
    policy.wouldAdmit('big', 4);
    policy.wouldAdmit('big', 4);
    expect(policy.offer('big', 4, Infinity, evicted)).toBe(true);
    // Probation LRU order is b, c, d, e (a went to protected): two victims free 4 bytes.
    expect(evicted).toEqual(['b', 'c']);
    expect(policy.bytes).toBe(10);
    evicted.length = 0;
    // A newcomer of the same size seen once loses to the first victim.
    expect(policy.offer('big2', 4, Infinity, evicted)).toBe(false);
    expect(evicted).toEqual(['big2']);
  });

  it('wouldAdmit counts the access once, predicts the offer, and changes no residency', () => {
    const { policy, evicted } = twoSlotCache();
    expect(policy.wouldAdmit('x', 1)).toBe(false);
    expect(policy.frequencyOf('x')).toBe(1);
    expect(policy.count).toBe(2);
    expect(policy.offer('x', 1, Infinity, evicted)).toBe(false);
    // The offer right after wouldAdmit is the same access: not counted twice.
    expect(policy.frequencyOf('x')).toBe(1);
    expect(policy.wouldAdmit('x', 1)).toBe(false);
    expect(policy.wouldAdmit('x', 1)).toBe(true);
    expect(policy.offer('x', 1, Infinity, evicted)).toBe(true);
    expect(policy.wouldAdmit('y', 3)).toBe(false);
  });

  it('lets any key that fits the window in, since admission happens on leaving the window', () => {
    const policy = new TinyLfuPolicy({ maxBytes: 1000 });
    const evicted: string[] = [];
    for (let i = 0; i < 1000; i++) policy.offer(`k${i}`, 1, Infinity, evicted);
    expect(policy.wouldAdmit('newcomer', 5)).toBe(true);
    expect(policy.offer('newcomer', 5, Infinity, evicted)).toBe(true);
    expect(policy.bytes).toBeLessThanOrEqual(1000);
  });
});
