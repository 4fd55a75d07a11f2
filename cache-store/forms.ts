/**
 * An entry's compressed forms in the tiers. The memory tier keeps them as they are made: `entry.forms`, one Body
 * per content coding beside the identity body. The lower tiers (LMDB, Redis) store one body per record, so
 * CacheStore hands them the entry *packed*: one body made of the identity bytes followed by each form's bytes
 * (br, then gzip), with `meta.encodings` giving the lengths; reading one back, it unpacks it into views of that
 * body. A packed body whose length does not add up is never guessed at: the record reads as absent.
 */
import { ArrayBody, bodyChunks, CONTIGUOUS_LIMIT, isChunked, type Body, type ChunkedBody } from './body.js';
import { withHitSlot, type CacheEntry, type CacheRecord, type EncodedForms, type EntryMeta, type FormsLayout } from './entry.js';

/** The order of the forms after the identity body in a packed body (here, and in the memory tier's packed entries). */
export const FORM_ORDER = ['br', 'gzip'] as const;

/** Total bytes of a packed body with this layout. */
function packedLength(layout: FormsLayout): number {
  return layout.identity + (layout.br ?? 0) + (layout.gzip ?? 0);
}

/** The layout of an entry's body and forms. */
export function formsLayout(body: Body, forms: EncodedForms): FormsLayout {
  const layout: FormsLayout = { identity: body.length };
  for (const coding of FORM_ORDER) {
    const form = forms[coding];
    if (form !== undefined) layout[coding] = form.length;
  }
  return layout;
}

/** The record as a lower tier stores it: the forms packed after the body (unchanged when there are none). */
export function packed(record: CacheRecord): CacheRecord {
  if (record.kind !== 'entry' || record.forms === undefined) return record;
  const layout = record.meta.encodings;
  if (layout == null || packedLength(layout) === layout.identity) return { kind: 'entry', meta: record.meta, body: record.body };
  const parts: Buffer[] = [...bodyChunks(record.body)];
  for (const coding of FORM_ORDER) {
    const form = record.forms[coding];
    if (form !== undefined && layout[coding] !== undefined) parts.push(...bodyChunks(form));
  }
  const length = packedLength(layout);
  const body: Body = length > CONTIGUOUS_LIMIT ? new ArrayBody(parts) : Buffer.concat(parts, length);
  if (body.length !== length) throw new Error(`packed forms are ${body.length} bytes, expected ${length}`);
  return { kind: 'entry', meta: record.meta, body };
}

/**
 * A record read from a lower tier with its forms as views of the packed body (the metadata object is kept: the
 * tiers recognise an entry's version by it). Undefined when the body's length does not match the layout. A body
 * just as long as the identity form (a tier that kept the body without the forms) has no forms.
 */
export function unpacked(record: CacheRecord): CacheRecord | undefined {
  if (record.kind !== 'entry' || record.forms !== undefined) return record;
  const layout = record.meta.encodings;
  if (layout == null) return record;
  const { body } = record;
  if (body.length === layout.identity) return { kind: 'entry', meta: record.meta, body, forms: {} };
  if (body.length !== packedLength(layout)) return undefined;
  return { kind: 'entry', meta: record.meta, ...splitPacked(body, layout) };
}

/** The identity body and each form of a packed body of this layout (its length checked), as views of it. */
export function splitPacked<B extends Body>(packedBody: B, layout: FormsLayout): { body: B; forms: EncodedForms } {
  const forms: EncodedForms = {};
  let at = layout.identity;
  for (const coding of FORM_ORDER) {
    const length = layout[coding];
    if (length === undefined) continue;
    forms[coding] = slice(packedBody, at, at + length);
    at += length;
  }
  return { body: slice(packedBody, 0, layout.identity) as B, forms };
}

function slice(body: Body, start: number, end: number): Body {
  return isChunked(body) ? new SliceBody(body, start, end) : body.subarray(start, end);
}

/** Bytes [start, end) of a chunked body, read through it. */
class SliceBody implements ChunkedBody {
  readonly kind = 'chunked';
  readonly length: number;

  constructor(
    private readonly whole: ChunkedBody,
    private readonly start: number,
    end: number,
  ) {
    this.length = end - start;
  }

  chunks(start: number, end: number): Iterable<Buffer> {
    return this.whole.chunks(this.start + start, this.start + end);
  }
}

/** An entry with compressed forms added: new metadata (listing them) for the same response. */
export function withForms(entry: CacheEntry, forms: EncodedForms, encodings: FormsLayout): CacheEntry {
  const m = entry.meta;
  const meta: EntryMeta = withHitSlot({
    ageBase: m.ageBase,
    lifetime: m.lifetime,
    staleWhileRevalidate: m.staleWhileRevalidate,
    staleIfError: m.staleIfError,
    mustRevalidate: m.mustRevalidate,
    sharedMaxAge: m.sharedMaxAge,
    hasValidator: m.hasValidator,
    key: m.key,
    primaryKey: m.primaryKey,
    status: m.status,
    headers: m.headers,
    storedAt: m.storedAt,
    vary: m.vary,
    tags: m.tags,
    deletableAt: m.deletableAt,
    encodings,
    reserved: undefined,
  });
  return { kind: 'entry', meta, body: entry.body, forms };
}
