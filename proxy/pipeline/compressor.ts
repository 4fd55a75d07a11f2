/**
 * Compress once, serve many: after a fill stores a compressible response, its body is compressed in each
 * configured coding (--compress) off the response path, on libuv's thread pool (node:zlib's asynchronous
 * streams), and the forms are added to the stored entry (CacheStore.addForms). Hits then write the stored bytes
 * of the form each client prefers; nothing is compressed per request.
 *
 * Levels: a form is made once and sent many times, so it is worth far more CPU than on-the-fly compression
 * (nginx's gzip_comp_level 1, brotli 4-6). Brotli quality 11 for bodies up to 64 KiB (the bulk of HTML, CSS and
 * JSON: a few ms each, the densest output), 9 up to 1 MiB (a JS bundle: ~3x faster than 11 for a few percent
 * more bytes), 6 beyond (large bodies: 11 would take seconds per MB). gzip level 9 (its cost barely changes with
 * the level). At most COMPRESS_CONCURRENCY bodies are compressed at a time and QUEUE_LIMIT wait; beyond that a
 * response simply stays identity-only (counted as compressSkipped).
 */
import { constants, createBrotliCompress, createBrotliDecompress, createGunzip, createGzip, createInflate, type BrotliOptions, type ZlibOptions } from 'node:zlib';
import type { Transform } from 'node:stream';
import { bodyChunks, bodyFromChunks, type Body } from '../../cache-store/body.js';
import type { CacheStore } from '../../cache-store/cache-store.js';
import type { CacheEntry, EncodedForms, StoredHeaders } from '../../cache-store/entry.js';
import { hasNoTransform, isCompressibleType, storedCoding, type Coding } from '../../policies/http/content-coding.js';

export interface CompressorOptions {
  /** Codings to store (--compress); empty: off. */
  codings: readonly Coding[];
  /** Smallest body compressed (--compress-min-size). */
  minSize: number;
  store: CacheStore;
}

/** Bodies compressed at a time (each on a thread of libuv's pool: the machine's other cores stay free). */
const COMPRESS_CONCURRENCY = 2;
/** Responses waiting their turn; beyond this a response is stored identity-only. */
const QUEUE_LIMIT = 256;

/** Brotli quality by body size (see the module comment). */
export function brotliQuality(length: number): number {
  if (length <= 64 * 1024) return 11;
  if (length <= 1024 * 1024) return 9;
  return 6;
}

export const GZIP_LEVEL = 9;

/** A compressed form is kept only when it saves at least this fraction of the identity bytes. */
const MIN_SAVING = 0.05;

