/**
 * At most `limit` tasks at a time per key, the others waiting in order: used for the waiters of a fill whose
 * response they may not share (private, no-store, another Vary variant...), which must each ask the origin for
 * their own answer, but not all at once. A waiting task's wait is bounded too (as nginx's proxy_cache_lock_timeout
 * bounds its lock): past `maxWaitMs` it starts anyway, so a slow origin delays a queue but never parks a
 * request for ever. Keys with nothing running or waiting are forgotten, so memory follows the load.
 */

/** A task runs until the promise it returns settles. */
export type LimitedTask = () => Promise<unknown>;

interface Waiting {
  task: LimitedTask;
  timer: NodeJS.Timeout | undefined;
}

interface Slot {
  active: number;
  waiting: Waiting[];
}

export class KeyedLimiter {
  private readonly slots = new Map<string, Slot>();

  constructor(
    readonly limit: number,
    private readonly maxWaitMs: number,
  ) {
    if (!(limit >= 1)) throw new RangeError('limit must be at least 1');
  }

  /** Runs `task` now when fewer than `limit` tasks of `key` are running, else when one ends (or maxWaitMs passes). */
  run(key: string, task: LimitedTask): void {
    let slot = this.slots.get(key);
    if (slot === undefined) this.slots.set(key, (slot = { active: 0, waiting: [] }));
    if (slot.active < this.limit) {
      this.start(key, slot, task);
      return;
    }
    const waiting: Waiting = { task, timer: undefined };
    if (Number.isFinite(this.maxWaitMs)) {
      waiting.timer = setTimeout(() => {
        const at = (slot as Slot).waiting.indexOf(waiting);
        if (at === -1) return;
        (slot as Slot).waiting.splice(at, 1);
        this.start(key, slot as Slot, task);
      }, this.maxWaitMs);
      waiting.timer.unref();
    }
    slot.waiting.push(waiting);
  }

  /** Tasks of `key` running and waiting. */
  load(key: string): { active: number; waiting: number } {
    const slot = this.slots.get(key);
    return { active: slot?.active ?? 0, waiting: slot?.waiting.length ?? 0 };
  }

  /** Keys with tasks running or waiting. */
  get size(): number {
    return this.slots.size;
  }

  private start(key: string, slot: Slot, task: LimitedTask): void {
    slot.active++;
    let running: Promise<unknown>;
    try {
      running = Promise.resolve(task());
    } catch (err) {
      running = Promise.reject(err);
    }
    void running
      .catch(() => undefined)
      .then(() => {
        slot.active--;
        while (slot.active < this.limit) {
          const next = slot.waiting.shift();
          if (next === undefined) break;
          clearTimeout(next.timer);
          this.start(key, slot, next.task);
        }
        if (slot.active === 0 && slot.waiting.length === 0 && this.slots.get(key) === slot) this.slots.delete(key);
      });
  }
}
