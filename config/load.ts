/**
 * Loads the configuration: defaults < config file < EDGECACHE_* environment < command-line flags, each value
 * coerced from its text form, then the merged object validated against one schema. Every problem becomes a
 * ConfigError whose message is one line naming the setting as the user wrote it.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Type, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { SETTINGS, SETTING_NAMES, envName, flagName, type EdgecacheConfig, type SettingName, type SettingSpec } from './settings.js';
import { ConfigError } from './errors.js';
import { parseFlags } from './flags.js';
import { parseDuration, parseSize } from './units.js';

type Source = { kind: 'default' } | { kind: 'file'; path: string } | { kind: 'env' } | { kind: 'flag' };

export interface LoadResult {
  help: boolean;
  version: boolean;
  config: EdgecacheConfig;
}

export interface LoadInput {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
}

function describe(name: SettingName, source: Source): string {
  switch (source.kind) {
    case 'flag':
      return `--${flagName(name)}`;
    case 'env':
      return envName(name);
    case 'file':
      return `"${name}" in ${source.path}`;
    default:
      return `default of ${name}`;
  }
}

const EXPECTED: Record<SettingSpec['kind'], string> = {
  string: 'a string',
  url: 'an http:// or https:// URL',
  redisUrl: 'a redis:// or rediss:// URL',
  port: 'a port number (0-65535)',
  int: 'an integer',
  processes: 'a number of processes or auto',
  size: 'a size like 64mb, 1gib or a number of bytes',
  duration: 'a duration like 500ms, 30s, 5m or a number of seconds',
  boolean: 'true or false',
  enum: 'one of',
  percent: 'a percentage from 0 to 100',
  fields: 'a comma-separated list of header field names',
  list: 'a comma-separated list (in the config file: a list of strings)',
};

function expected(spec: SettingSpec): string {
  return spec.kind === 'enum' ? `one of ${spec.values?.join(', ')}` : EXPECTED[spec.kind];
}

function integer(raw: string | number | boolean): number | undefined {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Whether a config-file value has the JSON type the setting takes: booleans are JSON booleans and counts are JSON
 * numbers (a file is typed, unlike flags and the environment); sizes and durations may be either.
 */
function fileTypeOk(spec: SettingSpec, raw: unknown): boolean {
  switch (spec.kind) {
    case 'boolean':
      return typeof raw === 'boolean';
    case 'port':
    case 'int':
    case 'percent':
      return typeof raw === 'number';
    case 'processes':
      return typeof raw === 'number' || raw === 'auto';
    case 'size':
    case 'duration':
      return typeof raw === 'number' || typeof raw === 'string';
    case 'list':
      return Array.isArray(raw) && raw.every((item) => typeof item === 'string');
    default:
      return typeof raw === 'string';
  }
}

/** Text (flag, env) or JSON value (file) to the setting's type; undefined when it cannot be read. */
function coerce(spec: SettingSpec, raw: unknown): unknown {
  if (spec.kind === 'list') return listOf(raw);
  if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') return undefined;
  switch (spec.kind) {
    case 'string':
      return typeof raw === 'string' && raw.length > 0 ? raw : undefined;
    case 'url': {
      if (typeof raw !== 'string') return undefined;
      try {
        const url = new URL(raw);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
        if (url.username || url.password || url.hash || url.search) return undefined;
        return url.origin + url.pathname.replace(/\/+$/, '');
      } catch {
        return undefined;
      }
    }
    case 'redisUrl': {
      if (typeof raw !== 'string') return undefined;
      try {
        const url = new URL(raw);
        return url.protocol === 'redis:' || url.protocol === 'rediss:' ? raw : undefined;
      } catch {
        return undefined;
      }
    }
    case 'processes':
      return raw === 'auto' ? availableParallelism() : integer(raw);
    case 'port':
    case 'int':
    case 'percent':
      return integer(raw);
    case 'size':
      return typeof raw === 'boolean' ? undefined : parseSize(raw);
    case 'duration':
      return typeof raw === 'boolean' ? undefined : parseDuration(raw);
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string' && /^(true|1|yes|on)$/i.test(raw)) return true;
      if (typeof raw === 'string' && /^(false|0|no|off)$/i.test(raw)) return false;
      return undefined;
    case 'enum':
      return typeof raw === 'string' && spec.values?.includes(raw) ? raw : undefined;
    case 'fields': {
      if (typeof raw !== 'string') return undefined;
      const names = raw.split(',').map((name) => name.trim());
      return names.every((name) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) ? names.join(',') : undefined;
    }
  }
}

/**
 * A list from text (comma-separated) or a config file's array of strings: items trimmed, empty ones dropped.
 * An item with a comma in a file's list, or a list with nothing in it, cannot be read.
 */
function listOf(raw: unknown): readonly string[] | undefined {
  const items = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) && raw.every((i) => typeof i === 'string' && !i.includes(',')) ? (raw as string[]) : undefined;
  if (items === undefined) return undefined;
  const list = items.map((item) => item.trim()).filter((item) => item.length > 0);
  return list.length > 0 ? list : undefined;
}

