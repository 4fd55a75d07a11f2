/**
 * Fill leases across nodes (with --redis): before fetching a cold key (or revalidating a stale one) a node takes a
 * short lease in Redis (`SET <prefix>l:<key> <token> NX PX --redis-lease`); the nodes that find it taken wait for
 * the holder's message on `<prefix>fills` — "filled" once its answer is in Redis, "release" when it will not be (not
 * storable or shareable, too large for Redis, a write declined, an origin error) — and then read the entry from Redis
 * or fetch on their own. The lease is renewed while the fill lasts, and released only by its holder (the token is
 * compared in a Lua script, which also publishes, so that no waiter can miss the message between the two). A holder
 * that dies costs its waiters at most the lease: they ask again when it runs out, and one of them takes it.
 *
 * Redis unavailable (not connected, or not answering within --redis-timeout): the node fetches as if it held the
 * lease, coalescing only within itself. A waiter whose connection to Redis drops stops waiting and fetches.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { TierLogger } from '../../cache-store/log-throttle.js';
import { fillChannel, leaseKey } from '../../cache-store/redis/codec.js';
import { closeRedis, connectRedis } from '../../cache-store/redis/connect.js';
import type { Coordinator, FillLease, PurgeRequest } from './coordinator.js';

/**
 * Takes the lease (1), or says who holds it and for how much longer (ms): a token, or FILLED (the holder's answer is
 * in Redis); 0 when it was gone meanwhile.
 */
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
local holder = redis.call('GET', KEYS[1])
if not holder then return 0 end
return {holder, redis.call('PTTL', KEYS[1])}
`;

/** Extends the lease while its holder still holds it. */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/**
 * The holder is done (ARGV: token, 'filled' or 'release', channel, message, how long FILLED stays): the lease
 * becomes FILLED for a moment (a node asking just after the message reads Redis at once) or is deleted, and the
 * waiters are told, in one script.
 */
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'filled' then redis.call('SET', KEYS[1], '=filled', 'PX', ARGV[5]) else redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`;

const FILLED = '=filled';
/** How long a lease stays FILLED after its holder's answer landed in Redis (ms). */
const FILLED_MS = 1_000;

type Outcome = 'filled' | 'release' | 'lost' | 'timeout';

export interface RedisLeasesOptions {
  url: string;
  prefix: string;
  /** Lease time (ms): renewed every third of it while the fill lasts. */
  leaseMs: number;
  /** Longest a lease command may take before the node fetches on its own (--redis-timeout). */
  timeoutMs: number;
  log: TierLogger;
  /** Resolves once the writes queued so far reached Redis; then whether the key's write landed there. */
  landed: (key: string) => Promise<boolean>;
}

export class RedisLeases {
  private readonly client: Redis;
  private readonly subscriber: Redis;
  private readonly channel: string;
  private readonly waiters = new Map<string, Set<(outcome: Outcome) => void>>();
  private subscribed = false;
  private closed = false;

