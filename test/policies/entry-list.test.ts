import { describe, expect, it } from 'vitest';
import { EntryList, EXACT_ORDER_BELOW, PolicyEntry, setListClock } from '../../policies/eviction/entry-list.js';

function filled(n: number): { list: EntryList; entries: PolicyEntry[] } {
  const list = new EntryList();
  const entries = Array.from({ length: n }, (_, i) => {
    const entry = new PolicyEntry();
    entry.key = `k${i}`;
    entry.size = 1;
    list.pushBack(entry);
    return entry;
  });
  return { list, entries };
}

describe('EntryList.touch (a hit in a policy that tolerates approximate recency)', () => {
  it('moves an entry from the older half of a long list to the tail', () => {
    const { list, entries } = filled(1_000);
    list.touch(entries[10] as PolicyEntry);
    expect(list.keys().at(-1)).toBe('k10');
  });

  it('leaves an entry already in the newer half where it is: it still outlives every entry placed before it', () => {
    const n = 1_000;
    const { list, entries } = filled(n);
    list.touch(entries[900] as PolicyEntry);
    const order = list.keys();
    expect(order.indexOf('k900')).toBe(900);
    // From the head, as a policy evicts: the 900 older entries go first.
    expect(order.slice(0, 900)).toEqual(Array.from({ length: 900 }, (_, i) => `k${i}`));
  });

  it('never skips a move for an entry that moves went past: placements in other lists only make it move sooner', () => {
    const { list, entries } = filled(1_000);
    const other = filled(600).list;
    expect(other.length).toBe(600);
    // k700 has 299 entries behind it in its own list, but 899 placements happened since (600 elsewhere): moved.
    list.touch(entries[700] as PolicyEntry);
    expect(list.keys().at(-1)).toBe('k700');
  });

  it('keeps exact order in a list shorter than the threshold', () => {
    const { list, entries } = filled(EXACT_ORDER_BELOW - 1);
    list.touch(entries[EXACT_ORDER_BELOW - 3] as PolicyEntry);
    expect(list.keys().at(-1)).toBe(`k${EXACT_ORDER_BELOW - 3}`);
  });

  it('works the same across the wrap of its 32-bit placement counter, and stamps stay small integers', () => {
    setListClock(2 ** 31 - 500);
    const { list, entries } = filled(1_000);
    expect(entries.every((entry) => entry.stamp === (entry.stamp | 0))).toBe(true);
    // k900 was placed after the wrap, k10 before it.
    list.touch(entries[900] as PolicyEntry);
    expect(list.keys().indexOf('k900')).toBe(900);
    list.touch(entries[10] as PolicyEntry);
    expect(list.keys().at(-1)).toBe('k10');
  });
});