function schemaFor(spec: SettingSpec): TSchema {
  const range = { ...(spec.min !== undefined && { minimum: spec.min }), ...(spec.max !== undefined && { maximum: spec.max }) };
  switch (spec.kind) {
    case 'port':
      return Type.Integer({ minimum: 0, maximum: 65535 });
    case 'percent':
      return Type.Integer({ minimum: 0, maximum: 100 });
    case 'int':
    case 'processes':
    case 'size':
    case 'duration':
      return Type.Integer({ minimum: 0, ...range });
    case 'boolean':
      return Type.Boolean();
    case 'enum':
      return Type.Union((spec.values ?? []).map((v) => Type.Literal(v)));
    case 'list':
      return Type.Array(Type.String({ minLength: 1 }), { minItems: 1 });
    default:
      return Type.String({ minLength: 1 });
  }
}

/** The one schema the merged configuration must satisfy. */
const CONFIG_SCHEMA = Type.Object(
  Object.fromEntries(
    SETTING_NAMES.map((name) => {
      const spec: SettingSpec = SETTINGS[name];
      const schema = schemaFor(spec);
      return [name, spec.required ? schema : Type.Optional(schema)];
    }),
  ),
  { additionalProperties: false },
);

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

export function loadConfig({ argv, env = process.env }: LoadInput): LoadResult {
  const args = parseFlags(argv);
  if (args.help || args.version) return { help: args.help, version: args.version, config: {} as EdgecacheConfig };
  const merged: Record<string, unknown> = {};
  const sources = new Map<SettingName, Source>();

  const set = (name: SettingName, raw: unknown, source: Source): void => {
    const spec: SettingSpec = SETTINGS[name];
    const value = source.kind === 'file' && !fileTypeOk(spec, raw) ? undefined : coerce(spec, raw);
    if (value === undefined) {
      throw new ConfigError(`invalid ${describe(name, source)}: expected ${expected(spec)}, got ${JSON.stringify(raw)}`);
    }
    merged[name] = value;
    sources.set(name, source);
  };

  for (const name of SETTING_NAMES) {
    const spec: SettingSpec = SETTINGS[name];
    if (spec.default !== undefined) set(name, spec.default, { kind: 'default' });
  }

  const configPath = args.values.get('config') ?? env[envName('config')];
  if (configPath) {
    const file = readConfigFile(configPath);
    const source: Source = { kind: 'file', path: configPath };
    for (const [key, raw] of Object.entries(file)) {
      const name = key as SettingName;
      // Own keys only: "toString" or "constructor" are not settings.
      if (!Object.hasOwn(SETTINGS, key) || (SETTINGS[name] as SettingSpec).notInFile) {
        throw new ConfigError(`unknown setting "${key}" in ${configPath} (see --help)`);
      }
      set(name, raw, source);
    }
    merged.config = configPath;
  }

  for (const name of SETTING_NAMES) {
    const raw = env[envName(name)];
    if (raw !== undefined && raw !== '') set(name, raw, { kind: 'env' });
  }
  for (const [name, raw] of args.values) set(name, raw, { kind: 'flag' });

  const error = Value.Errors(CONFIG_SCHEMA, merged).First();
  if (error) {
    const name = error.path.split('/')[1] as SettingName | undefined;
    if (name && name in SETTINGS) {
      const source = sources.get(name);
      if (!source) throw new ConfigError(`missing required setting --${flagName(name)} (or ${envName(name)})`);
      const spec: SettingSpec = SETTINGS[name];
      const bounds = [spec.min !== undefined && `at least ${spec.min}`, spec.max !== undefined && `at most ${spec.max}`]
        .filter(Boolean)
        .join(' and ');
      throw new ConfigError(`invalid ${describe(name, source)}: ${bounds ? `must be ${bounds}` : error.message}, got ${JSON.stringify(merged[name])}`);
    }
    throw new ConfigError(`invalid configuration: ${error.message} at ${error.path || '/'}`);
  }
  const config = merged as unknown as EdgecacheConfig;
  checkTls(config, sources);
  const objectSource = sources.get('maxObjectSize') as Source;
  if (objectSource.kind === 'default') {
    // The default largest object: an eighth of the disk tier (one object cannot take all of it); without a disk
    // tier, the old default, lowered to a smaller --memory-max (--memory-max 16mb alone must work).
    config.maxObjectSize = config.diskMax > 0 ? Math.floor(config.diskMax / 8) : Math.min(config.maxObjectSize, config.memoryMax);
  } else if (config.diskMax > 0 && config.maxObjectSize > config.diskMax) {
    const diskSource = sources.get('diskMax') as Source;
    const disk = diskSource.kind === 'default' ? `--disk-max` : describe('diskMax', diskSource);
    throw new ConfigError(`invalid ${describe('maxObjectSize', objectSource)}: ${config.maxObjectSize} bytes is larger than ${disk} (${config.diskMax} bytes)`);
  } else if (config.diskMax === 0 && config.maxObjectSize > config.memoryMax) {
    const memorySource = sources.get('memoryMax') as Source;
    const memory = memorySource.kind === 'default' ? `--memory-max` : describe('memoryMax', memorySource);
    throw new ConfigError(
      `invalid ${describe('maxObjectSize', objectSource)}: ${config.maxObjectSize} bytes is larger than ${memory} (${config.memoryMax} bytes) and there is no disk tier (--disk-max 0)`,
    );
  }
  if (config.adminToken === undefined && !isLoopback(config.adminHost)) {
    throw new ConfigError(`${describe('adminHost', sources.get('adminHost') as Source)} is ${JSON.stringify(config.adminHost)}, not a loopback address: set --admin-token (or EDGECACHE_ADMIN_TOKEN) too`);
  }
  checkSliceSize(config, sources);
  checkPostSettings(config, sources);
  checkRedisCluster(config, sources);
  return { help: false, version: false, config };
}

