/** Records for tier tests: lifetimes from real CachePolicy objects (via Freshness, on a clock the test controls). */
import { createHash, randomBytes } from 'node:crypto';
import { ArrayBody, bodyChunks, type Body } from '../../cache-store/body.js';
import { deletableAt, newEntryMeta, type CacheEntry, type EntryMeta, type StoredHeaders, type VaryRecord } from '../../cache-store/entry.js';
import { Freshness } from '../../policies/http/freshness.js';

export class TestClock {
  time = 1_700_000_000_000;
  readonly now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

export interface EntryOptions {
  /** The body, or its size in bytes (random content). */
  body?: Body | number;
  maxAge?: number;
  /** An ETag makes the entry revalidatable: deletableAt is then Infinity. */
  etag?: string;
  tags?: string[];
  headers?: StoredHeaders;
  primaryKey?: string;
  vary?: string[] | null;
}

export class Fixtures {
  readonly freshness: Freshness;

  constructor(readonly clock: TestClock) {
    this.freshness = new Freshness({ cacheSetCookie: false, now: clock.now });
  }

  request(key: string): { method: string; url: string; headers: Record<string, string> } {
    const slash = key.indexOf('/');
    const host = slash > 0 ? key.slice(0, slash) : 'example.test';
    return { method: 'GET', url: slash >= 0 ? key.slice(slash) : '/', headers: { host, accept: '*/*' } };
  }

  entry(key: string, options: EntryOptions = {}): CacheEntry {
    const body = typeof options.body === 'number' || options.body === undefined ? randomBytes(options.body ?? 1000) : options.body;
    const headers: StoredHeaders = {
      'content-type': 'application/octet-stream',
      'cache-control': `max-age=${options.maxAge ?? 3600}`,
      date: new Date(this.clock.now()).toUTCString(),
      'x-body-sha256': digest(body),
      ...(options.etag !== undefined ? { etag: options.etag } : {}),
      ...options.headers,
    };
    const request = this.request(key);
    const response = { status: 200, headers };
    const policy = this.freshness.createPolicy(request, response);
    const lifetimes = this.freshness.lifetimes(policy, response, 0);
    // As a fill makes it (one literal, every field), so that a record read back from a tier compares equal.
    const meta: EntryMeta = newEntryMeta(lifetimes, {
      key,
      primaryKey: options.primaryKey ?? key,
      status: 200,
      headers,
      storedAt: this.clock.now(),
      vary: options.vary ?? null,
      tags: options.tags ?? [],
      deletableAt: deletableAt(lifetimes),
    });
    return { kind: 'entry', meta, body };
  }

  vary(primaryKey: string, fields: string[], variants: string[]): VaryRecord {
    return { kind: 'vary', primaryKey, fields, variants };
  }
}

export function digest(body: Body): string {
  const hash = createHash('sha256');
  for (const chunk of bodyChunks(body)) hash.update(chunk);
  return hash.digest('hex');
}

export function bodyBytes(body: Body, start = 0, end = body.length): Buffer {
  if (Buffer.isBuffer(body)) return body.subarray(start, end);
  return Buffer.concat([...body.chunks(start, end)]);
}

/** A body made of many small parts (as a fill collects them), for chunked-body tests. */
export function partsBody(size: number, partSize = 64 * 1024): ArrayBody {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < size; offset += partSize) parts.push(randomBytes(Math.min(partSize, size - offset)));
  return new ArrayBody(parts);
}

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

/** A pino-shaped logger that records what it is given. */
export function recordingLogger(): { lines: LogLine[]; warn(obj: object, msg: string): void; error(obj: object, msg: string): void; info(obj: object, msg: string): void } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
  };
}
