/**
 * The cluster primary's per-key fill locks: the first worker that asks for a cold key fetches it, the others
 * wait and are told, when it is done, whether it stored something they can read from the shared disk tier. A
 * lock whose holder dies is released as "nothing stored", so its waiters fetch for themselves.
 */

/** What a worker that waited is told (see Coordinator.acquireFill). */
export interface WaiterAnswer {
  owner: false;
  stored: boolean;
}

interface Lock {
  holder: number;
  waiters: Array<(answer: WaiterAnswer) => void>;
}

export class FillLocks {
  private readonly locks = new Map<string, Lock>();

  /** Worker `holder` asks to fetch `key`: it owns it now, or waits for the owner's release. */
  acquire(key: string, holder: number): { owner: true } | Promise<WaiterAnswer> {
    const lock = this.locks.get(key);
    if (lock === undefined) {
      this.locks.set(key, { holder, waiters: [] });
      return { owner: true };
    }
    return new Promise((resolve) => lock.waiters.push(resolve));
  }

  /** The holder is done; `stored`: the entry is committed in the shared tiers. Ignored from any other worker. */
  release(key: string, holder: number, stored: boolean): void {
    if (this.locks.get(key)?.holder === holder) this.wake(key, stored);
  }

  /** A worker exited: the locks it held are released, nothing stored. */
  releaseAll(holder: number): void {
    for (const [key, lock] of this.locks) if (lock.holder === holder) this.wake(key, false);
  }

  private wake(key: string, stored: boolean): void {
    const lock = this.locks.get(key);
    if (lock === undefined) return;
    this.locks.delete(key);
    for (const wake of lock.waiters) wake({ owner: false, stored });
  }
}
