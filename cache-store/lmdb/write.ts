/**
 * The write transaction of one record: make room, copy the body (inline in the meta value, or in chunks),
 * replace the old record, index the new one, update the accounting. It runs inside one child transaction, so a
 * crash or a failed commit leaves either the old record or the new one, never a mix. An entry whose body is
 * already stored (a soft purge, a 304 refresh) can instead have only its metadata rewritten (rewriteMeta).
 */
import { bodyChunks, type Body } from '../body.js';
import type { CacheEntry, CacheRecord } from '../entry.js';
import { addCount, EMPTY, evict, readCount, readHousekeeping, removeEntry } from './budget.js';
import { chunkCountFor, decodeRecord, finishRecord, HEADER_BYTES, prepareRecord, type PreparedRecord } from '../record-codec.js';
import { INFO, isHashedKey, storageKey, type Housekeeping } from './layout.js';
import type { LmdbDbs } from './env.js';
import { fillMarker } from './body-writer.js';
import type { DiskSpace, SpaceShortage } from './space.js';

/** After an eviction the budget is filled to this fraction, so that not every write evicts. */
const LOW_WATER = 0.95;
/** Most entries one write evicts: bounds the transaction. */
const EVICT_MAX_PER_WRITE = 1_000;
/** Pages for a record's rows in atime, lru, expiry, tags and longKeys (a share of a leaf each). */
const INDEX_PAGES = 0.5;

export interface WriteArgs {
  storage: string;
  key: string;
  record: CacheRecord;
  prepared: PreparedRecord;
  /** Bytes charged (recordSize). */
  size: number;
  /** Body id of the stored body this record's body reads from (an overwrite re-storing it), or -1. */
  sourceBodyId: number;
  now: number;
  maxBytes: number;
  chunkSize: number;
  /** The pages the environment uses and may use (the page budget, the file's reservation). */
  space: DiskSpace;
  /** Bytes of this transaction's earlier operations (not yet committed): pages they may have taken too. */
  inflightBytes: number;
  /**
   * The body is already in `bodies`, written while it streamed (body-writer.ts), under this id in this many
   * chunks: the record points at it, its fill marker goes, and when the record is not stored the chunks go too.
   */
  streamed?: { bodyId: number; chunkCount: number };
}

export interface WriteResult {
  stored: boolean;
  evicted: number;
  /** Not stored because the file could not be given room (the disk is full, or the map is). */
  shortage: SpaceShortage | null;
  /** The body id the record is stored with (0 when not stored, or for a Vary record). */
  bodyId: number;
}

export function writeRecord(dbs: LmdbDbs, args: WriteArgs): WriteResult {
  const streamed = args.streamed;
  if (streamed === undefined) return writeRecordOnce(dbs, args);
  dbs.info.removeSync(fillMarker(streamed.bodyId));
  const result = writeRecordOnce(dbs, args);
  if (!result.stored) for (let i = 0; i < streamed.chunkCount; i++) dbs.bodies.removeSync([streamed.bodyId, i]);
  return result;
}

