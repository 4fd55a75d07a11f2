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
