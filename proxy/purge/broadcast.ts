/**
 * Purges across machines: edgecache nodes that share a Redis tell each other about every purge (and every
 * invalidation after an unsafe request) on a pub/sub channel under the Redis prefix. The node that receives a
 * purge applies it everywhere it reaches — its processes' memory, its disk and Redis — and only then publishes
 * it; the other nodes apply it to their own memory and disk as soon as the message arrives (Redis is done
 * already). A purge that returns is applied in Redis; on other nodes it takes effect asynchronously, within
 * about one network round trip.
 *
 * Pub/sub keeps nothing for a subscriber that is disconnected: a node cut off from Redis misses the purges
 * published meanwhile (it logs a warning when it reconnects). Publishing that fails is retried when Redis is
 * back (at most MAX_BACKLOG purges are kept).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { PurgeSelector } from '../../cache-store/purge.js';
import { BurstLog, RateLog, type TierLogger } from '../../cache-store/log-throttle.js';
import { purgeChannel } from '../../cache-store/redis/codec.js';
import { closeRedis, connectRedis, errorText } from '../../cache-store/redis/connect.js';
import type { PurgeRequest } from '../cluster/coordinator.js';
import type { ProxyStats } from '../admin/stats.js';

/** Applies a purge to every process of this node; `within: 'host'` leaves the shared Redis tier alone. */
export type NodePurge = (request: PurgeRequest, within?: 'host') => Promise<number>;

export interface PurgeBroadcastOptions {
  url: string;
  prefix: string;
  log: TierLogger;
  /** Longest a publish may take (ms). */
  timeoutMs: number;
  /** Where the broadcast counts what it sends and receives (the process's /stats). */
  stats: Pick<ProxyStats, 'purgesBroadcast' | 'purgesReceived' | 'purgeBroadcastFailures'>;
}

/** Purges kept for publishing while Redis is unreachable. */
const MAX_BACKLOG = 1_000;
const MESSAGE_VERSION = 1;

interface Message {
  v: number;
  from: string;
  selector: PurgeSelector;
  soft: boolean;
  invalidation?: boolean;
}

export class PurgeBroadcast {
  /** Tells this node's messages apart from the others' (every node receives its own). */
  readonly nodeId = randomUUID();
  private readonly channel: string;
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly log: TierLogger;
  private readonly backlog: string[] = [];
  private readonly publishFaults: BurstLog;
  private readonly badMessages: RateLog;
  private apply: ((request: PurgeRequest) => Promise<unknown>) | undefined;
  /** Received purges, applied one after another in the order they arrived. */
  private applying: Promise<void> = Promise.resolve();
  private subscribedOnce = false;
  private closed = false;
  private readonly stats: PurgeBroadcastOptions['stats'];

