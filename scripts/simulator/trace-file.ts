import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { TraceBuilder, type Trace } from './trace.js';

/** A malformed trace file; the message names the file and line. */
export class TraceFileError extends Error {
  override readonly name = 'TraceFileError';
}

/**
 * Reads a trace of `key size` lines (whitespace-separated; size in bytes, `-` read as 0). Blank
 * lines and lines starting with `#` are skipped. An object's size is the largest seen for its key;
 * sizes below 1 byte count as 1.
 */
export async function readTraceFile(path: string): Promise<Trace> {
  const builder = new TraceBuilder();
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNumber = 0;
  let requests = 0;
  for await (const line of lines) {
    lineNumber++;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const fields = trimmed.split(/\s+/);
    const key = fields[0];
    const sizeField = fields[1];
    if (key === undefined || sizeField === undefined || fields.length > 2) {
      throw new TraceFileError(`${path}:${lineNumber}: expected "key size", got ${JSON.stringify(truncate(trimmed))}`);
    }
    const size = sizeField === '-' ? 0 : Number(sizeField);
    if (!Number.isFinite(size) || size < 0) {
      throw new TraceFileError(`${path}:${lineNumber}: size must be a number of bytes, got ${JSON.stringify(truncate(sizeField))}`);
    }
    builder.add(key, size);
    requests++;
  }
  if (requests === 0) throw new TraceFileError(`${path}: no requests`);
  return builder.build(basename(path), `trace file ${path}`);
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
