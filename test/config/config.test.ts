import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configReference, helpText } from '../../config/help.js';
import { ConfigError } from '../../config/errors.js';
import { loadConfig } from '../../config/load.js';
import { SETTING_NAMES, envName, flagName } from '../../config/settings.js';
import { parseDuration, parseSize } from '../../config/units.js';

const ORIGIN = ['--origin', 'http://127.0.0.1:3000'];

describe('units', () => {
  it.each([
    ['64mb', 64 * 1024 ** 2],
    ['1GiB', 1024 ** 3],
    ['512k', 512 * 1024],
    ['1.5mb', 1.5 * 1024 ** 2],
    ['100', 100],
  ])('size %s', (input, bytes) => expect(parseSize(input)).toBe(bytes));

  it.each(['', 'abc', '-1mb', '5 parsecs', '1e3'])('rejects size %j', (input) => expect(parseSize(input)).toBeUndefined());

  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2', 2000],
    ['1h', 3_600_000],
  ])('duration %s', (input, ms) => expect(parseDuration(input)).toBe(ms));
});

describe('loading', () => {
  it('--slice-size: off by default; a size from the flag, EDGECACHE_SLICE_SIZE or the file; 0 or 256kib to --max-object-size', () => {
    expect(loadConfig({ argv: ORIGIN, env: {} }).config.sliceSize).toBe(0);
    expect(loadConfig({ argv: [...ORIGIN, '--slice-size', '4mb'], env: {} }).config.sliceSize).toBe(4 * 1024 ** 2);
    expect(loadConfig({ argv: ORIGIN, env: { EDGECACHE_SLICE_SIZE: '256kib' } }).config.sliceSize).toBe(256 * 1024);
    const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-config-'));
    const file = path.join(dir, 'edgecache.json');
    writeFileSync(file, JSON.stringify({ sliceSize: '1mb' }));
    expect(loadConfig({ argv: ['--config', file, ...ORIGIN], env: {} }).config.sliceSize).toBe(1024 ** 2);
    expect(loadConfig({ argv: [...ORIGIN, '--slice-size', '0'], env: {} }).config.sliceSize).toBe(0);
    expect(() => loadConfig({ argv: [...ORIGIN, '--slice-size', '100kb'], env: {} })).toThrow(/--slice-size.*at least 256kib/);
    expect(() => loadConfig({ argv: [...ORIGIN, '--slice-size', '64mb', '--max-object-size', '32mb'], env: {} })).toThrow(/--slice-size.*larger than --max-object-size/);
    expect(() => loadConfig({ argv: [...ORIGIN, '--slice-size', 'big'], env: {} })).toThrow(/--slice-size/);
    expect(() => loadConfig({ argv: ORIGIN, env: { EDGECACHE_SLICE_SIZE: '-1' } })).toThrow(/EDGECACHE_SLICE_SIZE/);
  });

  it('applies defaults', () => {
    const { config } = loadConfig({ argv: ORIGIN, env: {} });
    expect(config).toMatchObject({ port: 8080, host: '0.0.0.0', adminPort: 8081, adminHost: '127.0.0.1', memoryMax: 256 * 1024 ** 2, dataDir: './edgecache-data' });
  });

  it('precedence: defaults < file < environment < flags', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-config-'));
    const file = path.join(dir, 'edgecache.json');
    writeFileSync(file, JSON.stringify({ origin: 'http://file.example', port: 1111, memoryMax: '16mb', maxVariants: 4 }));
    const { config } = loadConfig({
      argv: ['--config', file, '--port', '3333'],
      env: { EDGECACHE_PORT: '2222', EDGECACHE_MEMORY_MAX: '32mb' },
    });
    expect(config.origin).toBe('http://file.example');
    expect(config.maxVariants).toBe(4);
    expect(config.memoryMax).toBe(32 * 1024 ** 2);
    expect(config.port).toBe(3333);
  });

  it('reads booleans as --flag, --no-flag and --flag=false', () => {
    expect(loadConfig({ argv: [...ORIGIN, '--no-preserve-host'], env: {} }).config.preserveHost).toBe(false);
    expect(loadConfig({ argv: [...ORIGIN, '--trust-forwarded'], env: {} }).config.trustForwarded).toBe(true);
    expect(loadConfig({ argv: [...ORIGIN, '--cache-set-cookie=false'], env: {} }).config.cacheSetCookie).toBe(false);
    expect(loadConfig({ argv: ORIGIN, env: {} }).config.targetedCacheControl).toBe('Edgecache-Cache-Control,CDN-Cache-Control');
    expect(loadConfig({ argv: [...ORIGIN, '--targeted-cache-control', 'Acme-CC , CDN-Cache-Control'], env: {} }).config.targetedCacheControl).toBe('Acme-CC,CDN-Cache-Control');
  });

  it.each([
    [['--port', '70000', ...ORIGIN], /--port/],
    [['--memory-max', 'lots', ...ORIGIN], /--memory-max: expected a size/],
    [['--origin', 'ftp://x'], /--origin: expected an http/],
    [['--bogus', ...ORIGIN], /unknown flag --bogus/],
    [[], /missing required setting --origin/],
    [['--port', ...ORIGIN], /--port needs a value|expected a port/],
    [['--max-object-size', '2gb', ...ORIGIN], /larger than --disk-max/],
    [['--max-object-size', '1gb', '--disk-max', '0', ...ORIGIN], /larger than --memory-max \(268435456 bytes\) and there is no disk tier/],
    [['--log-level', 'loud', ...ORIGIN], /one of fatal, error/],
    [['--targeted-cache-control', 'CDN Cache Control', ...ORIGIN], /--targeted-cache-control: expected a comma-separated list of header field names/],
    [['--targeted-cache-control', 'A,,B', ...ORIGIN], /--targeted-cache-control/],
  ])('rejects %j', (argv, message) => {
    expect(() => loadConfig({ argv, env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ argv, env: {} })).toThrow(message);
  });

  it('names the environment variable or file key that is wrong', () => {
    expect(() => loadConfig({ argv: ORIGIN, env: { EDGECACHE_ADMIN_PORT: 'x' } })).toThrow(/EDGECACHE_ADMIN_PORT/);
    const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-config-'));
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ memoryMax: 'huge' }));
    expect(() => loadConfig({ argv: ['--config', file, ...ORIGIN], env: {} })).toThrow(/"memoryMax" in .*c\.json/);
    writeFileSync(file, JSON.stringify({ memroyMax: '1mb' }));
    expect(() => loadConfig({ argv: ['--config', file, ...ORIGIN], env: {} })).toThrow(/unknown setting "memroyMax"/);
    writeFileSync(file, '{ not json');
    expect(() => loadConfig({ argv: ['--config', file, ...ORIGIN], env: {} })).toThrow(/not valid JSON/);
  });

  it('--max-object-size: an eighth of --disk-max by default, above --memory-max if need be; without disk, at most --memory-max', () => {
    const { config } = loadConfig({ argv: [...ORIGIN, '--memory-max', '16mb'], env: {} });
    expect([config.memoryMax, config.maxObjectSize]).toEqual([16 * 1024 ** 2, 128 * 1024 ** 2]);
    expect(loadConfig({ argv: [...ORIGIN, '--disk-max', '8gib'], env: {} }).config.maxObjectSize).toBe(1024 ** 3);
    expect(loadConfig({ argv: [...ORIGIN, '--memory-max', '16mb', '--max-object-size', '1gib'], env: {} }).config.maxObjectSize).toBe(1024 ** 3);
    // Without a disk tier the default follows a smaller --memory-max (--memory-max 16mb alone must work).
    const memoryOnly = loadConfig({ argv: [...ORIGIN, '--memory-max', '16mb', '--disk-max', '0'], env: {} }).config;
    expect(memoryOnly.maxObjectSize).toBe(16 * 1024 ** 2);
    // A --max-object-size the user chose is named as written, wherever it came from.
    expect(() => loadConfig({ argv: [...ORIGIN, '--memory-max', '16mb', '--disk-max', '0'], env: { EDGECACHE_MAX_OBJECT_SIZE: '32mb' } })).toThrow(
      /^invalid EDGECACHE_MAX_OBJECT_SIZE: 33554432 bytes is larger than --memory-max \(16777216 bytes\) and there is no disk tier \(--disk-max 0\)$/,
    );
  });

  it('a config file value must have the JSON type of its setting, and only real settings are keys', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-config-'));
    const file = path.join(dir, 'c.json');
    const load = (content: object) => {
      writeFileSync(file, JSON.stringify(content));
      return () => loadConfig({ argv: ['--config', file, ...ORIGIN], env: {} });
    };
    expect(load({ coalesce: 'yes' })).toThrow(/^invalid "coalesce" in .*c\.json: expected true or false, got "yes"$/);
    expect(load({ port: '8080' })).toThrow(/^invalid "port" in .*c\.json: expected a port number/);
    expect(load({ maxVariants: true })).toThrow(/"maxVariants" in .*c\.json: expected an integer/);
    expect(load({ origin: 42 })).toThrow(/"origin" in .*c\.json: expected an http/);
    expect(load({ toString: 1 })).toThrow(/^unknown setting "toString" in /);
    expect(load({ constructor: {} })).toThrow(/^unknown setting "constructor" in /);
    expect(load({ coalesce: false, port: 8081, workers: 'auto', memoryMax: '64mb', originHeadersTimeout: 10 })()).toMatchObject({
      config: { coalesce: false, port: 8081, memoryMax: 64 * 1024 ** 2, originHeadersTimeout: 10_000 },
    });
  });

  it('--tls-cert and --tls-key come together (flags, environment, file); --h2c is for a plain port', () => {
    expect(() => loadConfig({ argv: [...ORIGIN, '--tls-cert', 'a.crt'], env: {} })).toThrow(/^--tls-cert needs --tls-key \(or EDGECACHE_TLS_KEY\) too$/);
    expect(() => loadConfig({ argv: ORIGIN, env: { EDGECACHE_TLS_KEY: 'a.key' } })).toThrow(/^EDGECACHE_TLS_KEY needs --tls-cert/);
    expect(() => loadConfig({ argv: [...ORIGIN, '--tls-cert', 'a.crt', '--tls-key', 'a.key', '--h2c'], env: {} })).toThrow(/--h2c is for a plain port/);
    const { config } = loadConfig({ argv: [...ORIGIN, '--h2-max-streams', '50'], env: { EDGECACHE_TLS_CERT: 'a.crt', EDGECACHE_TLS_KEY: 'a.key' } });
    expect([config.tlsCert, config.tlsKey, config.h2MaxStreams, config.h2c]).toEqual(['a.crt', 'a.key', 50, false]);
    expect(() => loadConfig({ argv: [...ORIGIN, '--h2-max-streams', '0'], env: {} })).toThrow(/--h2-max-streams/);
  });

  it('reads --cache-post lists from flags, the environment and a file list, and refuses bad ones', () => {
    const flags = loadConfig({ argv: [...ORIGIN, '--cache-post', '/v1/embeddings, /v1/chat', '--cache-post-key-headers', 'X-Api-Key'], env: {} }).config;
    expect(flags.cachePost).toEqual(['/v1/embeddings', '/v1/chat']);
    expect(flags.cachePostKeyHeaders).toEqual(['x-api-key']);
    expect(flags.cachePostMaxBody).toBe(1024 * 1024);
    expect(flags.cachePostTtl).toBe(3_600_000);
    expect(flags.cachePostShared).toBe(false);
    expect(loadConfig({ argv: ORIGIN, env: {} }).config.cachePost).toBeUndefined();
    expect(loadConfig({ argv: ORIGIN, env: { EDGECACHE_CACHE_POST_IGNORE_FIELDS: 'user,request_id' } }).config.cachePostIgnoreFields).toEqual(['user', 'request_id']);
    const dir = mkdtempSync(path.join(tmpdir(), 'edgecache-config-'));
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ cachePost: ['/v1/embeddings'] }));
    expect(loadConfig({ argv: [...ORIGIN, '--config', file], env: {} }).config.cachePost).toEqual(['/v1/embeddings']);
    writeFileSync(file, JSON.stringify({ cachePost: '/v1/embeddings' }));
    expect(() => loadConfig({ argv: [...ORIGIN, '--config', file], env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ argv: [...ORIGIN, '--cache-post', 'v1/embeddings'], env: {} })).toThrow(/--cache-post: each prefix must be a path/);
    expect(() => loadConfig({ argv: [...ORIGIN, '--cache-post', ','], env: {} })).toThrow(/--cache-post: expected a comma-separated list/);
    expect(() => loadConfig({ argv: [...ORIGIN, '--cache-post-key-headers', 'x api'], env: {} })).toThrow(/not a header field name/);
  });

  it('every setting has a flag, an environment variable and documentation', () => {
    const help = helpText();
    const reference = configReference();
    for (const name of SETTING_NAMES) {
      expect(help).toContain(`--${flagName(name)}`);
      expect(help).toContain(envName(name));
      expect(reference).toContain(envName(name));
    }
  });

  it('docs/configuration.md carries the generated reference', () => {
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(doc).toContain(configReference());
  });
});

