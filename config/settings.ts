/**
 * Every setting edgecache understands, in one table: its type, default, flag, environment variable and the
 * sentence that documents it. `--help`, the config reference (docs/configuration.md) and the validation schema
 * are all derived from this table, so they cannot drift apart.
 */
import { EVICTION_POLICY_NAMES, type EvictionPolicyName } from '../policies/eviction/policy.js';

export type SettingKind = 'string' | 'url' | 'redisUrl' | 'port' | 'int' | 'processes' | 'size' | 'duration' | 'boolean' | 'enum' | 'percent' | 'fields' | 'list';

export interface EdgecacheConfig {
  origin: string;
  port: number;
  host: string;
  adminPort: number;
  adminHost: string;
  /** PEM files; both or neither (TLS on the proxy port). */
  tlsCert: string;
  tlsKey: string;
  h2MaxStreams: number;
  h2c: boolean;
  dataDir: string;
  workers: number;
  diskMax: number;
  diskWrite: 'through' | 'spill';
  /** Empty or absent: no Redis tier. */
  redis: string;
  /** --redis is a seed node of a Redis Cluster. */
  redisCluster: boolean;
  redisPrefix: string;
  redisMaxObjectSize: number;
  redisTimeout: number;
  redisMaxPending: number;
  redisPurgeStreamLength: number;
  redisLease: number;
  memoryMax: number;
  eviction: EvictionPolicyName;
  maxObjectSize: number;
  /** Bytes per slice of a sliced fill (--slice-size); 0: off. */
  sliceSize: number;
  maxVariants: number;
  preserveHost: boolean;
  trustForwarded: boolean;
  cacheSetCookie: boolean;
  /** Comma-separated field names, most specific first (see targetedFieldList). */
  targetedCacheControl: string;
  originConnectTimeout: number;
  originHeadersTimeout: number;
  originBodyTimeout: number;
  originConnections: number;
  coalesce: boolean;
  coalesceWait: number;
  hitForMiss: number;
  staleIfErrorGrace: number;
  ttlJitter: number;
  adminToken: string;
  shutdownGrace: number;
  shutdownLinger: number;
  accessLog: 'on' | 'off';
  /** Comma-separated query parameter names; empty or absent: none. */
  logRedactQuery: string;
  exposeTagHeaders: boolean;
  compress: 'br,gzip' | 'br' | 'gzip' | 'off';
  compressMinSize: number;
  /** Path prefixes whose POST requests are cached (absent or empty: no POST is cached). */
  cachePost?: readonly string[];
  cachePostMaxBody: number;
  cachePostTtl: number;
  cachePostIgnoreFields?: readonly string[];
  cachePostKeyHeaders?: readonly string[];
  cachePostShared: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  config: string;
}

export interface SettingSpec {
  kind: SettingKind;
  description: string;
  /** Shown as the default in --help and the reference; also used when nothing sets the value. */
  default?: string | number | boolean;
  required?: boolean;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** Placeholder shown in --help, e.g. URL, SIZE. */
  placeholder?: string;
  /** Only settable on the command line / environment (e.g. the config file path itself). */
  notInFile?: boolean;
}