  constructor(options: PurgeBroadcastOptions) {
    this.channel = purgeChannel(options.prefix);
    this.log = options.log;
    this.stats = options.stats;
    this.publishFaults = new BurstLog(
      this.log,
      'error',
      'purge broadcast: cannot publish; other nodes keep their copies until Redis is back (purges are retried then)',
      'purge broadcast: publishing again',
    );
    this.badMessages = new RateLog(this.log, 'purge broadcast: ignored a malformed message');
    const connect = { url: options.url, log: this.log };
    this.publisher = connectRedis({ ...connect, name: 'edgecache-publish', commandTimeoutMs: Math.max(1_000, options.timeoutMs * 10) });
    // The subscriber queues its SUBSCRIBE until connected, and ioredis subscribes again after every reconnection.
    this.subscriber = connectRedis({ ...connect, name: 'edgecache-subscribe', commandTimeoutMs: 0, offlineQueue: true });
    this.publisher.on('ready', () => this.drainBacklog());
    this.subscriber.on('ready', () => {
      if (this.subscribedOnce) this.log.warn({}, 'purge broadcast: reconnected; purges published while this node was disconnected were missed');
      this.subscribedOnce = true;
    });
    this.subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.channel) this.receive(text);
    });
    this.subscriber.subscribe(this.channel).catch((err: unknown) => this.log.warn({ err: errorText(err) }, 'purge broadcast: subscribe failed'));
  }

  /** Starts applying the purges other nodes publish. */
  listen(apply: (request: PurgeRequest) => Promise<unknown>): void {
    this.apply = apply;
  }

  /** Publishes a purge this node has applied. Never rejects; while Redis is away the purge waits in a bounded backlog. */
  async publish(request: PurgeRequest): Promise<void> {
    const message: Message = {
      v: MESSAGE_VERSION,
      from: this.nodeId,
      selector: request.selector,
      soft: request.soft,
      ...(request.invalidation && { invalidation: true }),
    };
    await this.send(JSON.stringify(message));
  }

  private async send(text: string): Promise<boolean> {
    if (this.closed) return false;
    try {
      await this.publisher.publish(this.channel, text);
      this.stats.purgesBroadcast++;
      this.publishFaults.ok();
      return true;
    } catch (err) {
      this.stats.purgeBroadcastFailures++;
      this.publishFaults.fail({ err: errorText(err) });
      if (this.backlog.length >= MAX_BACKLOG) this.backlog.shift();
      this.backlog.push(text);
      return false;
    }
  }

  private drainBacklog(): void {
    const pending = this.backlog.splice(0);
    if (pending.length === 0) return;
    this.log.info({ purges: pending.length }, 'purge broadcast: publishing the purges queued while Redis was unavailable');
    void (async () => {
      for (const text of pending) await this.send(text);
    })();
  }

  private receive(text: string): void {
    const message = parseMessage(text);
    if (message === undefined) {
      this.badMessages.warn({ length: text.length });
      return;
    }
    if (message.from === this.nodeId || this.apply === undefined) return;
    this.stats.purgesReceived++;
    const request: PurgeRequest = { selector: message.selector, soft: message.soft, ...(message.invalidation && { invalidation: true }) };
    const apply = this.apply;
    this.applying = this.applying.then(() =>
      apply(request).then(
        () => undefined,
        (err: unknown) => this.log.error({ err: errorText(err), selector: request.selector }, 'purge broadcast: applying a received purge failed'),
      ),
    );
  }

  /** Stops listening and closes both connections (received purges still being applied are awaited). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.apply = undefined;
    await this.applying;
    await Promise.all([closeRedis(this.publisher), closeRedis(this.subscriber)]);
  }
}

/**
 * A node-wide purge that every other node sharing the Redis applies too: it purges this node (Redis included),
 * then publishes; purges published by the others are applied here to everything but Redis.
 */
export function broadcasting(purgeNode: NodePurge, broadcast: PurgeBroadcast): (request: PurgeRequest) => Promise<number> {
  broadcast.listen((request) => purgeNode(request, 'host'));
  return async (request) => {
    const affected = await purgeNode(request);
    await broadcast.publish(request);
    return affected;
  };
}

function parseMessage(text: string): Message | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  if (m.v !== MESSAGE_VERSION || typeof m.from !== 'string' || typeof m.soft !== 'boolean' || !isSelector(m.selector)) return undefined;
  if (m.invalidation !== undefined && typeof m.invalidation !== 'boolean') return undefined;
  return m as unknown as Message;
}

function isSelector(value: unknown): value is PurgeSelector {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const s = value as Record<string, unknown>;
  const lists = ['urls', 'paths', 'keyPrefixes', 'pathPrefixes', 'tags'] as const;
  for (const name of lists) {
    const list = s[name];
    if (list !== undefined && !(Array.isArray(list) && list.every((item) => typeof item === 'string'))) return false;
  }
  if (s.all !== undefined && typeof s.all !== 'boolean') return false;
  return Object.keys(s).every((key) => key === 'all' || (lists as readonly string[]).includes(key));
}
