/**
 * The proxy port's response class (http.createServer's ServerResponse option): node:http's, with the fields the
 * metrics and the access log read declared up front, so that recording an outcome on a response sets numbers on
 * an object of a fixed shape instead of adding properties to it.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';

export class ProxyResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  /** performance.now() when the request reached edgecache (set for the requests the hit path declines). */
  startedAt = 0;
  /** Index into CACHE_RESULTS once an outcome is recorded, else -1 (edgecache's own error answers). */
  cache = -1;
  /** Index into RESULT_TIERS, with `cache`. */
  tier = -1;
  /** performance.now() when the origin's response headers were in hand for this request; 0 when not asked. */
  originAt = 0;
  /** The connection's bytesWritten when the response started (with the access log on). */
  startBytes = 0;
}