function writeRecordOnce(dbs: LmdbDbs, args: WriteArgs): WriteResult {
  const { storage, key, record, size, now, maxBytes, space, streamed } = args;
  const old = readHousekeeping(dbs, storage);
  const oldSize = old ? old.s : 0;
  let evicted = 0;
  // (A streamed body's chunks are in the file already: only the record's own pages are still needed.)
  const needPages = pagesFor(args.prepared, record.kind === 'entry' && streamed === undefined ? record.body.length : 0, args.chunkSize, space);
  const targetPages = space.targetPages();
  if (needPages > targetPages) {
    // It cannot fit even in an empty file (the file is capped by a full disk, or the record is most of the
    // map): evicting everything for it would be for nothing.
    if (old !== undefined) removeEntry(dbs, storage, old ?? undefined);
    return { stored: false, evicted: 0, shortage: space.diskFull ? 'disk' : null, bodyId: 0 };
  }
  const bytes = readCount(dbs, INFO.bytes);
  const used = space.usedPages();
  space.observe(used, bytes, needPages);
  // The record it replaces frees its pages (reusable after this transaction: the reserve covers the overlap).
  const perByte = used / Math.max(bytes, 1);
  const oldPages = oldSize * perByte;
  if (bytes - oldSize + size > maxBytes || used - oldPages + needPages > targetPages) {
    const target = Math.max(0, Math.floor(maxBytes * LOW_WATER) - size) + oldSize;
    const pages = { target: Math.max(0, Math.floor(targetPages * LOW_WATER - needPages + oldPages)), used: () => space.usedPages(), perByte };
    evicted = evict(dbs, { target, pages, now, exclude: storage, protectBodyId: args.sourceBodyId, maxEntries: EVICT_MAX_PER_WRITE });
    // Still no room: keep the evictions (they commit), skip this record, drop the one it replaces. While the
    // disk is full, the budget is the file as it is: that is a shortage of disk, and writes pause.
    if (readCount(dbs, INFO.bytes) - oldSize + size > maxBytes || space.usedPages() - oldPages + needPages > targetPages) {
      if (old !== undefined) removeEntry(dbs, storage, old ?? undefined);
      return { stored: false, evicted, shortage: space.diskFull ? 'disk' : null, bodyId: 0 };
    }
  }
  // Room in the budget; now room in the file: its pages must land on allocated blocks (see space.ts).
  const shortage = space.ensure(needPages, args.inflightBytes);
  if (shortage !== null) {
    if (old !== undefined) removeEntry(dbs, storage, old ?? undefined);
    return { stored: false, evicted, shortage, bodyId: 0 };
  }
  let bodyId = 0;
  let chunkCount = 0;
  let value: Buffer;
  if (record.kind === 'entry') {
    // A new body id for every write, so an overwrite never mixes chunks, a reader of the old body never sees
    // new bytes, and the id identifies this version of the record (see LmdbTier.decode). The counter lives in
    // `info`, so it is unique across processes.
    if (streamed !== undefined) {
      if (args.prepared.chunkCount !== streamed.chunkCount) throw new Error(`streamed body has ${streamed.chunkCount} chunks, expected ${args.prepared.chunkCount}`);
      bodyId = streamed.bodyId;
      chunkCount = streamed.chunkCount;
      value = finishRecord(args.prepared, bodyId);
    } else {
      bodyId = Math.max(1, readCount(dbs, INFO.nextBodyId));
      dbs.info.putSync(INFO.nextBodyId, bodyId + 1);
      // A small body goes inside the meta value (one read per hit); a larger one into `bodies`, in chunks.
      if (args.prepared.chunkCount > 0) chunkCount = writeChunks(dbs, bodyId, record.body, args.chunkSize);
      value = finishRecord(args.prepared, bodyId, args.prepared.inlineBytes > 0 ? bodyChunks(record.body) : undefined);
    }
  } else {
    value = finishRecord(args.prepared, bodyId);
  }
  // The old record goes after the copy: an overwrite may be re-storing the very body it replaces.
  if (old !== undefined) removeEntry(dbs, storage, old ?? undefined);
  dbs.meta.putSync(storage, value);
  const deletable = record.kind === 'entry' && Number.isFinite(record.meta.deletableAt) ? record.meta.deletableAt : null;
  const tags = record.kind === 'entry' ? [...new Set(record.meta.tags.map(storageKey))] : [];
  const hk: Housekeeping = { a: now, s: size, b: bodyId, c: chunkCount, d: deletable, t: tags };
  dbs.atime.putSync(storage, hk);
  dbs.lru.putSync([now, storage], EMPTY);
  if (deletable !== null) dbs.expiry.putSync([deletable, storage], EMPTY);
  for (const tag of tags) dbs.tags.putSync(tag, storage);
  if (isHashedKey(storage)) dbs.longKeys.putSync(storage, key);
  addCount(dbs, INFO.bytes, size);
  addCount(dbs, INFO.entries, 1);
  return { stored: true, evicted, shortage: null, bodyId };
}

export interface MetaRewriteArgs {
  storage: string;
  key: string;
  /** The entry to store; its body is the one stored with body id `bodyId`. */
  entry: CacheEntry;
  /** Bytes charged for the entry (recordSize). */
  size: number;
  bodyId: number;
  maxBytes: number;
  space: DiskSpace;
  inflightBytes: number;
}

/**
 * Rewrites the metadata of the entry stored under `storage` (lifetimes, headers, policy, tags) and keeps its body,
 * when the stored record is still the version with body `bodyId`: its chunks are not touched, and an inline body
 * is copied from the stored value. The meta value, the housekeeping record, the expiry and tag rows and the
 * accounting follow the new metadata; access time and body id stay. Returns undefined, having written nothing,
 * when the stored record is not that version any more (replaced or removed, by any process) or the new metadata
 * would pass the budget: the caller then writes the whole entry (writeRecord). Inside a write transaction.
 */
