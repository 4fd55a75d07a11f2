/**
 * Where this node stands in the purge stream, kept in its data directory (`redis-purge-position.json`) so that
 * after a restart it reads the purges it missed: the Redis epoch it last saw, the id of the last stream entry it
 * applied, and its node id (stable across restarts, so that it recognises its own purges). Written atomically
 * (a temporary file renamed over the old one). A missing or unreadable file means "position unknown": the node
 * then drops its local tiers before serving from them (see broadcast.ts).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

const POSITION_FILE = 'redis-purge-position.json';

export interface StreamPosition {
  /** This node's id (random, made once per data directory). */
  node: string;
  /** The Redis epoch the id belongs to; undefined when the position is unknown. */
  epoch: string | undefined;
  /** The last stream entry applied ('0-0': none). */
  id: string;
}

interface Stored {
  v: 1;
  prefix: string;
  node: string;
  epoch: string;
  id: string;
}

const STREAM_ID = /^\d+-\d+$/;

export class PositionFile {
  private readonly file: string;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    dataDir: string,
    private readonly prefix: string,
  ) {
    this.file = path.resolve(dataDir, POSITION_FILE);
  }

  /** The stored position, or an unknown one (with a new node id) when there is none for this prefix. */
  read(): StreamPosition {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return { node: randomUUID(), epoch: undefined, id: '0-0' };
    }
    try {
      const value = JSON.parse(text) as Partial<Stored>;
      const node = typeof value.node === 'string' && value.node.length > 0 ? value.node : randomUUID();
      if (value.v !== 1 || value.prefix !== this.prefix || typeof value.epoch !== 'string' || typeof value.id !== 'string' || !STREAM_ID.test(value.id)) {
        return { node, epoch: undefined, id: '0-0' };
      }
      return { node, epoch: value.epoch, id: value.id };
    } catch {
      return { node: randomUUID(), epoch: undefined, id: '0-0' };
    }
  }

  /** Stores `position` (writes are serialised; the last one wins). Rejects when the directory is unusable. */
  write(position: StreamPosition): Promise<void> {
    const stored: Stored = { v: 1, prefix: this.prefix, node: position.node, epoch: position.epoch ?? '', id: position.id };
    const text = `${JSON.stringify(stored)}\n`;
    const next = this.writing.then(async () => {
      mkdirSync(path.dirname(this.file), { recursive: true });
      const temporary = `${this.file}.${process.pid}.tmp`;
      await writeFile(temporary, text);
      await rename(temporary, this.file);
    });
    this.writing = next.catch(() => undefined);
    return next;
  }
}

/** Compares two stream ids ('ms-seq'): negative, zero or positive. */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}
