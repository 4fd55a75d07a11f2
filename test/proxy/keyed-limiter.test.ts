import { describe, expect, it } from 'vitest';
import { KeyedLimiter } from '../../proxy/pipeline/keyed-limiter.js';

/** A task that runs until the test ends it. */
function gate(): { task: () => Promise<void>; started: boolean; end(): void } {
  let end = (): void => undefined;
  const g = {
    started: false,
    task: () => {
      g.started = true;
      return new Promise<void>((resolve) => {
        end = resolve;
      });
    },
    end: () => end(),
  };
  return g;
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('KeyedLimiter', () => {
  it('runs at most `limit` tasks per key, the others in order as running ones end', async () => {
    const limiter = new KeyedLimiter(2, Infinity);
    const gates = Array.from({ length: 5 }, gate);
    for (const g of gates) limiter.run('k', g.task);
    expect(gates.map((g) => g.started)).toEqual([true, true, false, false, false]);
    expect(limiter.load('k')).toEqual({ active: 2, waiting: 3 });
    gates[1]?.end();
    await settle();
    expect(gates.map((g) => g.started)).toEqual([true, true, true, false, false]);
    gates[0]?.end();
    gates[2]?.end();
    await settle();
    expect(gates.map((g) => g.started)).toEqual([true, true, true, true, true]);
  });

  it('keys are independent, and forgotten once idle', async () => {
    const limiter = new KeyedLimiter(1, Infinity);
    const a = gate();
    const b = gate();
    limiter.run('a', a.task);
    limiter.run('b', b.task);
    expect([a.started, b.started]).toEqual([true, true]);
    expect(limiter.size).toBe(2);
    a.end();
    b.end();
    await settle();
    expect(limiter.size).toBe(0);
  });

  it('a task that throws or rejects frees its place', async () => {
    const limiter = new KeyedLimiter(1, Infinity);
    const next = gate();
    limiter.run('k', () => {
      throw new Error('boom');
    });
    limiter.run('k', next.task);
    await settle();
    expect(next.started).toBe(true);
    const after = gate();
    next.end();
    limiter.run('k', () => Promise.reject(new Error('no')));
    limiter.run('k', after.task);
    await settle();
    await settle();
    expect(after.started).toBe(true);
  });

  it('a waiting task starts anyway once it has waited maxWaitMs', async () => {
    const limiter = new KeyedLimiter(1, 30);
    const stuck = gate();
    const waiting = gate();
    limiter.run('k', stuck.task);
    limiter.run('k', waiting.task);
    expect(waiting.started).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(waiting.started).toBe(true);
    expect(limiter.load('k')).toEqual({ active: 2, waiting: 0 });
    stuck.end();
    waiting.end();
  });
});