/** Why a scheduled body ends up without compressed forms (edgecache_compression_skipped_total{reason}). */
export const SKIP_REASONS = ['queue-full', 'no-gain', 'superseded', 'error'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** The codings a form can be stored in (the `encoding` label). */
export const FORM_CODINGS = ['br', 'gzip'] as const satisfies readonly Coding[];

/**
 * The compressor's counters, for /stats (`compression`) and /metrics: forms stored per coding, the identity bytes
 * of the bodies they were made from (each body once), the bytes of the forms stored per coding, and the bodies
 * scheduled that got no form, by reason.
 */
export interface CompressorStats {
  compressed: Record<Coding, number>;
  bytesIn: number;
  bytesOut: Record<Coding, number>;
  skipped: Record<SkipReason, number>;
}

function newStats(): CompressorStats {
  return {
    compressed: { br: 0, gzip: 0 },
    bytesIn: 0,
    bytesOut: { br: 0, gzip: 0 },
    skipped: { 'queue-full': 0, 'no-gain': 0, superseded: 0, error: 0 },
  };
}

export class Compressor {
  private running = 0;
  private readonly queue: Array<() => Promise<void>> = [];
  readonly stats: CompressorStats = newStats();
  private pending = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: CompressorOptions) {}

  get enabled(): boolean {
    return this.options.codings.length > 0;
  }

  /**
   * Whether a response with these stored fields is one edgecache compresses (RFC 9110 §8.4, RFC 9111 §5.2.2.6):
   * a 200 without Content-Encoding and without no-transform, of a compressible type, at least --compress-min-size
   * long and at most the memory tier's per-object limit when its length is known (`length` undefined: not known yet).
   */
  candidate(status: number, headers: StoredHeaders, length: number | undefined): boolean {
    if (!this.enabled || status !== 200) return false;
    if (storedCoding(headers['content-encoding']) !== 'identity') return false;
    if (hasNoTransform(headers['cache-control'])) return false;
    if (length !== undefined && length < this.options.minSize) return false;
    // Larger than the memory tier holds: streamed to disk as sent, never compressed (memory stays bounded).
    if (length !== undefined && length > this.options.store.memoryObjectLimit) return false;
    return isCompressibleType(headers['content-type']);
  }

  /** Compresses a stored entry's body in the background and adds the forms to it; `since` as for CacheStore.put. */
  schedule(entry: CacheEntry, since: number): void {
    if (!this.candidate(entry.meta.status, entry.meta.headers, entry.body.length)) return;
    if (this.queue.length >= QUEUE_LIMIT) {
      this.stats.skipped['queue-full']++;
      return;
    }
    this.pending++;
    this.queue.push(() => this.compressEntry(entry, since));
    this.next();
  }

  /** Resolves once every scheduled compression has finished (tests, shutdown). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private next(): void {
    while (this.running < COMPRESS_CONCURRENCY && this.queue.length > 0) {
      const job = this.queue.shift() as () => Promise<void>;
      this.running++;
      void job()
        .catch(() => {
          this.stats.skipped.error++;
        })
        .finally(() => {
          this.running--;
          this.pending--;
          if (this.pending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
          this.next();
        });
    }
  }

  private async compressEntry(entry: CacheEntry, since: number): Promise<void> {
    const forms: EncodedForms = {};
    const length = entry.body.length;
    for (const coding of this.options.codings) {
      const form = await compressBody(entry.body, coding, isTextType(entry.meta.headers['content-type']));
      if (form.length <= length * (1 - MIN_SAVING)) forms[coding] = form;
    }
    if (forms.br === undefined && forms.gzip === undefined) {
      this.stats.skipped['no-gain']++;
      return;
    }
    if (!(await this.options.store.addForms(entry, forms, since))) {
      this.stats.skipped.superseded++;
      return;
    }
    // Counted once stored: the forms clients can be served.
    this.stats.bytesIn += length;
    for (const coding of FORM_CODINGS) {
      const form = forms[coding];
      if (form === undefined) continue;
      this.stats.compressed[coding]++;
      this.stats.bytesOut[coding] += form.length;
    }
  }
}

function isTextType(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && !contentType.toLowerCase().includes('wasm');
}

/** A stream that compresses to `coding` at the level chosen for a body of `length` bytes. */
export function compressStream(coding: Coding, length: number, text = true): Transform {
  if (coding === 'gzip') {
    const options: ZlibOptions = { level: GZIP_LEVEL };
    return createGzip(options);
  }
  const options: BrotliOptions = {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: brotliQuality(length),
      [constants.BROTLI_PARAM_MODE]: text ? constants.BROTLI_MODE_TEXT : constants.BROTLI_MODE_GENERIC,
      [constants.BROTLI_PARAM_SIZE_HINT]: length,
    },
  };
  return createBrotliCompress(options);
}

/** A stream that undoes a content coding (for a client that does not accept the one a body is in). */
export function decodeStream(coding: 'br' | 'gzip' | 'deflate'): Transform {
  if (coding === 'br') return createBrotliDecompress();
  return coding === 'gzip' ? createGunzip() : createInflate();
}

/** A body compressed to `coding` (asynchronously, on libuv's pool), as a stored Body. */
export async function compressBody(body: Body, coding: Coding, text = true): Promise<Body> {
  const stream = compressStream(coding, body.length, text);
  const out: Buffer[] = [];
  let bytes = 0;
  stream.on('data', (chunk: Buffer) => {
    out.push(chunk);
    bytes += chunk.length;
  });
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (const chunk of bodyChunks(body)) {
    if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve));
  }
  stream.end();
  await ended;
  return bodyFromChunks(out, bytes);
}
