/**
 * Purges across machines: edgecache nodes that share a Redis tell each other about every purge (and every
 * invalidation after an unsafe request) through a Redis Stream under the Redis prefix (`XADD ... MAXLEN ~ N`).
 * The node that receives a purge applies it everywhere it reaches — its processes' memory, its disk and Redis —
 * and only then adds it to the stream; every node reads the stream (a blocking `XREAD` from the last entry it
 * applied) and applies the others' purges to its own memory and disk (Redis is done already).
 *
 * Nothing is lost while a node is away: it remembers the last entry it applied in its data directory
 * (stream-position.ts) and, after a reconnection or a restart, reads what it missed and applies it before its
 * memory and disk tiers answer again (until then CacheStore.trustLocalTiers(false): requests are answered from
 * Redis or the origin). When it cannot know what it missed — the stream was trimmed past its position, Redis lost
 * its data (a new epoch, see codec.ts epochKey), or it has no position — it drops its memory and disk tiers
 * entirely (a hard purge of everything there), since even a stale copy could be served (stale-if-error).
 *
 * While a node is cut off from Redis it keeps serving what it holds (it cannot know what it misses); publishing
 * that fails is retried when Redis is back (at most MAX_BACKLOG purges are kept).
 */
import type { Redis } from 'ioredis';
import type { PurgeSelector } from '../../cache-store/purge.js';
import { BurstLog, RateLog, type TierLogger } from '../../cache-store/log-throttle.js';
import { epochKey, purgeStreamKey } from '../../cache-store/redis/codec.js';
import { closeRedis, connectRedis, errorText } from '../../cache-store/redis/connect.js';
import type { PurgeRequest } from '../cluster/coordinator.js';
import type { ProxyStats } from '../admin/stats.js';
import type { EdgecacheConfig } from '../../config/settings.js';
import type { Logger } from 'pino';
import { compareStreamIds, PositionFile, type StreamPosition } from './stream-position.js';
import { randomUUID } from 'node:crypto';

/** Applies a purge to every process of this node; `within: 'host'` leaves the shared Redis tier alone. */
export type NodePurge = (request: PurgeRequest, within?: 'host') => Promise<number>;

export interface PurgeBroadcastOptions {
  url: string;
  prefix: string;
  log: TierLogger;
  /** Longest a publish may take (ms). */
  timeoutMs: number;
  /** The data directory, where the node's position in the stream is kept. */
  dataDir: string;
  /** Most entries the stream keeps (XADD MAXLEN ~): a node away for longer than that many purges drops its local tiers. */
  streamLength: number;
  /** Where the broadcast counts what it sends and receives (the process's /stats). */
  stats: Pick<ProxyStats, 'purgesBroadcast' | 'purgesReceived' | 'purgeBroadcastFailures' | 'localTierDrops'>;
}

/** What the node does with what it reads from the stream. */
export interface BroadcastListener {
  /** Applies another node's purge to this node's memory and disk. */
  apply: (request: PurgeRequest) => Promise<unknown>;
  /** Whether the node's memory and disk tiers may answer requests (false until it has caught up with the stream). */
  trust: (trusted: boolean) => void;
}

/** Purges kept for publishing while Redis is unreachable. */
const MAX_BACKLOG = 1_000;
const MESSAGE_VERSION = 1;
/** How long one blocking XREAD waits for new entries (ms) before asking again. */
const BLOCK_MS = 2_000;
/** Stream entries read per XREAD. */
const READ_COUNT = 100;
/** Pause after a failed read before the next attempt (ms). */
const RETRY_MS = 100;
/** The one field of a stream entry: the message, as JSON. */
const FIELD = 'm';

interface Message {
  v: number;
  from: string;
  selector: PurgeSelector;
  soft: boolean;
  invalidation?: boolean;
}

type StreamEntries = Array<[id: string, fields: string[]]>;

export class PurgeBroadcast {
  /** Tells this node's messages apart from the others' (kept in the data directory: the same after a restart). */
  readonly nodeId: string;
  private readonly streamKey: string;
  private readonly epochKey: string;
  private readonly streamLength: number;
  private readonly publisher: Redis;
  private readonly reader: Redis;
  private readonly log: TierLogger;
  private readonly backlog: string[] = [];
  private readonly publishFaults: BurstLog;
  private readonly readFaults: BurstLog;
  private readonly badMessages: RateLog;
  private readonly positionFile: PositionFile;
  private position: StreamPosition;
  private listener: BroadcastListener | undefined;
  /** Whether the node has applied everything in the stream since its (re)connection. */
  private synced = false;
  private trusted = false;
  private closed = false;
  private running: Promise<void> = Promise.resolve();
  private wakeReader: (() => void) | undefined;
  private readonly stats: PurgeBroadcastOptions['stats'];

