/**
 * How many request header fields edgecache accepts. node:http puts at most `server.maxHeadersCount` fields of a
 * request (1,000 by default) in `req.headers` and drops the rest without a word: Authorization, Cookie or a
 * Vary-nominated field among them, and a request that lost its Authorization would be answered and stored as an
 * anonymous one. (`req.rawHeaders` keeps a few more: the parser hands fields over in batches of 32 and stops
 * taking batches once the limit is reached, lib/_http_common.js parserOnHeaders.) So the limit is set one field
 * above what edgecache accepts, and a request with more fields than accepted is refused with 431 (RFC 6585 §5)
 * instead of being served with fields missing.
 */

/** Most header fields (Host included) a request may carry. */
export const MAX_REQUEST_FIELDS = 1000;

/** What node:http's `server.maxHeadersCount` is set to: one more, so that a request over the limit shows. */
export const PARSER_MAX_FIELDS = MAX_REQUEST_FIELDS + 1;

/** Whether the request has more fields than edgecache accepts (node:http may have dropped some). O(1). */
export function hasTooManyFields(rawHeaders: readonly string[]): boolean {
  return rawHeaders.length > MAX_REQUEST_FIELDS * 2;
}

export const TOO_MANY_FIELDS_MESSAGE = `request header fields too large: more than ${MAX_REQUEST_FIELDS} fields`;
