/**
 * Relaying an origin response to a client without the cache: the pass-through (unsafe methods), and a Range
 * request on a miss. The head is written with the first body byte, or at the end of an empty body, which is when
 * Node would send it anyway: until then nothing has reached the client, so an origin that sends its headers and
 * then fails still gets the client an answer (`failed`: the one-line 502, or 504 after --origin-body-timeout)
 * instead of an empty reply. Once the head is out, a break can only abort the client's connection. The body is
 * streamed with backpressure both ways, and the origin's body is dropped when the client goes away.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

export interface RelayOptions {
  /** The response has no body whatever its fields say (a HEAD, a 204 or 304): complete at its head. */
  noContent: boolean;
  /** The origin failed before any byte of the response reached the client: answer instead. */
  failed(err: unknown): void;
}

export function relayResponse(res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Readable, options: RelayOptions): void {
  if (options.noContent) {
    body.on('error', () => undefined);
    body.resume();
    res.writeHead(status, headers);
    res.end();
    return;
  }
  // The body may have failed already (while an invalidation was awaited, say).
  if (body.errored !== null) {
    if (!res.destroyed) options.failed(body.errored);
    return;
  }
  let sent = false;
  const send = (): void => {
    if (sent) return;
    sent = true;
    res.writeHead(status, headers);
  };
  body.on('data', (chunk: Buffer) => {
    send();
    if (!res.write(chunk)) {
      body.pause();
      res.once('drain', () => body.resume());
    }
  });
  body.on('end', () => {
    send();
    res.end();
  });
  body.on('error', (err: Error) => {
    if (sent || res.destroyed) {
      res.destroy();
      return;
    }
    options.failed(err);
  });
  res.on('close', () => {
    if (!body.readableEnded) body.destroy();
  });
}
