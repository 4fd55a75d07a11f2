import { FifoPolicy } from './fifo.js';
import { LfuPolicy } from './lfu.js';
import { LruPolicy } from './lru.js';
import { EVICTION_POLICY_NAMES, type EvictionPolicy, type EvictionPolicyName, type EvictionPolicyOptions } from './policy.js';
import { S3FifoPolicy } from './s3fifo.js';
import { TinyLfuPolicy } from './tinylfu.js';

export { EVICTION_POLICY_NAMES, type EvictionPolicy, type EvictionPolicyName, type EvictionPolicyOptions } from './policy.js';

/** Narrows a string (from config or a CLI flag) to a policy name. */
export function isEvictionPolicyName(value: string): value is EvictionPolicyName {
  return (EVICTION_POLICY_NAMES as readonly string[]).includes(value);
}

/**
 * Builds a policy by name with its default tuning. Throws RangeError for an unknown name or an
 * invalid `maxBytes`. Construct the classes directly to pass policy-specific options.
 */
export function createEvictionPolicy(name: EvictionPolicyName, options: EvictionPolicyOptions): EvictionPolicy {
  switch (name) {
    case 'lru':
      return new LruPolicy(options);
    case 'lfu':
      return new LfuPolicy(options);
    case 'fifo':
      return new FifoPolicy(options);
    case 'tinylfu':
      return new TinyLfuPolicy(options);
    case 's3fifo':
      return new S3FifoPolicy(options);
    default:
      throw new RangeError(`unknown eviction policy: ${String(name satisfies never)}`);
  }
}