// The processes run side by side (each test waits on its own child, not on the others').
describe.concurrent('the edgecache command', () => {
  const cli = new URL('../../dist/proxy/cli.js', import.meta.url).pathname;
  const run = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      execFile(process.execPath, [cli, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 15_000 }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(new Error(err.message));
        resolve({ status: err ? (err.code as unknown as number) : 0, stdout, stderr });
      });
    });

  it('prints --help and exits 0', async () => {
    const out = await run(['--help']);
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('Usage: edgecache --origin URL');
  });

  it.each([
    [['--origin', 'http://x', '--port', 'eighty']],
    [['--nope']],
    [[]],
    [['--origin', 'http://x', '--config', '/does/not/exist.json']],
    [['--origin', 'http://x', '--redis-cluster']],
    [['--origin', 'http://x', '--slice-size', '1k']],
    [['--origin', 'http://x', '--slice-size', 'lots']],
    [['--origin', 'http://x', '--redis', 'redis://127.0.0.1:7000/2', '--redis-cluster']],
    [['--origin', 'http://x', '--redis', 'redis://127.0.0.1:7000', '--redis-cluster', '--redis-prefix', 'a{b}:']],
  ])('bad input %j: one line on stderr, exit code 2, no stack trace', async (args) => {
    const out = await run(args);
    expect(out.status).toBe(2);
    const lines = out.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^edgecache: /);
    expect(out.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });

  it('--redis-cluster without --redis says what is missing', async () => {
    const out = await run(['--origin', 'http://x'], { EDGECACHE_REDIS_CLUSTER: 'true' });
    expect(out.status).toBe(2);
    expect(out.stderr.trim()).toBe('edgecache: EDGECACHE_REDIS_CLUSTER needs --redis (or EDGECACHE_REDIS): a seed node of the cluster');
  });

  it('reads EDGECACHE_* from the environment', async () => {
    const out = await run(['--help'], { EDGECACHE_PORT: 'x' });
    expect(out.status).toBe(0);
    const bad = await run([], { EDGECACHE_ORIGIN: 'http://x', EDGECACHE_PORT: 'x' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('EDGECACHE_PORT');
  });
});