  constructor(private readonly options: RedisLeasesOptions) {
    this.channel = fillChannel(options.prefix);
    const connect = { url: options.url, log: options.log };
    this.client = connectRedis({ ...connect, name: 'edgecache-lease', commandTimeoutMs: options.timeoutMs });
    this.subscriber = connectRedis({ ...connect, name: 'edgecache-fills', commandTimeoutMs: 0, subscriber: true });
    this.subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.channel) this.receive(text);
    });
    // Subscribed again on every (re)connection; leases are asked for only once Redis confirmed it.
    this.subscriber.on('ready', () => {
      this.subscriber
        .subscribe(this.channel)
        .then(() => (this.subscribed = !this.closed))
        .catch(() => undefined);
    });
    // Messages sent while the subscriber was away are lost: whoever waits stops waiting and fetches.
    this.subscriber.on('close', () => {
      this.subscribed = false;
      this.wakeAll('lost');
    });
  }

  /** Whether leases can be asked for now (both connections up, and the fills channel subscribed). */
  private usable(): boolean {
    return !this.closed && this.subscribed && this.client.status === 'ready';
  }

  /**
   * Takes the lease on `key` (owner: fetch, then release), or waits for its holder (at most `waitMs`): stored true
   * when the holder's answer is in Redis. Never rejects; Redis unavailable makes this node the owner at once.
   */
  async acquire(key: string, waitMs: number): Promise<FillLease> {
    const deadline = Date.now() + waitMs;
    const token = randomUUID();
    const redisKey = leaseKey(this.options.prefix, key);
    for (;;) {
      if (!this.usable()) return LOCAL;
      // Listening before asking: the holder's message cannot arrive unheard between the answer and the wait.
      const wait = this.listen(key);
      let reply: unknown;
      try {
        reply = await this.client.eval(ACQUIRE, 1, redisKey, token, this.options.leaseMs);
      } catch {
        wait.cancel();
        return LOCAL;
      }
      if (reply === 1) {
        wait.cancel();
        return this.holding(key, redisKey, token);
      }
      if (!Array.isArray(reply)) {
        // Gone between the SET and the GET: ask again.
        wait.cancel();
        continue;
      }
      const [holder, ttl] = reply as [string, number];
      if (holder === FILLED) {
        wait.cancel();
        return { owner: false, stored: true };
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        wait.cancel();
        return { owner: false, stored: false };
      }
      // Until the lease runs out (a few ms more, so that it has), unless the holder speaks first.
      const outcome = await wait.until(Math.min(ttl > 0 ? ttl + 5 : this.options.leaseMs, remaining));
      if (outcome === 'filled') return { owner: false, stored: true };
      if (outcome === 'release' || outcome === 'lost') return { owner: false, stored: false };
      // The lease ran out without a word (its holder died, or is slow): ask again; one of the waiters takes it.
      if (Date.now() >= deadline) return { owner: false, stored: false };
    }
  }

  private holding(key: string, redisKey: string, token: string): FillLease {
    const { leaseMs } = this.options;
    const renew = setInterval(() => {
      if (this.usable()) this.client.eval(RENEW, 1, redisKey, token, leaseMs).catch(() => undefined);
    }, Math.max(10, Math.floor(leaseMs / 3)));
    renew.unref();
    let released = false;
    return {
      owner: true,
      release: (stored) => {
        if (released) return;
        released = true;
        clearInterval(renew);
        void (async () => {
          const filled = stored && (await this.options.landed(key).catch(() => false));
          if (this.closed) return;
          const message = JSON.stringify({ k: key, r: filled ? 'filled' : 'release' });
          await this.client.eval(RELEASE, 1, redisKey, token, filled ? 'filled' : 'release', this.channel, message, FILLED_MS).catch(() => undefined);
        })();
      },
    };
  }

  private listen(key: string): { until(ms: number): Promise<Outcome>; cancel(): void } {
    let resolve: (outcome: Outcome) => void = () => undefined;
    const promise = new Promise<Outcome>((r) => (resolve = r));
    let set = this.waiters.get(key);
    if (set === undefined) {
      set = new Set();
      this.waiters.set(key, set);
    }
    set.add(resolve);
    const cancel = (): void => {
      const current = this.waiters.get(key);
      current?.delete(resolve);
      if (current?.size === 0) this.waiters.delete(key);
    };
    return {
      until: async (ms) => {
        const timer = setTimeout(() => resolve('timeout'), ms);
        const outcome = await promise;
        clearTimeout(timer);
        cancel();
        return outcome;
      },
      cancel,
    };
  }

  private receive(text: string): void {
    let message: { k?: unknown; r?: unknown };
    try {
      message = JSON.parse(text) as { k?: unknown; r?: unknown };
    } catch {
      return;
    }
    if (typeof message.k !== 'string' || (message.r !== 'filled' && message.r !== 'release')) return;
    const set = this.waiters.get(message.k);
    if (set === undefined) return;
    this.waiters.delete(message.k);
    for (const wake of set) wake(message.r);
  }

  private wakeAll(outcome: Outcome): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of all) for (const wake of set) wake(outcome);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeAll('lost');
    await Promise.all([closeRedis(this.client), closeRedis(this.subscriber)]);
  }
}

/** The lease when Redis cannot be asked: this node fetches (coalescing within itself only). */
const LOCAL: FillLease = { owner: true, release: () => undefined };

/**
 * A node's coordinator with --redis: the processes of the node agree first (the inner coordinator: the cluster
 * primary's fill locks under --workers), and the one that would fetch then asks Redis, so that a cold key costs
 * one origin fetch across every node.
 */
export class NetworkCoordinator implements Coordinator {
  readonly shared = true;

  constructor(
    private readonly inner: Coordinator,
    private readonly leases: RedisLeases,
  ) {}

  async acquireFill(key: string, waitMs: number): Promise<FillLease> {
    const started = Date.now();
    const local = this.inner.shared ? await this.inner.acquireFill(key, waitMs) : LOCAL;
    if (!local.owner) return local;
    const network = await this.leases.acquire(key, Math.max(0, waitMs - (Date.now() - started)));
    if (network.owner) {
      return {
        owner: true,
        release: (stored) => {
          network.release(stored);
          local.release(stored);
        },
      };
    }
    // Another node fetched (or gave up): this node's other processes look it up as this one does.
    local.release(network.stored);
    return network;
  }

  purge(request: PurgeRequest): Promise<number> {
    return this.inner.purge(request);
  }
}
