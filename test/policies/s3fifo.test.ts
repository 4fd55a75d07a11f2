import { describe, expect, it } from 'vitest';
import { S3FifoPolicy } from '../../policies/eviction/s3fifo.js';

const range = (prefix: string, from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

describe('S3FifoPolicy', () => {
  it('quickly demotes one-hit wonders from the small queue and moves re-used keys to main', () => {
    // Small queue = 10% of 20 bytes; ghost = 18 bytes of keys.
    const policy = new S3FifoPolicy({ maxBytes: 20 });
    const evicted: string[] = [];
    for (const key of range('k', 0, 20)) policy.offer(key, 1, Infinity, evicted);
    for (const key of range('k', 0, 10)) policy.recordAccess(key);
    expect(policy.offer('n1', 1, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual(['k10']);
    expect(policy.queues()).toEqual({ small: [...range('k', 11, 20), 'n1'], main: range('k', 0, 10), ghost: ['k10'] });
    policy.offer('n2', 1, Infinity, evicted);
    expect(evicted).toEqual(['k10', 'k11']);
  });

  it('admits a key remembered by the ghost queue straight into main', () => {
    const policy = new S3FifoPolicy({ maxBytes: 20 });
    const evicted: string[] = [];
    for (const key of range('k', 0, 20)) policy.offer(key, 1, Infinity, evicted);
    for (const key of range('k', 0, 10)) policy.recordAccess(key);
    policy.offer('n1', 1, Infinity, evicted);
    policy.offer('n2', 1, Infinity, evicted);
    expect(policy.offer('k10', 1, Infinity, evicted)).toBe(true);
    expect(evicted).toEqual(['k10', 'k11', 'k12']);
    expect(policy.queues()).toEqual({
      small: [...range('k', 13, 20), 'n1', 'n2'],
      main: [...range('k', 0, 10), 'k10'],
      ghost: ['k11', 'k12'],
    });
  });

  it('runs main as a CLOCK: a hit buys another pass, an unused key leaves', () => {
    // With a 1-byte small queue, unit keys are as big as it and go straight to main.
    const policy = new S3FifoPolicy({ maxBytes: 10 });
    const evicted: string[] = [];
    for (const key of range('k', 0, 10)) policy.offer(key, 1, Infinity, evicted);
    policy.recordAccess('k0');
    policy.recordAccess('k0');
    policy.recordAccess('k1');
    policy.offer('x', 1, Infinity, evicted);
    expect(evicted).toEqual(['k2']);
    expect(policy.queues().main).toEqual([...range('k', 3, 10), 'k0', 'k1', 'x']);
    for (const key of range('y', 0, 8)) policy.offer(key, 1, Infinity, evicted);
    // k3..k9 leave, then k0 (counter 1 after its first pass) gets a second pass and k1 (0) leaves.
    expect(evicted).toEqual(['k2', ...range('k', 3, 10), 'k1']);
  });

  it('bounds the ghost queue to 90% of maxBytes worth of keys, newest kept', () => {
    const policy = new S3FifoPolicy({ maxBytes: 20 });
    const evicted: string[] = [];
    for (const key of range('w', 0, 200)) policy.offer(key, 1, Infinity, evicted);
    const { ghost } = policy.queues();
    expect(ghost).toEqual(range('w', 162, 180));
  });
});