export const SETTINGS = {
  origin: {
    kind: 'url',
    required: true,
    placeholder: 'URL',
    description: 'The origin server every request is forwarded to (http:// or https://). Never derived from the request.',
  },
  port: { kind: 'port', default: 8080, description: 'Port the proxy listens on.' },
  host: { kind: 'string', default: '0.0.0.0', placeholder: 'ADDR', description: 'Address the proxy listens on.' },
  adminPort: {
    kind: 'port',
    default: 8081,
    description: 'Port of the admin API (/livez, /readyz, /metrics, /stats, the dashboard at /, POST /purge). 0 picks a free port.',
  },
  adminHost: {
    kind: 'string',
    default: '127.0.0.1',
    placeholder: 'ADDR',
    description:
      'Address the admin API listens on (loopback by default). Any other address (0.0.0.0 in a container, so that probes and Prometheus reach it) requires --admin-token: then purges, from the API and the dashboard, need the token, while /livez, /readyz, /healthz and /metrics stay open to probes and scrapers.',
  },
  tlsCert: {
    kind: 'string',
    placeholder: 'FILE',
    description:
      'PEM certificate (chain) for the proxy port: with --tls-key it speaks TLS 1.2+ with ALPN h2 and http/1.1 (HTTP/2 and HTTP/1.1 on one port). SIGHUP reloads both files without dropping connections. Off when unset.',
  },
  tlsKey: {
    kind: 'string',
    placeholder: 'FILE',
    description: 'PEM private key of --tls-cert (both or neither).',
  },
  h2MaxStreams: {
    kind: 'int',
    default: 100,
    min: 1,
    max: 10_000,
    description: 'Most concurrent HTTP/2 streams a client may open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS), with TLS or --h2c.',
  },
  h2c: {
    kind: 'boolean',
    default: false,
    description:
      'Also accept HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) on a plain proxy port, beside HTTP/1.1: for an edge behind a TLS-terminating load balancer. Not with --tls-cert (TLS negotiates h2 by ALPN).',
  },
  dataDir: {
    kind: 'string',
    default: './edgecache-data',
    placeholder: 'DIR',
    description: 'Directory for the on-disk cache (LMDB environment).',
  },
  diskMax: {
    kind: 'size',
    default: '1gib',
    description:
      'Byte budget of the disk tier (LMDB in --data-dir): the size its data file may reach on disk, free pages and the space reserved ahead of writes included (see docs/disk-tier.md). 0 turns the disk tier off (memory only).',
  },
  diskWrite: {
    kind: 'enum',
    default: 'through',
    values: ['through', 'spill'],
    description:
      'through: every stored response is also written to disk, asynchronously, off the response path (survives a crash). spill: only what the memory tier evicts is written (fewer writes; a crash or a restart loses memory-only entries).',
  },
  redis: {
    kind: 'redisUrl',
    placeholder: 'URL',
    description:
      'Redis shared by several edgecache machines (redis://[user:password@]host:port[/db], rediss:// for TLS; Redis 7 or newer): a tier below memory and disk that every node reads and fills, and the channel that carries each purge to the other nodes. Off when unset. See docs/redis-tier.md.',
  },
  redisCluster: {
    kind: 'boolean',
    default: false,
    description:
      'Treat --redis as a seed node of a Redis Cluster (database 0, Redis 7 or newer): every connection follows the slots, each entry\'s keys share one slot, prefix purges scan every primary. Needs --redis.',
  },
  redisPrefix: {
    kind: 'string',
    default: 'edgecache:',
    placeholder: 'TEXT',
    description: 'Prefix of every Redis key and channel this cache uses, so that several caches can share one Redis (the nodes of one cache use the same prefix).',
  },
  redisMaxObjectSize: {
    kind: 'size',
    default: '8mib',
    description: 'Largest body written to the Redis tier; larger responses stay in memory and on disk only.',
  },
  redisTimeout: {
    kind: 'duration',
    default: '100ms',
    min: 1,
    description:
      'Longest a Redis lookup may take before the request goes on without it (to the origin); after a failure Redis is skipped for a second while it reconnects in the background. Writes, off the response path, may take ten times as long.',
  },
  redisMaxPending: {
    kind: 'size',
    default: '32mib',
    min: 1024,
    description: 'Most bytes of Redis writes queued and not yet answered; past it further writes are declined and counted (writesDeclined), so a slow Redis never grows memory or slows responses.',
  },
  redisPurgeStreamLength: {
    kind: 'int',
    default: 10_000,
    min: 100,
    max: 10_000_000,
    description:
      'Purges the Redis purge stream keeps (XADD MAXLEN ~). A node that was away (cut off, restarted) reads the ones it missed before serving from its memory and disk again; one that missed more drops its memory and disk tiers.',
  },
  redisLease: {
    kind: 'duration',
    default: '5s',
    min: 100,
    description:
      'Lease a node takes in Redis before fetching a cold key (or revalidating a stale one), so that the other nodes wait for its answer in Redis instead of fetching too; renewed while the fill lasts. A holder that dies costs its waiters at most this long.',
  },
  workers: {
    kind: 'processes',
    default: 'auto',
    min: 1,
    max: 64,
    placeholder: 'N|auto',
    description:
      'Worker processes (node:cluster) sharing the proxy port and the disk tier; auto is one per CPU core. Each has its own memory tier (--memory-max each); a cold key still costs one origin fetch, and purges reach every worker. With more than one, the admin API runs in the cluster primary.',
  },
  memoryMax: {
    kind: 'size',
    default: '256mib',
    min: 1024 * 1024,
    description: 'Byte budget of the in-memory tier, per worker: bodies, header text, the key, and per entry what holds it (about 0.25 KiB for a small entry kept packed, 1 KiB more while it is held decoded for hits; about 0.9 KiB for a larger one). docs/reliability.md says what RSS to expect. Units: k, mb, gib, ... (binary).',
  },
  eviction: {
    kind: 'enum',
    default: 'tinylfu',
    values: EVICTION_POLICY_NAMES,
    description: 'Eviction policy of the memory tier (see docs/eviction.md). tinylfu (W-TinyLFU) keeps the most hits per byte on skewed traffic; it also decides which disk hits are promoted to memory.',
  },
  maxObjectSize: {
    kind: 'size',
    default: '32mib',
    min: 1,
    description:
      'Largest response body that is stored. Larger responses are streamed through and not held in memory. Default: an eighth of --disk-max (32mib, or --memory-max if smaller, without a disk tier). At most --disk-max; without a disk tier at most --memory-max. Bodies larger than an eighth of --memory-max are written to the disk tier as they stream and served from there, never held whole in memory.',
  },
  sliceSize: {
    kind: 'size',
    default: '0',
    description:
      'Fill large objects in slices of this many bytes (e.g. 4mb; 0: off): a GET that misses asks the origin for the slices it needs with Range (as nginx\'s slice module does), each stored as a record of its own, so a seek near the end of a large object costs one slice, not the whole object. At least 256kib, at most --max-object-size. See the README, "Slices".',
  },
  maxVariants: {
    kind: 'int',
    default: 32,
    min: 1,
    max: 10_000,
    description: 'Most Vary variants kept per URL; the least recently stored variant is dropped beyond it.',
  },
  preserveHost: {
    kind: 'boolean',
    default: true,
    description:
      "Send the client's Host header to the origin (as Varnish and most CDNs do). With false, the origin's own host is sent and the client's goes in X-Forwarded-Host. The cache key always includes the client's host.",
  },
  trustForwarded: {
    kind: 'boolean',
    default: false,
    description:
      'Trust X-Forwarded-For/-Host/-Proto, X-Original-URL and X-Rewrite-URL from clients (only behind another proxy you run). Otherwise they are dropped before the origin sees them.',
  },
  cacheSetCookie: {
    kind: 'boolean',
    default: false,
    description: 'Store responses that carry Set-Cookie (the cookie is then stored too). Off: such responses pass through uncached.',
  },
  targetedCacheControl: {
    kind: 'fields',
    default: 'Edgecache-Cache-Control,CDN-Cache-Control',
    description:
      'Targeted cache-control fields (RFC 9213) edgecache obeys instead of Cache-Control and Expires, most specific first: the first one a response carries validly decides. Edgecache-Cache-Control is never sent on to clients; CDN-Cache-Control and the others are, for caches further down.',
  },
  originConnectTimeout: {
    kind: 'duration',
    default: '5s',
    description: 'Time allowed to connect to the origin; on expiry the client gets 504.',
  },
  originHeadersTimeout: {
    kind: 'duration',
    default: '30s',
    description: 'Time allowed for the origin to send response headers; on expiry the client gets 504.',
  },
  originBodyTimeout: {
    kind: 'duration',
    default: '30s',
    description: 'Longest pause allowed between two chunks of an origin body; on expiry the response is aborted and not stored.',
  },
  originConnections: {
    kind: 'int',
    default: 128,
    min: 1,
    max: 65_536,
    description: 'Most concurrent connections to the origin (undici Pool size) per process.',
  },
  coalesce: {
    kind: 'boolean',
    default: true,
    description: 'Collapse concurrent misses and revalidations of one key into one origin fetch; waiters stream the response as it arrives.',
  },
  coalesceWait: {
    kind: 'duration',
    default: '15s',
    description:
      "Longest a collapsed request waits for the shared fetch's response headers before fetching on its own; also the longest a waiter that must fetch its own answer (the shared one was private...) queues for its turn.",
  },
  hitForMiss: {
    kind: 'duration',
    default: '60s',
    description: 'After a URL answers with something that cannot be shared (private, no-store, Set-Cookie...), its requests skip collapsing for this long (at most 10,000 URLs are remembered per process, the soonest to expire dropped first). 0 disables.',
  },
  staleIfErrorGrace: {
    kind: 'duration',
    default: '0s',
    description:
      'Operator grace: when the origin fails (unreachable, timeout, 500/502/503/504), serve a stale entry up to this long past its freshness even without stale-if-error. Never for must-revalidate, proxy-revalidate, no-cache or s-maxage responses. Off by default.',
  },
  ttlJitter: {
    kind: 'percent',
    default: 0,
    description: 'Shorten each stored freshness lifetime by a random 0..N percent so entries stored together do not expire together (never lengthens). 0 disables.',
  },
  adminToken: {
    kind: 'string',
    placeholder: 'TOKEN',
    description:
      'Bearer token for purging (admin API POST /purge, and PURGE on the proxy port). Without one, PURGE on the proxy port is refused (403) and the admin API accepts purges from loopback only. Prefer the environment variable.',
  },
  shutdownGrace: {
    kind: 'duration',
    default: '10s',
    description:
      'On SIGTERM or SIGINT: how long in-flight responses and fills may take to finish. The listener stops accepting at once, /readyz answers 503, requests still arriving on open connections are served with Connection: close; then the disk tier and Redis are flushed and the process exits 0. A second signal exits at once.',
  },
  shutdownLinger: {
    kind: 'duration',
    default: '5s',
    description:
      'On SIGTERM or SIGINT: how long idle keep-alive connections stay open (within --shutdown-grace) for the requests a load balancer still sends on them before it hears of the shutdown; each is served with Connection: close, which ends its connection. The process exits once nothing is in flight and either this time is over or no connection is left. 0: idle connections close as soon as nothing is in flight.',
  },
  accessLog: {
    kind: 'enum',
    default: 'off',
    values: ['on', 'off'],
    description:
      'One JSON line per request on stdout (pino), fresh hits included: method, url, status, cache result, tier, bytes, origin time and total time (ms). Authorization, Cookie and Set-Cookie are never written.',
  },
  logRedactQuery: {
    kind: 'string',
    placeholder: 'NAMES',
    description: 'Comma-separated query parameters whose values the access log replaces with [redacted] (e.g. token,sig).',
  },
  exposeTagHeaders: {
    kind: 'boolean',
    default: false,
    description: 'Relay Surrogate-Key and Cache-Tag response headers to clients (they are always stored as the entry\'s purge tags).',
  },
  cachePost: {
    kind: 'list',
    placeholder: 'PREFIX[,PREFIX...]',
    description:
      'Cache POST requests whose path starts with one of these prefixes (inference and embedding APIs): the key is the method, the URL and a SHA-256 of the body (a JSON body canonicalised: keys sorted, whitespace removed, numbers kept as written) plus a digest of the credentials. Such a POST is a lookup: it does not invalidate its URL. Every other POST is forwarded and invalidates as before. In the config file: a list of strings. Off when unset.',
  },
  cachePostMaxBody: {
    kind: 'size',
    default: '1mib',
    min: 1,
    description: 'Largest POST body (--cache-post) buffered to compute its key; a larger body is forwarded as it comes and its answer not cached.',
  },
  cachePostTtl: {
    kind: 'duration',
    default: '1h',
    description: "Freshness of a cached POST answer (--cache-post) whose origin sent no Cache-Control or Expires; 200 answers only (never 429, other 4xx or 5xx). The origin's Cache-Control, when present, decides instead (no-store and private honoured).",
  },
  cachePostIgnoreFields: {
    kind: 'list',
    placeholder: 'FIELD[,FIELD...]',
    description: 'Top-level JSON fields left out of the POST cache key (--cache-post), e.g. user,request_id. They are still sent to the origin.',
  },
  cachePostKeyHeaders: {
    kind: 'list',
    placeholder: 'NAME[,NAME...]',
    description: 'Request header fields that carry credentials (e.g. x-api-key): their digest joins Authorization in the POST cache key (--cache-post), so one key is never served an answer fetched with another.',
  },
  cachePostShared: {
    kind: 'boolean',
    default: false,
    description:
      'Share cached POST answers (--cache-post) across credentials: Authorization and --cache-post-key-headers are left out of the key. Only for origins whose answers do not depend on who asks: otherwise one client gets an answer meant for another.',
  },
  compress: {
    kind: 'enum',
    default: 'br,gzip',
    values: ['br,gzip', 'br', 'gzip', 'off'],
    description:
      'Content codings edgecache stores compressed responses in. A compressible response (text/*, JSON, JavaScript, CSS, SVG, XML, WASM...: the list is in the README) of at least --compress-min-size, stored without Content-Encoding and without Cache-Control: no-transform, is compressed once after it is stored and kept in each coding beside the identity form; each client gets the form its Accept-Encoding prefers. off: bodies are stored and served as the origin sent them.',
  },
  compressMinSize: {
    kind: 'size',
    default: '1kib',
    min: 1,
    description: 'Smallest body --compress compresses (smaller ones gain too little to pay for the Content-Encoding and the second form).',
  },
  logLevel: {
    kind: 'enum',
    default: 'info',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    description: 'pino log level.',
  },
  config: {
    kind: 'string',
    placeholder: 'FILE',
    notInFile: true,
    description: 'JSON config file. Precedence: defaults < file < environment < flags.',
  },
} as const satisfies Record<keyof EdgecacheConfig, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

export function flagName(name: SettingName): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function envName(name: SettingName): string {
  return `EDGECACHE_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}
