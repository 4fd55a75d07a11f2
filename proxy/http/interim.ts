/**
 * Interim (1xx) responses from the origin relayed to a client as they arrive (RFC 9110 §15.2; 103 Early Hints,
 * RFC 8297; 102 Processing). They are never stored nor merged into the final response's fields: the fill hands
 * them on and forgets them.
 *
 * Not relayed: 100 Continue (node:http answers `Expect: 100-continue` itself, and edgecache does not forward
 * Expect), 101 (edgecache never asks the origin to switch protocols on this path), anything to an HTTP/1.0
 * client (RFC 9110 §15.2: "a server MUST NOT send a 1xx response to an HTTP/1.0 client"), or anything once the
 * final response's head is out. Hop-by-hop fields are left out, as on every relayed response.
 *
 * edgecache also sends a 103 of its own (writeStoredEarlyHints) with a stored response's preload links while it
 * revalidates that response with the origin.
 *
 * HTTP/1.1: written through node:http's OutgoingMessage#_writeRaw, the way `res.writeEarlyHints()` writes a 103 (it
 * writes only a 103 with a Link field; this writes any 1xx): queued behind an earlier pipelined response if one is
 * still going out. HTTP/2: `stream.additionalHeaders()` on the response's stream (RFC 9113 §8.1).
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { earlyHintLinks } from '../../policies/http/early-hints.js';
import { endToEndResponseHeaders } from '../../policies/http/intermediary.js';
import { serializeFields } from './raw-head.js';

type Fields = Readonly<Record<string, string | string[] | undefined>>;

interface RawWriter {
  _writeRaw?: (data: string, encoding: BufferEncoding) => boolean;
}

/** Whether an interim response with this status is relayed at all. */
function relaysInterim(status: number): boolean {
  return status >= 102 && status <= 199;
}

/** Relays one interim response to a client, when its protocol allows it and nothing final has been sent. */
export function writeInterim(req: IncomingMessage, res: ServerResponse, status: number, headers: Fields): void {
  if (!relaysInterim(status) || res.headersSent || res.writableEnded || res.destroyed) return;
  const fields = endToEndResponseHeaders(headers);
  if (req.httpVersionMajor === 2) {
    const stream = (res as unknown as Http2ServerResponse).stream;
    if (stream.destroyed || stream.headersSent) return;
    try {
      stream.additionalHeaders({ ...fields, ':status': status });
    } catch {
      // A field node:http2 refuses (its own checks): the hints are advisory, the final response goes on.
    }
    return;
  }
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor < 1) return;
  const writer = res as unknown as RawWriter;
  const flat: Array<string | string[]> = [];
  for (const name in fields) flat.push(name, fields[name] as string | string[]);
  const text = serializeFields(flat);
  if (text === undefined || typeof writer._writeRaw !== 'function') return;
  writer._writeRaw(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Informational'}\r\n${text}\r\n`, 'latin1');
}

/**
 * edgecache's own 103 Early Hints (RFC 8297) for a GET about to wait for the origin: the stored response's Link
 * fields that ask to preload or preconnect, if it has any (policies/http/early-hints.ts). The origin's own 103s,
 * if it sends some, are relayed after it as usual.
 */
export function writeStoredEarlyHints(req: IncomingMessage, res: ServerResponse, link: string | string[] | undefined): void {
  if (req.method !== 'GET') return;
  const links = earlyHintLinks(link);
  if (links.length > 0) writeInterim(req, res, 103, { link: links });
}
