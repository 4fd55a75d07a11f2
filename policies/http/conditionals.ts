/**
 * Conditional requests (RFC 9110 §13): whether a client's own validators match a stored response, so that the
 * cache answers 304 itself.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Whether a client's own validators match the stored response (RFC 9110 §13.1.2, §13.1.3). */
export function clientValidatorsMatch(request: IncomingHttpHeaders, stored: Record<string, string | string[] | undefined>): boolean {
  const inm = request['if-none-match'];
  if (inm !== undefined) {
    const etag = stored.etag;
    if (inm.trim() === '*') return true;
    if (typeof etag !== 'string') return false;
    const opaque = etag.replace(/^W\//, '');
    return inm.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === opaque);
  }
  const ims = request['if-modified-since'];
  if (ims !== undefined) {
    const since = Date.parse(ims);
    const lastModified = typeof stored['last-modified'] === 'string' ? Date.parse(stored['last-modified']) : NaN;
    return Number.isFinite(since) && Number.isFinite(lastModified) && lastModified <= since;
  }
  return false;
}
