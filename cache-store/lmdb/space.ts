/**
 * The disk tier's space on disk: the pages LMDB really uses, the most the data file may hold (`maxBytes`, the
 * "map"), and the file space reserved ahead of LMDB's writes so that a full filesystem can never fail a page
 * write.
 *
 * Why the file is reserved ahead: lmdb-js 3.5.6 (its LMDB fork, mdb.c `mdb_page_flush`) reports a page write
 * that fails with an errno (write(2) returns -1: ENOSPC on a full filesystem, EDQUOT, EFBIG) by `sprintf`-ing a
 * message into `malloc(100)`; with 8-digit file offsets the message is 104 bytes or more and overwrites the next
 * heap chunk's header. glibc then aborts the process ("corrupted size vs. prev_size", "malloc(): invalid next
 * size", a sysmalloc assertion) at some later allocation. (A short write is reported as EIO without the
 * message, which is why the crash came and went.) So LMDB must never write a page where the filesystem has no
 * block for it: before any write transaction does its work, `ensure` checks that the pages it may take are
 * already allocated in the file — zero-filled here, or written by LMDB before — or are free pages inside it;
 * otherwise the work is not done and the tier backs off (see LmdbTier). The zero-fill runs inside a write
 * transaction, when LMDB's writer lock keeps every process from writing pages, and only past the file's end.
 *
 * Why pages: LMDB keeps small values several to a page, larger ones on whole "overflow" pages, plus B-tree
 * branch pages and index rows, and the file also holds free pages that only later transactions can reuse. A
 * budget of record bytes let the file reach 3.4× --disk-max with 1 KiB objects. The budget is now checked
 * against the pages every tree really uses (`usedPages`, read from LMDB inside the write transaction), with
 * `reservePages` kept free for the pages a transaction frees but cannot reuse yet.
 *
 * lmdb-js grows its memory map as the file grows (mdb.c mdb_page_alloc), so MDB_MAP_FULL never comes from
 * LMDB itself: the map limit is enforced here, and meeting it takes the same path as a full disk.
 */
