import { describe, expect, it } from 'vitest';
import { createEvictionPolicy, EVICTION_POLICY_NAMES, type EvictionPolicyName } from '../../policies/eviction/index.js';
import { S3FifoPolicy } from '../../policies/eviction/s3fifo.js';
import { mulberry32 } from '../../scripts/simulator/prng.js';

interface Shadow {
  size: number;
  expiresAt: number;
  value: string;
}

function clockedPolicy(name: EvictionPolicyName, maxBytes: number) {
  const clock = { now: 0 };
  const policy = createEvictionPolicy(name, { maxBytes, now: () => clock.now });
  return { policy, clock, evicted: [] as string[] };
}

describe('policy index', () => {
  it('names every policy and builds each by name', () => {
    expect(EVICTION_POLICY_NAMES).toEqual(['lru', 'lfu', 'fifo', 'tinylfu', 's3fifo']);
    for (const name of EVICTION_POLICY_NAMES) expect(createEvictionPolicy(name, { maxBytes: 10 }).name).toBe(name);
    expect(() => createEvictionPolicy('nope' as EvictionPolicyName, { maxBytes: 10 })).toThrow(RangeError);
  });
});

describe.each(EVICTION_POLICY_NAMES)('%s: the EvictionPolicy contract', (name) => {
  it('keeps the byte bound and exact accounting through a random mixed-size trace with expiry', () => {
    for (const seed of [1, 2, 3]) {
      const random = mulberry32(seed);
      const maxBytes = 100;
      const { policy, clock, evicted } = clockedPolicy(name, maxBytes);
      const shadow = new Map<string, Shadow>();
      for (let step = 0; step < 4_000; step++) {
        if (random() < 0.1) clock.now += Math.floor(random() * 5);
        const key = `k${Math.floor(random() ** 2 * 60)}`;
        const size = random() < 0.05 ? maxBytes + 1 + Math.floor(random() * 50) : Math.floor(random() ** 3 * 40);
        const action = random();
        if (action < 0.45) {
          if (random() < 0.5) policy.recordAccess(key);
          else expect(policy.get(key)).toBe(shadow.get(key)?.value);
        } else if (action < 0.9) {
          const expiresAt = random() < 0.3 ? clock.now + Math.floor(random() * 50) - 5 : Infinity;
          evicted.length = 0;
          const value = `${key}@${step}`;
          const evictedValues: unknown[] = [];
          const previous = shadow.get(key);
          const admitted = policy.offer(key, size, expiresAt, evicted, value, evictedValues);
          // Every key at most once, except the offered one: its expired predecessor, then itself when refused.
          const others = evicted.filter((gone) => gone !== key);
          expect(new Set(others).size).toBe(others.length);
          const own = evictedValues.filter((_, i) => evicted[i] === key);
          if (own.length === 2) expect(own).toEqual([previous?.value, value]);
          else expect(own.length).toBeLessThanOrEqual(1);
          // Each evicted key's value, in the same order: the one it held, or the offered one when refused.
          expect(evictedValues).toHaveLength(evicted.length);
          evicted.forEach((gone, i) => {
            const held = gone === key ? [value, previous?.value] : [shadow.get(gone)?.value];
            expect(held).toContain(evictedValues[i]);
          });
          let seenLive = false;
          for (const gone of evicted) {
            const entry = shadow.get(gone);
            expect(entry !== undefined || gone === key).toBe(true);
            const expired = entry !== undefined && entry.expiresAt < clock.now;
            // Expired first: no expired key after a live one.
            if (expired) expect(seenLive).toBe(false);
            else seenLive = true;
            shadow.delete(gone);
          }
          expect(admitted).toBe(policy.has(key));
          if (admitted) {
            expect(size <= maxBytes && expiresAt >= clock.now).toBe(true);
            shadow.set(key, { size, expiresAt, value });
          } else {
            expect(evicted).toContain(key);
          }
          expect([...shadow.values()].every((entry) => entry.expiresAt >= clock.now)).toBe(true);
        } else if (action < 0.97) {
          expect(policy.remove(key)).toBe(shadow.get(key)?.value);
          shadow.delete(key);
        } else {
          const before = [policy.count, policy.bytes];
          const answer = policy.wouldAdmit(key, size);
          // Only tinylfu has an admission filter; the others take anything that fits.
          if (size > maxBytes || name !== 'tinylfu') expect(answer).toBe(size <= maxBytes);
          expect([policy.count, policy.bytes]).toEqual(before);
        }
        let sum = 0;
        for (const entry of shadow.values()) sum += entry.size;
        expect(policy.bytes).toBeLessThanOrEqual(maxBytes);
        expect(policy.bytes).toBe(sum);
        expect(policy.count).toBe(shadow.size);
        expect([...shadow.keys()].every((resident) => policy.has(resident))).toBe(true);
        expect(new Set(policy.residentKeys())).toEqual(new Set(shadow.keys()));
        expect(policy.peek(key)).toBe(shadow.get(key)?.value);
      }
    }
  });

  it('evicts an expired entry before any live one, however valuable it was', () => {
    const { policy, clock, evicted } = clockedPolicy(name, 3);
    policy.offer('a', 1, 100, evicted);
    policy.offer('b', 1, Infinity, evicted);
    policy.offer('c', 1, Infinity, evicted);
    for (let i = 0; i < 5; i++) policy.recordAccess('a');
    clock.now = 101;
    expect(policy.offer('d', 1, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual(['a']);
    expect(['b', 'c', 'd'].every((key) => policy.has(key))).toBe(true);
  });

  it('drops expired entries in expiry order on the next offer, even with room to spare', () => {
    const { policy, clock, evicted } = clockedPolicy(name, 10);
    policy.offer('a', 1, 50, evicted);
    policy.offer('b', 1, 40, evicted);
    policy.offer('c', 1, Infinity, evicted);
    clock.now = 50;
    policy.offer('d', 1, Infinity, evicted);
    expect(evicted).toEqual(['b']);
    clock.now = 51;
    policy.offer('e', 1, Infinity, evicted);
    expect(evicted).toEqual(['b', 'a']);
    expect(policy.count).toBe(3);
  });

  it('follows the latest expiry of a re-offered key', () => {
    const { policy, clock, evicted } = clockedPolicy(name, 10);
    policy.offer('a', 1, 10, evicted);
    policy.offer('a', 1, 1_000, evicted);
    clock.now = 500;
    policy.offer('b', 1, Infinity, evicted);
    expect(evicted).toEqual([]);
    expect(policy.has('a')).toBe(true);
    clock.now = 1_001;
    policy.offer('c', 1, Infinity, evicted);
    expect(evicted).toEqual(['a']);
  });

  it('follows the latest expiry through many re-offers (the queue compacted on the way), also back to none', () => {
    const { policy, clock, evicted } = clockedPolicy(name, 1_000);
    for (let i = 0; i < 20; i++) policy.offer(`k${i}`, 1, 10_000 + i, evicted);
    policy.offer('never', 1, 50, evicted);
    // Hundreds of re-offers: far more stale triples than entries, so the queue is compacted several times.
    for (let round = 1; round <= 50; round++) for (let i = 0; i < 20; i++) policy.offer(`k${i}`, 1, 100 + round * 10 + i, evicted);
    policy.offer('never', 1, Infinity, evicted);
    expect(evicted).toEqual([]);
    // Latest expiries: k<i> at 600 + i. An earlier triple (100..599) must not evict anything.
    clock.now = 600;
    policy.offer('x', 1, Infinity, evicted);
    expect(evicted).toEqual([]);
    clock.now = 605;
    policy.offer('y', 1, Infinity, evicted);
    expect(evicted).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    clock.now = 100_000;
    policy.offer('z', 1, Infinity, evicted);
    expect(evicted.length).toBe(20);
    expect(policy.has('never')).toBe(true);
  });

  it('refuses an offer whose expiry has already passed', () => {
    const { policy, clock, evicted } = clockedPolicy(name, 10);
    policy.offer('x', 2, Infinity, evicted);
    clock.now = 100;
    expect(policy.offer('x', 2, 99, evicted)).toBe(false);
    expect(evicted).toEqual(['x']);
    expect([policy.has('x'), policy.count, policy.bytes]).toEqual([false, 0, 0]);
  });

  it('rejects a key bigger than maxBytes and reports it in evicted', () => {
    const { policy, evicted } = clockedPolicy(name, 10);
    policy.offer('small', 3, Infinity, evicted);
    expect(policy.wouldAdmit('big', 11)).toBe(false);
    expect(policy.offer('big', 11, Infinity, evicted)).toBe(false);
    expect(evicted).toEqual(['big']);
    expect([policy.has('big'), policy.count, policy.bytes]).toEqual([false, 1, 3]);
    // A resident key that grows past the bound leaves.
    expect(policy.offer('small', 11, Infinity, evicted)).toBe(false);
    expect(evicted).toEqual(['big', 'small']);
    expect([policy.count, policy.bytes]).toEqual([0, 0]);
  });

  it('accepts a key exactly as big as maxBytes, evicting everything else', () => {
    const { policy, evicted } = clockedPolicy(name, 10);
    policy.offer('a', 4, Infinity, evicted);
    policy.offer('b', 4, Infinity, evicted);
    // Policies with admission may refuse it; either way the bound holds and the report is exact.
    const admitted = policy.offer('all', 10, Infinity, evicted);
    expect(admitted).toBe(policy.has('all'));
    expect(policy.bytes).toBe(admitted ? 10 : 8);
    expect([...evicted].sort()).toEqual(admitted ? ['a', 'b'] : ['all']);
  });

  it('counts zero-size entries without bytes', () => {
    const { policy, evicted } = clockedPolicy(name, 10);
    expect(policy.offer('empty', 0, Infinity, evicted)).toBe(true);
    expect([policy.count, policy.bytes]).toEqual([1, 0]);
  });

  it('forgets keys on remove and everything on clear, and stays usable', () => {
    const { policy, evicted } = clockedPolicy(name, 10);
    policy.offer('a', 2, Infinity, evicted);
    policy.offer('b', 3, 5_000, evicted);
    policy.remove('a');
    policy.remove('never-seen');
    policy.recordAccess('a');
    expect([policy.has('a'), policy.has('b'), policy.count, policy.bytes]).toEqual([false, true, 1, 3]);
    policy.clear();
    expect([policy.has('b'), policy.count, policy.bytes]).toEqual([false, 0, 0]);
    for (const key of ['c', 'd', 'e']) expect(policy.offer(key, 3, Infinity, evicted)).toBe(true);
    expect([policy.count, policy.bytes, evicted]).toEqual([3, 9, []]);
  });

  it('validates sizes, expiries and maxBytes', () => {
    const { policy, evicted } = clockedPolicy(name, 10);
    expect(() => policy.offer('a', -1, Infinity, evicted)).toThrow(RangeError);
    expect(() => policy.offer('a', Number.NaN, Infinity, evicted)).toThrow(RangeError);
    expect(() => policy.offer('a', Infinity, Infinity, evicted)).toThrow(RangeError);
    expect(() => policy.offer('a', 1, Number.NaN, evicted)).toThrow(RangeError);
    expect(() => policy.wouldAdmit('a', -1)).toThrow(RangeError);
    expect(() => createEvictionPolicy(name, { maxBytes: -1 })).toThrow(RangeError);
    expect(() => createEvictionPolicy(name, { maxBytes: Infinity })).toThrow(RangeError);
    expect(policy.count).toBe(0);
  });
});

describe('S3FifoPolicy.clear', () => {
  it('forgets ghosts too', () => {
    const policy = new S3FifoPolicy({ maxBytes: 20 });
    const evicted: string[] = [];
    for (let i = 0; i < 30; i++) policy.offer(`k${i}`, 1, Infinity, evicted);
    expect(policy.queues().ghost.length).toBeGreaterThan(0);
    policy.clear();
    expect(policy.queues()).toEqual({ small: [], main: [], ghost: [] });
  });
});
