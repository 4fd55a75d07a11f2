/**
 * The Redis tier through a Redis Cluster failover: three primaries, each with a replica (test/helpers/redis-cluster.ts);
 * the primary holding an entry is killed, its replica is promoted. Meanwhile lookups are misses (never anything
 * else, never a rejection); afterwards the entry is read from the promoted replica and writes land there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheEntry } from '../../cache-store/entry.js';
import { metaKey } from '../../cache-store/redis/codec.js';
import { loadRedisClient } from '../../cache-store/redis/connect.js';
import { RedisTier } from '../../cache-store/redis/redis-tier.js';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js';
import { eventually } from '../helpers/redis.js';
import { bodyBytes, Fixtures, recordingLogger, TestClock } from './fixtures.js';

let cluster: TestRedisCluster;
let tier: RedisTier;
const clock = new TestClock();
const fx = new Fixtures(clock);
const PREFIX = 'fo:';

beforeAll(async () => {
  await loadRedisClient();
  cluster = await startRedisCluster({ replicas: 1, nodeTimeoutMs: 1_000 });
  tier = new RedisTier({
    url: `redis://127.0.0.1:${cluster.ports[0]}`,
    cluster: true,
    prefix: PREFIX,
    now: clock.now,
    log: recordingLogger(),
    maxBodyBytes: 8 * 1024 * 1024,
    timeoutMs: 300,
    maxPendingBytes: 64 * 1024 * 1024,
    maxVariants: 32,
  });
  await eventually('the tier is connected', () => tier.stats().connected === 1);
}, 40_000);

afterAll(async () => {
  await tier?.close();
  await cluster?.stop();
});

describe('RedisTier on a Redis Cluster: a primary fails over to its replica', () => {
  it('misses while the slot has no primary, then reads the entry from the promoted replica and writes there', async () => {
    const key = 'failover.test/a';
    const entry = fx.entry(key, { body: 100_000, maxAge: 600 });
    expect(tier.set(key, entry)).toBe(true);
    await tier.flushed();
    const slot = Number(await cluster.nodes[0]?.cluster('KEYSLOT', metaKey(PREFIX, key)));
    const roles = await cluster.roles();
    const counts = await Promise.all(cluster.nodes.map(async (node) => Number(await node.cluster('COUNTKEYSINSLOT', slot))));
    const primary = roles.findIndex((role, i) => role === 'master' && (counts[i] ?? 0) > 0);
    expect(primary).toBeGreaterThanOrEqual(0);
    // The replica has it too before the primary goes (replication is asynchronous).
    await cluster.nodes[primary]?.call('WAIT', '1', '2000');
    await cluster.kill(primary);

    let misses = 0;
    await eventually(
      'the entry is read again (from the promoted replica)',
      async () => {
        const read = await tier.get(key);
        if (read === undefined) {
          misses++;
          return false;
        }
        // Whatever is read is the entry, whole.
        expect(read.kind).toBe('entry');
        expect(bodyBytes((read as CacheEntry).body)).toEqual(bodyBytes(entry.body));
        return true;
      },
      20_000,
    );
    expect(misses).toBeGreaterThan(0);
    expect(tier.stats().errors).toBeGreaterThan(0);
    expect((await cluster.roles()).filter((role) => role === 'master')).toHaveLength(3);

    // Writes reach the new primary (after the tier's one-second back-off).
    const rewritten = fx.entry(key, { body: 10, maxAge: 600 });
    await eventually('a write is taken again', async () => {
      tier.set(key, rewritten);
      await tier.flushed();
      const read = await tier.get(key);
      return read?.kind === 'entry' && bodyBytes(read.body).equals(bodyBytes(rewritten.body));
    });
  });
});