/** Whether an address is the loopback interface (the only place an admin API without a token may listen). */
function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/** --tls-cert and --tls-key come together; --h2c is for a plain port (TLS offers h2 through ALPN). */
function checkTls(config: EdgecacheConfig, sources: Map<SettingName, Source>): void {
  const cert = sources.get('tlsCert');
  const key = sources.get('tlsKey');
  if (cert && !key) throw new ConfigError(`${describe('tlsCert', cert)} needs --tls-key (or ${envName('tlsKey')}) too`);
  if (key && !cert) throw new ConfigError(`${describe('tlsKey', key)} needs --tls-cert (or ${envName('tlsCert')}) too`);
  const h2c = sources.get('h2c');
  if (cert && config.h2c && h2c) throw new ConfigError(`${describe('h2c', h2c)} is for a plain port: with --tls-cert, HTTP/2 is negotiated by ALPN`);
}

/**
 * --redis-cluster needs --redis; a cluster has database 0 only; the prefix has no braces (the keys of one entry
 * share a slot through the hash tag `{<cache key>}`, which braces in the prefix would change).
 */
function checkRedisCluster(config: EdgecacheConfig, sources: Map<SettingName, Source>): void {
  const cluster = sources.get('redisCluster');
  if (!config.redisCluster || !cluster) return;
  if (!config.redis) throw new ConfigError(`${describe('redisCluster', cluster)} needs --redis (or ${envName('redis')}): a seed node of the cluster`);
  const db = new URL(config.redis).pathname.replace(/^\//, '');
  if (db !== '' && db !== '0') throw new ConfigError(`invalid ${describe('redis', sources.get('redis') as Source)}: a Redis Cluster has database 0 only, got database ${JSON.stringify(db)}`);
  if (/[{}]/.test(config.redisPrefix)) {
    throw new ConfigError(`invalid ${describe('redisPrefix', sources.get('redisPrefix') as Source)}: with --redis-cluster the prefix cannot contain { or }, got ${JSON.stringify(config.redisPrefix)}`);
  }
}

const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/i;

/** --cache-post prefixes are paths; --cache-post-key-headers are field names (stored lower-cased). */
/** Smallest --slice-size: smaller slices cost an origin request and a record per few round trips' worth of bytes. */
const MIN_SLICE_SIZE = 256 * 1024;

/** --slice-size is 0 (off), or between MIN_SLICE_SIZE and --max-object-size (a slice is one stored record). */
function checkSliceSize(config: EdgecacheConfig, sources: Map<SettingName, Source>): void {
  const size = config.sliceSize;
  if (size === 0) return;
  const source = describe('sliceSize', sources.get('sliceSize') as Source);
  if (size < MIN_SLICE_SIZE) throw new ConfigError(`invalid ${source}: must be 0 (off) or at least 256kib (${MIN_SLICE_SIZE} bytes), got ${size} bytes`);
  if (size > config.maxObjectSize) throw new ConfigError(`invalid ${source}: ${size} bytes is larger than --max-object-size (${config.maxObjectSize} bytes)`);
}

function checkPostSettings(config: EdgecacheConfig, sources: Map<SettingName, Source>): void {
  const bad = config.cachePost?.find((prefix) => !prefix.startsWith('/'));
  if (bad !== undefined) {
    throw new ConfigError(`invalid ${describe('cachePost', sources.get('cachePost') as Source)}: each prefix must be a path starting with /, got ${JSON.stringify(bad)}`);
  }
  const badName = config.cachePostKeyHeaders?.find((name) => !FIELD_NAME.test(name));
  if (badName !== undefined) {
    throw new ConfigError(`invalid ${describe('cachePostKeyHeaders', sources.get('cachePostKeyHeaders') as Source)}: not a header field name: ${JSON.stringify(badName)}`);
  }
  if (config.cachePostKeyHeaders) config.cachePostKeyHeaders = config.cachePostKeyHeaders.map((name) => name.toLowerCase());
}
