/**
 * What one edgecache process must agree on with the others when several share a port and a disk tier
 * (--workers): who fetches a cold key, and how a purge reaches every process's memory tier. A single process
 * coordinates with nobody (LocalCoordinator); workers ask the cluster primary (worker.ts).
 */
import type { PurgeSelector } from '../../cache-store/purge.js';

/** A purge, or an invalidation after an unsafe request (RFC 9111 §4.4), to apply in every process. */
export interface PurgeRequest {
  selector: PurgeSelector;
  soft: boolean;
  /** Counted as an invalidation rather than an operator's purge. */
  invalidation?: boolean;
}

/** Either this process fetches the key (and releases when done), or another process already did. */
export type FillLease = { owner: true; release(stored: boolean): void } | { owner: false; stored: boolean };

export interface Coordinator {
  /** Asks to be the process that fetches `key`; waits (at most `waitMs`) while another process does. */
  acquireFill(key: string, waitMs: number): Promise<FillLease>;
  /** Applies a purge in every process; resolves with the number of entries affected. */
  purge(request: PurgeRequest): Promise<number>;
  /** True when fills must be coordinated across processes (so callers can skip the work otherwise). */
  readonly shared: boolean;
}

const OWNER: FillLease = { owner: true, release: () => undefined };

export class LocalCoordinator implements Coordinator {
  readonly shared = false;

  constructor(private readonly purgeLocally: (request: PurgeRequest) => Promise<number>) {}

  acquireFill(): Promise<FillLease> {
    return Promise.resolve(OWNER);
  }

  purge(request: PurgeRequest): Promise<number> {
    return this.purgeLocally(request);
  }
}
