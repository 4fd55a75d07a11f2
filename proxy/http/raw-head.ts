/**
 * Writing a fresh hit's status line and header block as one prepared string, instead of handing Node a header
 * array that it validates, lower-cases and concatenates again on every response (about a tenth of a 1 KiB hit's
 * cost, see docs/benchmarks.md).
 *
 * This leans on one internal of node:http's OutgoingMessage: `_header`, the serialized head that `writeHead()`
 * stores and the first body write sends (it has been there since Node 0.x and is what `headersSent` reads).
 * A response whose head was set this way behaves as after `writeHead()`: `end(body)` writes head and body in
 * one writev, and keep-alive, pipelining and 'finish' work as usual. Whether the running Node still behaves so
 * is checked once at start-up ({@link probeRawHead}); if not, every hit takes `writeHead()`.
 *
 * Only the keep-alive case is prepared: the connection fields Node would add are appended here from the same
 * response properties Node reads (`shouldKeepAlive`, the server's keep-alive timeout, the per-socket request
 * limit); any other case (Connection: close, HTTP/1.0, a request limit) goes through `writeHead()`.
 */
import { Duplex } from 'node:stream';
import { IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';

/** The node:http response internals this module reads or sets. */
interface OutgoingInternals {
  _header: string | null;
  _hasBody: boolean;
  shouldKeepAlive: boolean;
  _keepAliveTimeout?: number;
  _defaultKeepAlive?: boolean;
  _maxRequestsPerSocket?: number;
  maxRequestsOnConnectionReached?: boolean;
}

let supported = false;

/** Whether prepared heads are used (after a successful probe). */
export function rawHeadSupported(): boolean {
  return supported;
}

/**
 * The connection fields Node appends to a keep-alive response (see OutgoingMessage#_storeHeader), or undefined
 * when this response is not the plain keep-alive case.
 */
function keepAliveFields(res: OutgoingInternals): string | undefined {
  if (!res.shouldKeepAlive || res.maxRequestsOnConnectionReached || res._defaultKeepAlive !== true) return undefined;
  if ((res._maxRequestsPerSocket ?? 0) > 0) return undefined;
  const timeout = res._keepAliveTimeout ?? 0;
  if (timeout === lastTimeout) return lastFields;
  lastTimeout = timeout;
  lastFields = timeout ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(timeout / 1000)}\r\n\r\n` : 'Connection: keep-alive\r\n\r\n';
  return lastFields;
}
let lastTimeout = NaN;
let lastFields = '';

/**
 * Sets a prepared head on a response that has not written anything yet. Returns false, having done nothing,
 * when the response needs `writeHead()` instead.
 */
export function setRawHead(res: ServerResponse, status: number, head: PreparedHead): boolean {
  if (!supported) return false;
  const internals = res as unknown as OutgoingInternals;
  const fields = keepAliveFields(internals);
  if (fields === undefined) return false;
  if (head.connectionFields !== fields) {
    head.connectionFields = fields;
    head.text = flat([head.fields, fields]);
  }
  useHead(res, internals, status, head.text);
  return true;
}

/** What writeHead() would have set: the status, no body for 204 and 304 (whatever is written), the head. */
function useHead(res: ServerResponse, internals: OutgoingInternals, status: number, text: string): void {
  res.statusCode = status;
  if (status === 204 || status === 304) internals._hasBody = false;
  internals._header = text;
}

/**
 * setRawHead for a head sent once: `start` and `tail` (status line and fields) joined with the connection
 * fields into a string that lives as long as this response.
 */
export function setRawHeadOnce(res: ServerResponse, status: number, start: string, tail: string): boolean {
  if (!supported) return false;
  const internals = res as unknown as OutgoingInternals;
  const fields = keepAliveFields(internals);
  if (fields === undefined) return false;
  useHead(res, internals, status, flat([start, tail, fields]));
  return true;
}

/** A head being reused across responses: `fields` is set by the owner, the rest is this module's cache. */
export interface PreparedHead {
  /** Status line and header fields, CRLF-terminated, no blank line. */
  fields: string;
  /** `fields` plus the connection fields it was last completed with. */
  text: string;
  connectionFields: string;
}

export function preparedHead(fields: string): PreparedHead {
  return { fields, text: '', connectionFields: '' };
}

// The characters node:http accepts in a field name and value (checkIsHttpToken / checkInvalidHeaderChar).
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** The status line Node writes for `writeHead(status)`. */
export function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
}

/** Field names already found to be tokens (stored names repeat: content-type, etag...); bounded. */
const TOKEN_NAMES = new Set<string>();
const TOKEN_NAMES_MAX = 1024;

function isTokenName(name: string): boolean {
  if (TOKEN_NAMES.has(name)) return true;
  if (!TOKEN.test(name)) return false;
  if (TOKEN_NAMES.size < TOKEN_NAMES_MAX) TOKEN_NAMES.add(name);
  return true;
}

/**
 * Serializes a [name, value, ...] array (from index `from`) as Node would, each field ending in CRLF, or
 * returns undefined when `writeHead()` would refuse a field (then the caller uses it, and gets its error).
 * One flat string: the first line joined flat, the others appended with `+`, and the two joined into a new
 * sequential string at the end (an entry's first hit makes one: about 460 ns for six fields, where pushing every
 * part into an array and joining it took about 1,200; docs/benchmarks.md, "An entry's first hit").
 */
export function serializeFields(fields: ReadonlyArray<string | readonly string[]>, from = 0): string | undefined {
  let first = '';
  let rest = '';
  for (let i = from; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string | readonly string[];
    if (!isTokenName(name)) return undefined;
    // A field with several values is written once per value (no array made for a single one).
    const several = typeof value !== 'string';
    const count = several ? value.length : 1;
    for (let j = 0; j < count; j++) {
      const one = several ? (value[j] as string) : value;
      if (INVALID_VALUE.test(one)) return undefined;
      if (first === '') first = flat([name, ': ', one, '\r\n']);
      else rest += name + ': ' + one + '\r\n';
    }
  }
  return rest === '' ? first : flat([first, rest]);
}

/**
 * Joins into one flat string. Heads live as long as their entries, so they must not be trees of `+`
 * concatenations (V8 cons strings: dozens of heap objects per head, flattened again on first write).
 */
export function flat(parts: string[]): string {
  return parts.join('');
}

/**
 * Checks, on a response wired to an in-memory socket, that a head set through `_header` goes out as set and is
 * followed by the body, as after writeHead(). Enables prepared heads when it does.
 */
export function probeRawHead(): Promise<boolean> {
  probe ??= runProbe();
  return probe;
}
let probe: Promise<boolean> | undefined;

async function runProbe(): Promise<boolean> {
  try {
    const chunks: Buffer[] = [];
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(Buffer.from(chunk));
        callback();
      },
      writev(parts: Array<{ chunk: Buffer }>, callback) {
        for (const part of parts) chunks.push(Buffer.from(part.chunk));
        callback();
      },
    });
    const req = new IncomingMessage(socket as unknown as Socket);
    req.method = 'GET';
    const res = new ServerResponse(req);
    res.assignSocket(socket as unknown as Socket);
    const internals = res as unknown as OutgoingInternals;
    if (!('_header' in internals) || internals._header !== null) return (supported = false);
    const head = 'HTTP/1.1 200 OK\r\nx-probe: 1\r\ncontent-length: 4\r\n\r\n';
    internals._header = head;
    if (!res.headersSent) return (supported = false);
    await new Promise<void>((resolve, reject) => {
      res.once('finish', resolve);
      res.once('error', reject);
      res.end(Buffer.from('body'));
    });
    supported = Buffer.concat(chunks).toString('latin1') === `${head}body`;
    res.detachSocket(socket as unknown as Socket);
    socket.destroy();
  } catch {
    supported = false;
  }
  return supported;
}