  constructor(options: PurgeBroadcastOptions) {
    this.streamKey = purgeStreamKey(options.prefix);
    this.epochKey = epochKey(options.prefix);
    this.streamLength = options.streamLength;
    this.log = options.log;
    this.stats = options.stats;
    this.positionFile = new PositionFile(options.dataDir, options.prefix);
    this.position = this.positionFile.read();
    this.nodeId = this.position.node;
    this.publishFaults = new BurstLog(
      this.log,
      'error',
      'purge broadcast: cannot publish; other nodes keep their copies until Redis is back (purges are retried then)',
      'purge broadcast: publishing again',
    );
    this.readFaults = new BurstLog(this.log, 'warn', 'purge broadcast: cannot read the purge stream; retrying', 'purge broadcast: reading the purge stream again');
    this.badMessages = new RateLog(this.log, 'purge broadcast: ignored a malformed message');
    const connect = { url: options.url, log: this.log };
    const commandTimeoutMs = Math.max(1_000, options.timeoutMs * 10);
    this.publisher = connectRedis({ ...connect, name: 'edgecache-publish', commandTimeoutMs });
    // The reader's blocking XREAD holds its connection: it has one of its own.
    this.reader = connectRedis({ ...connect, name: 'edgecache-purge-stream', commandTimeoutMs: BLOCK_MS + commandTimeoutMs });
    this.publisher.on('ready', () => this.drainBacklog());
    // A (re)connection: purges may have been published meanwhile. The local tiers stop answering at once (before
    // any request can be served from them) and until the node has read and applied what it missed.
    // Cut off: the node keeps serving what it holds (it cannot know what it misses), but is no longer caught up.
    this.reader.on('close', () => {
      this.synced = false;
    });
    this.reader.on('ready', () => {
      this.synced = false;
      this.setTrust(false);
      this.wakeReader?.();
    });
  }

  /** Starts applying the purges other nodes publish (and reading the stream). */
  listen(listener: BroadcastListener): void {
    this.listener = listener;
    listener.trust(this.trusted);
    this.running = this.run();
  }

  /** Whether the node is connected to the stream and has applied everything in it. */
  get caughtUp(): boolean {
    return this.synced;
  }

