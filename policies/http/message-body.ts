/**
 * What a response's status and framing fields say about its body (RFC 9110 §6.4.1, §8.6; RFC 9112 §6.3): whether
 * it has one, how long it is announced to be, and whether only the connection closing ends it.
 */

/** A 204 or 304 has no content whatever its fields say (RFC 9110 §6.4.1, RFC 9112 §6.3). */
export function hasNoContent(status: number): boolean {
  return status === 204 || status === 304;
}

/** Whether a response with this status may carry Content-Length: not a 1xx or a 204 (RFC 9110 §8.6). */
export function allowsContentLength(status: number): boolean {
  return status >= 200 && status !== 204;
}

export interface BodyFraming {
  /** No body at all (hasNoContent). */
  noContent: boolean;
  /** The announced length (0 without content), or undefined when none is announced (or it is not one number). */
  length: number | undefined;
  /**
   * Neither a length nor the chunked coding: the body ends when the connection closes (RFC 9112 §6.3 item 8), so
   * whether it arrived whole cannot be told. A cache must not store such a body.
   */
  closeDelimited: boolean;
}

export function bodyFraming(status: number, headers: Readonly<Record<string, string | string[] | undefined>>): BodyFraming {
  const noContent = hasNoContent(status);
  const length = noContent ? 0 : contentLength(headers['content-length']);
  const chunked = /chunked/i.test(String(headers['transfer-encoding'] ?? ''));
  return { noContent, length, closeDelimited: length === undefined && !chunked };
}

/** Content-Length as a number; undefined when absent, repeated or not a plain decimal number. */
function contentLength(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}
