/**
 * Redis connections as edgecache wants them: connecting in the background (start-up never waits), commands
 * failing at once while disconnected (no offline queue that would grow while Redis is away), a command timeout,
 * reconnection forever with a capped backoff, and connection errors logged once per burst, never thrown.
 */
import type { Redis } from 'ioredis';
import { BurstLog, type TierLogger } from '../log-throttle.js';

export interface ConnectOptions {
  url: string;
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

/** The ioredis client class, loaded by loadRedisClient(): a proxy without --redis never loads it (~24 MB, ~60 ms). */
let RedisClient: typeof Redis | undefined;

/** Loads ioredis; call (and await) before the first connectRedis(). */
export async function loadRedisClient(): Promise<void> {
  RedisClient ??= (await import('ioredis')).Redis;
}

export function connectRedis({ url, name, commandTimeoutMs, log, subscriber = false }: ConnectOptions): Redis {
  if (RedisClient === undefined) throw new Error('connectRedis() before loadRedisClient()');
  const client = new RedisClient(url, {
    connectionName: name,
    ...(commandTimeoutMs > 0 && { commandTimeout: commandTimeoutMs }),
    connectTimeout: Math.max(1_000, commandTimeoutMs * 10),
    enableOfflineQueue: false,
    autoResubscribe: !subscriber,
    // A command sent on a connection that then drops fails instead of being replayed after a reconnect.
    maxRetriesPerRequest: 0,
    retryStrategy: reconnectDelay,
    // Redis loading its data set after a restart answers LOADING: keep trying in the background meanwhile.
    maxLoadingRetryTime: 60_000,
    keepAlive: 10_000,
    noDelay: true,
  });
  const lost = new BurstLog(log, 'warn', `redis (${name}): connection failing; retrying in the background`, `redis (${name}): connected again`);
  // Without an 'error' listener ioredis prints every failed reconnection attempt to the console.
  client.on('error', (err: unknown) => lost.fail({ err: errorText(err) }));
  client.on('ready', () => lost.ok());
  return client;
}

/** Closes a connection: QUIT when it is up (bounded), else just disconnect. Never rejects. */
export async function closeRedis(client: Redis): Promise<void> {
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
