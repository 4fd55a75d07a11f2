import { describe, expect, it } from 'vitest';
import { Fixtures, TestClock } from './fixtures.js';
import type { CacheEntry } from '../../cache-store/entry.js';
import { MemoryTier, memoryRecordSize } from '../../cache-store/memory/memory-tier.js';
import { runTierSuite, type TierContext, type TierHarness } from './tier-suite.js';

function memoryHarness(policy: 'tinylfu' | 'lru') {
  return async ({ maxBytes, now }: TierContext): Promise<TierHarness> => {
    const tier = new MemoryTier({ maxBytes, now, policy });
    return { tier, settle: async () => undefined, dispose: async () => tier.close(), sizeOf: memoryRecordSize };
  };
}

// MemoryTier.get returns entries past deletableAt (it leaves them to its policy), so the expiry case does not run
// for it. Its default policy admits by frequency, so only the LRU run checks recency.
runTierSuite('MemoryTier (tinylfu, the default policy)', memoryHarness('tinylfu'), { expires: false, recency: false, accounting: true });
runTierSuite('MemoryTier (lru)', memoryHarness('lru'), { expires: false, recency: true, accounting: true });

describe('MemoryTier: replacing a record whose predecessor expired', () => {
  it.each(['tinylfu', 'lru'] as const)('%s: keeps the new record, its tags and its accounting when the old one expires during the offer', (policy) => {
    const clock = new TestClock();
    const fixtures = new Fixtures(clock);
    const tier = new MemoryTier({ maxBytes: 10 * 1024 * 1024, now: clock.now, policy });
    const old = fixtures.entry('example.test/a', { maxAge: 1, tags: ['t'] });
    expect(tier.set('example.test/a', old)).toBe(true);
    // Past the old record's deletableAt (no validator: freshness, then the stale keep period), then replaced.
    clock.advance(old.meta.deletableAt - clock.now() + 1_000);
    const fresh = fixtures.entry('example.test/a', { maxAge: 3600, tags: ['t'] });
    expect(tier.set('example.test/a', fresh)).toBe(true);
    expect((tier.get('example.test/a') as CacheEntry).meta).toEqual(fresh.meta);
    expect(tier.keysForTag('t')).toEqual(['example.test/a']);
    expect(tier.stats()).toMatchObject({ entries: 1, bytes: memoryRecordSize(fresh) });
  });
});
