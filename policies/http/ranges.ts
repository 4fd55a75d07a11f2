/** Range requests (RFC 9110 §14): the single byte range a cache serves from a stored full response. */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * A single satisfiable byte range from a Range header, 'unsatisfiable', or null when the whole representation
 * should be sent instead (no Range, several ranges, a failed If-Range, or a unit other than bytes).
 */
export function parseRange(request: IncomingHttpHeaders, stored: Record<string, string | string[] | undefined>, length: number): { start: number; end: number } | 'unsatisfiable' | null {
  const header = request.range;
  if (header === undefined) return null;
  const ifRange = request['if-range'];
  if (ifRange !== undefined) {
    const etag = stored.etag;
    const strongMatch = typeof etag === 'string' && !etag.startsWith('W/') && ifRange === etag;
    const dateMatch = typeof stored['last-modified'] === 'string' && ifRange === stored['last-modified'];
    if (!strongMatch && !dateMatch) return null;
  }
  const match = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!match) return null;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === '' && last === '') return null;
  let start: number;
  let end: number;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, length - suffix);
    end = length - 1;
  } else {
    start = Number(first);
    end = last === '' ? length - 1 : Math.min(Number(last), length - 1);
    if (last !== '' && Number(last) < start) return null;
  }
  if (start >= length || length === 0) return 'unsatisfiable';
  return { start, end };
}