import { closeSync, fstatSync, openSync, statfsSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from 'lmdb';
import type { LmdbDbs } from './env.js';

/** Why a write could not be given room. */
export type SpaceShortage = 'disk' | 'map';

/** Thrown inside a write transaction whose pages cannot be guaranteed: the transaction's work is rolled back. */
export class NoSpaceError extends Error {
  constructor(readonly shortage: SpaceShortage) {
    super(shortage === 'disk' ? 'disk tier: the filesystem is full' : 'disk tier: the data file is at --disk-max (map full)');
    this.name = 'NoSpaceError';
  }
}

/**
 * How far the data file may pass maxBytes: LMDB puts each chunk of a large body on contiguous pages and
 * extends the file when the free pages are too scattered for one; the tier then keeps more of the budget free.
 * Measured at 1-7 % (docs/disk-tier.md); a file larger than this at open was made with a larger budget.
 */
export const FILE_MARGIN = 0.1;

/** Errors of a write that mean "no space" (or the file may not grow), not a broken environment. */
const SPACE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO']);

export function isSpaceError(err: unknown): boolean {
  return err instanceof NoSpaceError || SPACE_ERRORS.has((err as NodeJS.ErrnoException | null)?.code ?? '');
}

/**
 * Pages of copy-on-write a transaction may take beyond its values' own pages: the leaf-to-root path of each
 * tree it touches (a record write touches seven) and the free list's own pages. Fewer for a tiny budget.
 */
const TXN_OVERHEAD_PAGES = 32;
/** Zero-filled per step (at most, unless one transaction needs more): a step costs a few ms of the event loop. */
const FILL_STEP = 4 * 1024 * 1024;
const ZEROS = Buffer.alloc(1024 * 1024);
/** While the disk is full, how often the next write looks at the filesystem's free space (one statfs). */
const PROBE_INTERVAL_MS = 2_000;
/** LMDB's page header, in front of an overflow value. */
const PAGE_HEADER = 16;

interface NativeDbi {
  stat(): { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
}
interface NativeEnv {
  info(): { lastPageNumber: number };
}

export interface SpaceOptions {
  /** The environment's directory (data.mdb is in it). */
  path: string;
  /** The most the data file may hold. */
  maxBytes: number;
  /** Bytes one write transaction may carry (WriteQueue's maxBatchBytes). */
  maxBatchBytes: number;
}

export class DiskSpace {
  readonly pageSize: number;
  /** Pages the data file may hold (maxBytes / page size): the map limit. */
  readonly pageLimit: number;
  /**
   * Pages kept out of the budget beyond two transactions' worth (see reserve()): grown each time the file
   * outgrows the map anyway (fragmentation, a reader holding old pages).
   */
  extraReservePages = 0;
  private readonly file: string;
  private readonly trees: Database[];
  private readonly env: NativeEnv | undefined;
  /** Bytes of the data file known to be allocated (written by LMDB or zero-filled here), as of the last look. */
  private allocated: number;
  /** Set while the filesystem is full: the pages the file has, which the budget then shrinks to. */
  private fullCap: number | null = null;
  /** Committed pages seen after the last commit (LMDB's high-water mark: it never decreases). */
  private committedHigh: number;
  private readonly aheadBytes: number;
  private readonly overheadPages: number;
  private readonly maxBatchBytes: number;
  /** Bytes on disk per byte of record (used pages / accounted bytes), as last measured by a write: 1 or more. */
  private ratio = 1;
  /** Pages of the largest record written lately (decays by 1/1000 per write). */
  private largestRecord = 0;
  /** While the disk is full: when to look at the filesystem's free space again (Date.now). */
  private nextProbeAt = 0;

  constructor(
    private readonly dbs: LmdbDbs,
    options: SpaceOptions,
  ) {
    this.file = join(options.path, 'data.mdb');
    this.trees = [dbs.meta, dbs.bodies, dbs.info, dbs.atime, dbs.lru, dbs.expiry, dbs.tags, dbs.longKeys];
    this.env = (dbs.env as unknown as { env?: NativeEnv }).env;
    const stats = dbs.env.getStats() as { pageSize?: number };
    this.pageSize = stats.pageSize ?? 4096;
    this.pageLimit = Math.floor(options.maxBytes / this.pageSize);
    this.maxBatchBytes = options.maxBatchBytes;
    this.aheadBytes = Math.max(FILL_STEP, 2 * options.maxBatchBytes);
    this.overheadPages = Math.min(TXN_OVERHEAD_PAGES, Math.max(8, Math.floor(this.pageLimit / 8)));
    this.allocated = this.fileSize();
    this.committedHigh = this.committedPages();
  }

  /** Pages the budget may fill: the map (or, while the disk is full, the file as it is) less the reserve. */
  targetPages(): number {
    return Math.max(0, this.capPages() - this.reserve());
  }

  /**
   * Pages kept free: two transactions' worth (the current one's frees are not reusable until it commits, the
   * previous one's until it is synced; a record larger than a batch is a transaction of its own, and its
   * overwrite needs room for both copies), LMDB's own pages (meta, main and free-list trees), and the extra
   * learnt from overshoots; at most half the map.
   */
  reserve(): number {
    const txnPages = Math.max(Math.ceil((this.batchLimit() * this.ratio) / this.pageSize), Math.ceil(this.largestRecord));
    return Math.min(Math.floor(this.capPages() / 2), 2 * txnPages + this.overheadPages + this.extraReservePages);
  }

  /**
   * Most bytes of records one transaction should carry: maxBatchBytes, but no more than an eighth of the map in
   * pages (a transaction of small records takes a page or more each), so that the reserve stays at most about a
   * quarter of it. (Smaller transactions would leave more of the budget to records, but each commit waits for the
   * previous one's sync: with a sixteenth, 10 % of the fills of a 50 MB budget were declined as the queue filled.)
   */
  batchLimit(): number {
    return Math.min(this.maxBatchBytes, Math.max(64 * 1024, Math.floor((this.capPages() * this.pageSize) / 8 / this.ratio)));
  }

  /** Whether the file has outgrown the map by more than FILE_MARGIN (then writes pause as for a full map). */
  pastMargin(): boolean {
    return this.committedHigh > this.pageLimit * (1 + FILE_MARGIN);
  }

  /**
   * A write of a record of `recordPages` measured `usedPages` for `bytes` of records (inside its transaction):
   * updates the bytes-on-disk ratio and the largest record.
   */
  observe(usedPages: number, bytes: number, recordPages: number): void {
    if (bytes >= 64 * 1024) this.ratio = Math.max(1, (usedPages * this.pageSize) / bytes);
    this.largestRecord = Math.max(recordPages, this.largestRecord * 0.999);
  }

  capPages(): number {
    return this.fullCap === null ? this.pageLimit : Math.min(this.pageLimit, this.fullCap);
  }

  get diskFull(): boolean {
    return this.fullCap !== null;
  }

  /**
   * Pages used by every tree of the tier (branch, leaf and overflow pages). Inside a write transaction this is
   * the transaction's own view, changes so far included. (lmdb-js's `getStats()` also reads the environment
   * and the free list: 4 native calls per database. The native `stat()` of each database is one.)
   */
  usedPages(): number {
    let pages = 0;
    for (const db of this.trees) {
      const native = (db as unknown as { db?: NativeDbi }).db;
      const stat = native ? native.stat() : (db.getStats() as ReturnType<NativeDbi['stat']>);
      pages += stat.treeBranchPageCount + stat.treeLeafPageCount + stat.overflowPages;
    }
    return pages;
  }

  /** Pages of the file LMDB has committed (its last page + 1): never decreases. */
  committedPages(): number {
    const info = this.env ? this.env.info() : (this.dbs.env.getStats() as { lastPageNumber?: number });
    return (info.lastPageNumber ?? 0) + 1;
  }

  /** Pages a value of `bytes` takes: its own overflow pages when it does not fit half a page, else a share of a leaf. */
  valuePages(bytes: number): number {
    return bytes > this.pageSize / 2 - 64 ? Math.ceil((bytes + PAGE_HEADER) / this.pageSize) : bytes / (this.pageSize / 2);
  }

  /** Size of the data file on disk. */
  fileSize(): number {
    try {
      return statSync(this.file).size;
    } catch {
      return 0;
    }
  }

  /**
   * Inside a write transaction, before its work: whether `needPages` more pages (after `inflightBytes` of this
   * transaction's earlier work) will land on allocated blocks. Extends the reservation when it may; else accepts
   * when the file's free pages clearly cover them. Returns the shortage otherwise; nothing has been written then.
   */
  ensure(needPages: number, inflightBytes: number): SpaceShortage | null {
    if (this.fullCap !== null && Date.now() >= this.nextProbeAt) this.probe();
    const need = Math.ceil(needPages) + this.overheadPages;
    const committed = this.committedPages();
    const end = committed + Math.ceil(inflightBytes / this.pageSize) + need;
    if (end * this.pageSize <= this.allocated) return null;
    this.allocated = Math.max(this.allocated, this.fileSize()); // another process may have extended it
    if (end * this.pageSize <= this.allocated) return null;
    const limit = this.pageLimit * this.pageSize;
    if (this.fullCap === null && this.allocated < limit) {
      // Reserve ahead (aheadBytes past LMDB's end), a step at a time unless this transaction needs more.
      const ahead = Math.min(limit, committed * this.pageSize + this.aheadBytes);
      this.fill(Math.min(limit, Math.max(end * this.pageSize, Math.min(ahead, this.allocated + FILL_STEP))));
      if (end * this.pageSize <= this.allocated) return null;
    }
    // Past the reservation: LMDB takes pages from the file's free list first. The pages used include this
    // transaction's changes so far; the pages it freed are not reusable before it commits, nor are the
    // previous transaction's before they are synced: half the reserve stands for them.
    const free = Math.floor(this.allocated / this.pageSize) - this.usedPages() - Math.ceil(this.reserve() / 2);
    if (free >= need) return null;
    return end > this.pageLimit ? 'map' : 'disk';
  }

  /**
   * After a commit: notes pages LMDB wrote past the reservation (allocated too, now), and returns how many
   * pages the file grew beyond the map limit (0 normally): then the reserve was too small for this workload.
   */
  afterCommit(): number {
    const committed = this.committedPages();
    if (committed <= this.committedHigh) return 0;
    const before = this.committedHigh;
    this.committedHigh = committed;
    if (committed * this.pageSize > this.allocated) this.allocated = Math.max(committed * this.pageSize, this.fileSize());
    return committed > this.pageLimit ? committed - Math.max(before, this.pageLimit) : 0;
  }

  /** A commit failed for lack of space (LMDB wrote past the reservation onto a full disk): stop growing. */
  commitFailed(): void {
    this.allocated = this.fileSize();
    this.fullCap = Math.floor(this.allocated / this.pageSize);
    this.nextProbeAt = Date.now() + PROBE_INTERVAL_MS;
  }

  /**
   * Whether the filesystem has room again (called when the back-off ends): lifts the cap when free space is
   * at least one reservation step, so that the next writes can extend the file (a step at a time, until the
   * disk is full again).
   */
  probe(): boolean {
    if (this.fullCap === null) return true;
    this.nextProbeAt = Date.now() + PROBE_INTERVAL_MS;
    try {
      const fs = statfsSync(this.file);
      if (fs.bavail * fs.bsize < FILL_STEP) return false;
    } catch {
      return false;
    }
    this.fullCap = null;
    return true;
  }

  /** Zero-fills the data file from its end up to `to` bytes; on a full disk, keeps what it wrote and caps the file. */
  private fill(to: number): void {
    let fd: number | undefined;
    try {
      fd = openSync(this.file, 'r+');
      let at = fstatSync(fd).size;
      while (at < to) {
        at += writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, to - at), at);
      }
      this.allocated = Math.max(this.allocated, at);
    } catch (err) {
      this.allocated = Math.max(this.allocated, this.fileSize());
      if (!isSpaceError(err)) throw err;
      this.fullCap = Math.floor(this.allocated / this.pageSize);
      this.nextProbeAt = Date.now() + PROBE_INTERVAL_MS;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}
