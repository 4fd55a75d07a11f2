import { spawnSync } from 'node:child_process';
import { configDefaults, defineConfig } from 'vitest/config';

// The Redis tier's tests start a real redis-server. Where none is installed they are left out, with one line
// saying so, unless EDGECACHE_REQUIRE_REDIS=1 (set by .ci/run, which installs it): then they run and fail loudly.
const redisTests = 'test/**/redis-*.test.ts';
const redisInstalled = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
const runRedisTests = redisInstalled || process.env.EDGECACHE_REQUIRE_REDIS === '1';
if (!runRedisTests) {
  console.warn(`edgecache: redis-server is not installed, so the Redis tier tests (${redisTests}) are skipped; install it (apt-get install redis-server) to run them`);
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: runRedisTests ? configDefaults.exclude : [...configDefaults.exclude, redisTests],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    // Three test files at a time on two cores: most of the end-to-end tests wait on child processes and timers.
    maxWorkers: 3,
  },
});
