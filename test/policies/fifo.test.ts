import { describe, expect, it } from 'vitest';
import { FifoPolicy } from '../../policies/eviction/fifo.js';

describe('FifoPolicy', () => {
  it('evicts in insertion order whatever the hits', () => {
    const fifo = new FifoPolicy({ maxBytes: 3 });
    const evicted: string[] = [];
    for (const key of ['a', 'b', 'c']) fifo.offer(key, 1, Infinity, evicted);
    for (let i = 0; i < 10; i++) fifo.recordAccess('a');
    fifo.offer('d', 1, Infinity, evicted);
    fifo.offer('e', 1, Infinity, evicted);
    expect(evicted).toEqual(['a', 'b']);
    expect(fifo.keys()).toEqual(['c', 'd', 'e']);
  });

  it('moves a re-offered key (a new version) to the tail', () => {
    const fifo = new FifoPolicy({ maxBytes: 3 });
    const evicted: string[] = [];
    for (const key of ['a', 'b', 'c']) fifo.offer(key, 1, Infinity, evicted);
    fifo.offer('a', 1, Infinity, evicted);
    fifo.offer('d', 1, Infinity, evicted);
    expect(evicted).toEqual(['b']);
    expect(fifo.keys()).toEqual(['c', 'a', 'd']);
  });
});
