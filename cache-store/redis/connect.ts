/**
 * Redis connections as edgecache wants them: connecting in the background (start-up never waits), commands
 * failing at once while disconnected (no offline queue that would grow while Redis is away), a command timeout,
 * reconnection forever with a capped backoff, and connection errors logged once per burst, never thrown.
 * The one place that makes them: a plain server's `Redis`, or with --redis-cluster a `Cluster` seeded with the
 * URL's node (it follows MOVED/ASK and slot moves itself). Both expose the same commands: `RedisClient`.
 */
import type { Cluster, Redis } from 'ioredis';
import { BurstLog, type TierLogger } from '../log-throttle.js';

/** A connection: to one server, or to a Redis Cluster (commands are sent to the node holding their keys' slot). */
export type RedisClient = Redis | Cluster;

export interface ConnectOptions {
  url: string;
  /** The URL is a seed node of a Redis Cluster (--redis-cluster). */
  cluster?: boolean;
  /** Shown by CLIENT LIST, to tell edgecache's connections apart. */
  name: string;
  /** Longest a command may take (ms) before it rejects; 0 for none (a subscriber's SUBSCRIBE waits for the connection). */
  commandTimeoutMs: number;
  log: TierLogger;
  /**
   * A connection for SUBSCRIBE: ioredis's own re-subscription after a reconnect is off (it leaves a promise nobody
   * handles, which rejects when the connection closes before Redis answers); the caller subscribes on each 'ready'.
   */
  subscriber?: boolean;
}

/** Milliseconds before reconnection attempt `times`: 50 ms doubling up to 2 s, for ever. */
function reconnectDelay(times: number): number {
  return Math.min(2_000, 50 * 2 ** Math.min(times, 6));
}

/** The ioredis classes, loaded by loadRedisClient(): a proxy without --redis never loads them (~24 MB, ~60 ms). */
let classes: { Redis: typeof Redis; Cluster: typeof Cluster } | undefined;

/** Loads ioredis; call (and await) before the first connectRedis(). */
export async function loadRedisClient(): Promise<void> {
  if (classes !== undefined) return;
  const ioredis = await import('ioredis');
  classes = { Redis: ioredis.Redis, Cluster: ioredis.Cluster };
}

export function connectRedis({ url, cluster = false, name, commandTimeoutMs, log, subscriber = false }: ConnectOptions): RedisClient {
  if (classes === undefined) throw new Error('connectRedis() before loadRedisClient()');
  const options = {
    connectionName: name,
    ...(commandTimeoutMs > 0 && { commandTimeout: commandTimeoutMs }),
    connectTimeout: Math.max(1_000, commandTimeoutMs * 10),
    autoResubscribe: !subscriber,
    // A command sent on a connection that then drops fails instead of being replayed after a reconnect.
    maxRetriesPerRequest: 0,
    // Redis loading its data set after a restart answers LOADING: keep trying in the background meanwhile.
    maxLoadingRetryTime: 60_000,
    keepAlive: 10_000,
    noDelay: true,
  };
  const client: RedisClient = cluster
    ? new classes.Cluster([seedNode(url)], {
        enableOfflineQueue: false,
        // The whole cluster unreachable: try again, for ever (a node lost alone is replaced by a slot refresh).
        clusterRetryStrategy: reconnectDelay,
        // MOVED/ASK/TRYAGAIN/CLUSTERDOWN are followed a few times; a slot without a node fails the command (the
        // tier then answers a miss and backs off, as for any failure).
        maxRedirections: 6,
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        slotsRefreshTimeout: Math.max(1_000, commandTimeoutMs * 10),
        redisOptions: { ...options, ...credentials(url) },
      })
    : new classes.Redis(url, { ...options, enableOfflineQueue: false, retryStrategy: reconnectDelay });
  const lost = new BurstLog(log, 'warn', `redis (${name}): connection failing; retrying in the background`, `redis (${name}): connected again`);
  // Without an 'error' listener ioredis prints every failed reconnection attempt to the console.
  client.on('error', (err: unknown) => lost.fail({ err: errorText(err) }));
  client.on('ready', () => lost.ok());
  return client;
}

/** The seed node of a cluster URL (redis://[user:password@]host:port). */
function seedNode(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: parsed.port === '' ? 6379 : Number(parsed.port) };
}

/** What a cluster URL says about every node's connection: user, password, TLS (rediss:). */
function credentials(url: string): { username?: string; password?: string; tls?: object } {
  const parsed = new URL(url);
  return {
    ...(parsed.username !== '' && { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password !== '' && { password: decodeURIComponent(parsed.password) }),
    ...(parsed.protocol === 'rediss:' && { tls: {} }),
  };
}

/** Whether a client is a cluster's (its commands then go to several nodes; see primaries()). */
export function isCluster(client: RedisClient): client is Cluster {
  return 'nodes' in client && typeof client.nodes === 'function';
}

/** The connections to every primary of a cluster, or the server's own connection. */
export function primaries(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}

/** Closes a connection: QUIT when it is up (bounded), else just disconnect. Never rejects. */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, 1_000)));
    await Promise.race([client.quit().catch(() => undefined), timeout]);
    clearTimeout(timer);
  }
  client.disconnect(false);
}

/** A short, loggable description of an error (ioredis errors can carry whole command arguments). */
export function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`.slice(0, 300);
  return String(err).slice(0, 300);
}