export function rewriteMeta(dbs: LmdbDbs, args: MetaRewriteArgs): WriteResult | undefined {
  const { storage, key, entry, size, bodyId } = args;
  const hk = readHousekeeping(dbs, storage);
  if (!hk || hk.b !== bodyId) return undefined;
  const raw = dbs.meta.getBinary(storage);
  if (raw === undefined) return undefined;
  let layout;
  try {
    const stored = decodeRecord(raw);
    if (stored.kind !== 'entry' || stored.key !== key || stored.body.bodyId !== bodyId || stored.body.length !== entry.body.length) return undefined;
    layout = stored.body;
  } catch {
    return undefined;
  }
  // Encoded with the chunk size the body was stored with, so that the layout (inline or chunks) is the stored one.
  const prepared = prepareRecord(key, entry, size, layout.chunkSize);
  if (prepared.chunkCount !== layout.chunkCount || prepared.inlineBytes > 0 !== layout.inlineAt >= 0) return undefined;
  if (readCount(dbs, INFO.bytes) - hk.s + size > args.maxBytes) return undefined;
  const value = finishRecord(prepared, bodyId, layout.inlineAt >= 0 ? [raw.subarray(layout.inlineAt, layout.inlineAt + layout.length)] : undefined);
  const shortage = args.space.ensure(args.space.valuePages(value.length) + INDEX_PAGES, args.inflightBytes);
  if (shortage !== null) {
    // As for a whole write that finds no room: the record it would have replaced must not stay (a soft purge, say).
    removeEntry(dbs, storage, hk);
    return { stored: false, evicted: 0, shortage, bodyId: 0 };
  }
  dbs.meta.putSync(storage, value);
  const deletable = Number.isFinite(entry.meta.deletableAt) ? entry.meta.deletableAt : null;
  if (hk.d !== deletable) {
    if (hk.d !== null) dbs.expiry.removeSync([hk.d, storage]);
    if (deletable !== null) dbs.expiry.putSync([deletable, storage], EMPTY);
  }
  const tags = [...new Set(entry.meta.tags.map(storageKey))];
  for (const tag of hk.t) if (!tags.includes(tag)) dbs.tags.removeSync(tag, storage);
  for (const tag of tags) if (!hk.t.includes(tag)) dbs.tags.putSync(tag, storage);
  dbs.atime.putSync(storage, { ...hk, s: size, d: deletable, t: tags });
  addCount(dbs, INFO.bytes, size - hk.s);
  return { stored: true, evicted: 0, shortage: null, bodyId };
}

/** Pages a record will take: its body's chunks (each on its own overflow pages), its meta value, its index rows. */
function pagesFor(prepared: PreparedRecord, bodyLength: number, chunkSize: number, space: DiskSpace): number {
  let pages = space.valuePages(HEADER_BYTES + prepared.json.length + prepared.inlineBytes) + INDEX_PAGES;
  if (prepared.chunkCount > 0) {
    pages += (prepared.chunkCount - 1) * space.valuePages(chunkSize);
    pages += space.valuePages(bodyLength - (prepared.chunkCount - 1) * chunkSize);
  }
  return pages;
}

/** Writes a body to `bodies` in chunkSize pieces, never holding more than one chunk of its own. Returns the count. */
function writeChunks(dbs: LmdbDbs, bodyId: number, body: Body, chunkSize: number): number {
  let staging: Buffer | undefined;
  let fill = 0;
  let index = 0;
  let total = 0;
  // putSync inside a write transaction copies the value into the transaction at once, so staging is reused.
  for (const part of bodyChunks(body)) {
    total += part.length;
    let offset = 0;
    while (offset < part.length) {
      if (fill === 0 && part.length - offset >= chunkSize) {
        dbs.bodies.putSync([bodyId, index++], part.subarray(offset, offset + chunkSize));
        offset += chunkSize;
        continue;
      }
      staging ??= Buffer.allocUnsafe(chunkSize);
      const copied = part.copy(staging, fill, offset, Math.min(part.length, offset + chunkSize - fill));
      fill += copied;
      offset += copied;
      if (fill === chunkSize) {
        dbs.bodies.putSync([bodyId, index++], staging);
        fill = 0;
      }
    }
  }
  if (fill > 0 && staging) dbs.bodies.putSync([bodyId, index++], staging.subarray(0, fill));
  if (total !== body.length || index !== chunkCountFor(body.length, chunkSize)) {
    throw new Error(`body yielded ${total} bytes, expected ${body.length}`);
  }
  return index;
}