  private setTrust(trusted: boolean): void {
    if (this.trusted === trusted) return;
    this.trusted = trusted;
    this.listener?.trust(trusted);
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
      await this.publisher.xadd(this.streamKey, 'MAXLEN', '~', this.streamLength, '*', FIELD, text);
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

  /** Reads the stream for as long as the broadcast is open. Never rejects. */
  private async run(): Promise<void> {
    while (!this.closed) {
      if (this.reader.status !== 'ready') {
        await new Promise<void>((resolve) => {
          this.wakeReader = resolve;
          if (this.reader.status === 'ready' || this.closed) resolve();
        });
        this.wakeReader = undefined;
        continue;
      }
      try {
        if (!this.synced) {
          await this.catchUp();
          continue;
        }
        const reply = (await this.reader.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', this.streamKey, this.position.id)) as
          | Array<[string, StreamEntries]>
          | null;
        const entries = reply?.[0]?.[1];
        if (entries && entries.length > 0) {
          if (await this.trimmedPastPosition()) await this.dropLocal('the purge stream was trimmed past this node\'s position');
          else await this.applyEntries(entries);
        }
        this.readFaults.ok();
      } catch (err) {
        if (this.closed) return;
        this.readFaults.fail({ err: errorText(err) });
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  /**
   * After a (re)connection: checks the epoch and the stream against the node's position, drops the local tiers
   * when it cannot know what it missed, applies what it missed, and only then lets the local tiers answer again.
   */
  private async catchUp(): Promise<void> {
    const fresh = randomUUID();
    // SET NX GET: the epoch in place, or this one when there was none (Redis lost its data, or never had any).
    const previous = (await this.reader.call('SET', this.epochKey, fresh, 'NX', 'GET')) as string | null;
    const epoch = previous ?? fresh;
    if (this.position.epoch !== epoch) {
      const reason =
        this.position.epoch === undefined ? 'no position in the purge stream is known for this data directory' : 'Redis has a new epoch (it lost its data, or another one took over)';
      await this.dropLocal(reason, epoch);
    } else if (await this.trimmedPastPosition()) {
      await this.dropLocal('the purge stream was trimmed past this node\'s position');
    }
    for (;;) {
      const reply = (await this.reader.xread('COUNT', READ_COUNT, 'STREAMS', this.streamKey, this.position.id)) as Array<[string, StreamEntries]> | null;
      const entries = reply?.[0]?.[1];
      if (!entries || entries.length === 0) break;
      await this.applyEntries(entries);
    }
    this.synced = true;
    this.readFaults.ok();
    this.setTrust(true);
  }

  /**
   * Whether entries after the node's position may have been trimmed from the stream before it read them. The stream
   * is trimmed from its head: while the entry at the position is still there, nothing after it is gone. When it is
   * gone too, entries after it may be, unless it was the last ever added. (A position trimmed alone gives a false
   * alarm: the node drops its local tiers once, needlessly.)
   */
  private async trimmedPastPosition(): Promise<boolean> {
    const { id } = this.position;
    if (id === '0-0') {
      // Nothing read yet: trimmed if anything was ever removed from the stream.
      const info = await this.streamInfo();
      return info !== undefined && Number(info['entries-added']) > Number(info.length);
    }
    if ((await this.reader.xrange(this.streamKey, id, id)).length > 0) return false;
    const info = await this.streamInfo();
    if (info === undefined) return true;
    const last = info['last-generated-id'];
    return typeof last !== 'string' || compareStreamIds(last, id) > 0;
  }

  /** XINFO STREAM as a record, or undefined when the stream does not exist. */
  private async streamInfo(): Promise<Record<string, unknown> | undefined> {
    let reply: unknown[];
    try {
      reply = (await this.reader.xinfo('STREAM', this.streamKey)) as unknown[];
    } catch (err) {
      if (err instanceof Error && /no such key/i.test(err.message)) return undefined;
      throw err;
    }
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1];
    return out;
  }

  /**
   * Drops everything in this node's memory and disk tiers (a hard purge of everything, within the host) and moves
   * its position to the end of the stream: what it may have missed can no longer be read.
   */
  private async dropLocal(reason: string, epoch = this.position.epoch): Promise<void> {
    const info = await this.streamInfo();
    const last = typeof info?.['last-generated-id'] === 'string' ? (info['last-generated-id'] as string) : '0-0';
    const wasTrusted = this.trusted;
    this.setTrust(false);
    // Without a position (a new data directory) there is nothing to report: whatever the disk holds is dropped quietly.
    const known = this.position.epoch !== undefined;
    if (known) this.log.warn({ reason }, 'purge broadcast: purges may have been missed; dropping this node\'s memory and disk tiers');
    const listener = this.listener;
    if (listener) {
      if (known) this.stats.localTierDrops++;
      // Quietly (not counted as an operator's purge) when there was no position to lose.
      await listener.apply({ selector: { all: true }, soft: false, ...(!known && { invalidation: true }) }).catch((err: unknown) => this.log.error({ err: errorText(err) }, 'purge broadcast: dropping the local tiers failed'));
    }
    await this.savePosition({ ...this.position, epoch, id: last });
    if (wasTrusted) this.setTrust(true);
  }

  private async applyEntries(entries: StreamEntries): Promise<void> {
    const listener = this.listener;
    for (const [id, fields] of entries) {
      const text = fieldValue(fields);
      const message = text === undefined ? undefined : parseMessage(text);
      if (message === undefined) {
        this.badMessages.warn({ id });
      } else if (message.from !== this.nodeId && listener) {
        this.stats.purgesReceived++;
        const request: PurgeRequest = { selector: message.selector, soft: message.soft, ...(message.invalidation && { invalidation: true }) };
        await listener.apply(request).catch((err: unknown) => this.log.error({ err: errorText(err), selector: request.selector }, 'purge broadcast: applying a received purge failed'));
      }
      this.position = { ...this.position, id };
    }
    await this.savePosition(this.position);
  }

  private async savePosition(position: StreamPosition): Promise<void> {
    this.position = position;
    await this.positionFile.write(position).catch((err: unknown) => this.log.error({ err: errorText(err) }, 'purge broadcast: cannot record the position in the purge stream'));
  }

  /** Stops reading and closes both connections (received purges still being applied are awaited). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeReader?.();
    this.listener = undefined;
    // The blocking read ends when its connection does.
    this.reader.disconnect(false);
    await this.running;
    await Promise.all([closeRedis(this.publisher), closeRedis(this.reader)]);
  }
}

/**
 * A node-wide purge that every other node sharing the Redis applies too: it purges this node (Redis included),
 * then publishes; purges published by the others are applied here to everything but Redis. `trust` says whether
 * the node's memory and disk tiers may answer (see BroadcastListener).
 */
export function broadcasting(purgeNode: NodePurge, broadcast: PurgeBroadcast, trust: (trusted: boolean) => void): (request: PurgeRequest) => Promise<number> {
  broadcast.listen({ apply: (request) => purgeNode(request, 'host'), trust });
  return async (request) => {
    const affected = await purgeNode(request);
    await broadcast.publish(request);
    return affected;
  };
}

/** The purge stream shared with the other nodes (--redis). */
export function createBroadcast(config: EdgecacheConfig, stats: PurgeBroadcastOptions['stats'], log: Logger): PurgeBroadcast {
  return new PurgeBroadcast({
    url: config.redis,
    prefix: config.redisPrefix,
    timeoutMs: config.redisTimeout,
    dataDir: config.dataDir,
    streamLength: config.redisPurgeStreamLength,
    stats,
    log: log.child({ component: 'purge-broadcast' }),
  });
}

function fieldValue(fields: string[]): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === FIELD) return fields[i + 1];
  return undefined;
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
