/**
 * A full consistency check of the disk tier's environment: every record decodes (inline bodies included), has
 * its housekeeping, all its chunks and index rows; the accounting matches the records; no chunk belongs to no
 * record. Reads everything, so it is for diagnostics and tests (after a crash, say), not for the request path.
 * Run it while no other process writes: it reads the databases one after another, not in one snapshot.
 */
import { decodeRecord } from '../record-codec.js';
import { INFO, isHashedKey } from './layout.js';
import { readCount, readHousekeeping } from './budget.js';
import type { LmdbDbs } from './env.js';

export interface IntegrityReport {
  /** Records found in `meta`, and the sum of their charged sizes. */
  entries: number;
  bytes: number;
  /** What `info` says. */
  accountedEntries: number;
  accountedBytes: number;
  /** Human-readable descriptions of every inconsistency (empty when consistent). */
  problems: string[];
}

export function checkIntegrity(dbs: LmdbDbs): IntegrityReport {
  const problems: string[] = [];
  const bodies = new Map<number, number>();
  let entries = 0;
  let bytes = 0;
  for (const { key: storage, value } of dbs.meta.getRange({ snapshot: false })) {
    entries++;
    if (typeof storage !== 'string') {
      problems.push(`undecodable key ${JSON.stringify(storage)}`);
      continue;
    }
    let decoded;
    try {
      decoded = decodeRecord(value);
    } catch (err) {
      problems.push(`${storage}: ${(err as Error).message}`);
      continue;
    }
    bytes += decoded.size;
    const hk = readHousekeeping(dbs, storage);
    if (!hk) {
      problems.push(`${storage}: housekeeping ${hk === null ? 'unreadable' : 'missing'}`);
      continue;
    }
    if (hk.s !== decoded.size) problems.push(`${storage}: housekeeping size ${hk.s} != record size ${decoded.size}`);
    if (!dbs.lru.doesExist([hk.a, storage])) problems.push(`${storage}: no lru row`);
    if (hk.d !== null && !dbs.expiry.doesExist([hk.d, storage])) problems.push(`${storage}: no expiry row`);
    for (const tag of hk.t) if (!dbs.tags.doesExist(tag, storage)) problems.push(`${storage}: no tag row for ${tag}`);
    if (isHashedKey(storage) && dbs.longKeys.get(storage) !== decoded.key) problems.push(`${storage}: long-key row missing or wrong`);
    if (decoded.kind !== 'entry') continue;
    const { bodyId, length, chunkCount, chunkSize, inlineAt } = decoded.body;
    if (hk.b !== bodyId || hk.c !== chunkCount) problems.push(`${storage}: housekeeping body ${hk.b}/${hk.c} != record ${bodyId}/${chunkCount}`);
    if (bodies.has(bodyId)) problems.push(`${storage}: body id ${bodyId} is used by another record`);
    bodies.set(bodyId, chunkCount);
    if (inlineAt >= 0) continue; // inline: decodeRecord checked that the value holds exactly `length` body bytes
    let stored = 0;
    for (let i = 0; i < chunkCount; i++) {
      const chunk = dbs.bodies.getBinary([bodyId, i]);
      if (chunk === undefined) problems.push(`${storage}: chunk ${i} of body ${bodyId} missing`);
      else if (i < chunkCount - 1 && chunk.length !== chunkSize) problems.push(`${storage}: chunk ${i} has ${chunk.length} bytes`);
      else stored += chunk.length;
    }
    if (stored !== length && !problems.some((p) => p.startsWith(`${storage}: chunk`))) problems.push(`${storage}: body has ${stored} bytes, expected ${length}`);
  }
  for (const [bodyId, chunk] of dbs.bodies.getKeys({ snapshot: false })) {
    const count = bodies.get(bodyId);
    if (count === undefined || chunk >= count) problems.push(`orphan chunk ${chunk} of body ${bodyId}`);
  }
  for (const storage of dbs.atime.getKeys({ snapshot: false })) {
    if (!dbs.meta.doesExist(storage)) problems.push(`${storage}: housekeeping without record`);
  }
  const accountedEntries = readCount(dbs, INFO.entries);
  const accountedBytes = readCount(dbs, INFO.bytes);
  if (accountedEntries !== entries) problems.push(`info.entries ${accountedEntries} != ${entries} records`);
  if (accountedBytes !== bytes) problems.push(`info.bytes ${accountedBytes} != ${bytes} (sum of record sizes)`);
  return { entries, bytes, accountedEntries, accountedBytes, problems };
}
