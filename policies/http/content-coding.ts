/**
 * Content codings (RFC 9110 §8.4, §12.5.3): which responses edgecache compresses, how a request's
 * Accept-Encoding is read and normalised (for the Vary secondary key and for what is forwarded), which stored
 * form a client gets, and the validators of each form (RFC 9110 §8.8.3: a strong validator differs per encoding).
 */
import { LRUCache } from 'lru-cache';
import { parseCacheControl } from './cache-control.js';

/** The content codings edgecache produces and decodes itself, in its order of preference (smaller first). */
export type Coding = 'br' | 'gzip';

/** A form a stored response can be served in: a content coding, or the identity (no coding). */
export type Form = Coding | 'identity';

/**
 * Media types worth compressing (the documented list, README "Compression"): text/*, JSON and +json, JavaScript,
 * CSS, SVG, XML and +xml, WebAssembly, and a few other text formats. Images, video, audio, fonts in WOFF/WOFF2
 * and archives are already compressed: compressing them again costs CPU for nothing.
 */
export const COMPRESSIBLE_TYPES: readonly string[] = [
  'text/*',
  'application/json',
  'application/*+json',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/xml',
  'application/*+xml',
  'image/svg+xml',
  'application/wasm',
  'application/manifest+json',
  'application/x-ndjson',
  'application/graphql-response+json',
  'application/rtf',
  'font/ttf',
  'font/otf',
  'application/vnd.ms-fontobject',
];

const EXACT_TYPES = new Set(COMPRESSIBLE_TYPES.filter((t) => !t.includes('*')));

/** Whether a Content-Type value names a compressible media type (parameters ignored, case-insensitive). */
export function isCompressibleType(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== 'string') return false;
  const semi = contentType.indexOf(';');
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (type.startsWith('text/')) return true;
  if (EXACT_TYPES.has(type)) return true;
  return type.startsWith('application/') && (type.endsWith('+json') || type.endsWith('+xml'));
}

/** Whether Cache-Control carries no-transform (RFC 9111 §5.2.2.6): then no intermediary may change the content. */
export function hasNoTransform(cacheControl: string | string[] | undefined): boolean {
  return parseCacheControl(cacheControl).has('no-transform');
}

/**
 * A response's Content-Encoding as one coding: 'identity' when absent (or identity), the lower-cased name when
 * it is a single coding, undefined for several stacked codings (edgecache never undoes those).
 */
export function storedCoding(contentEncoding: string | string[] | undefined): string | undefined {
  if (contentEncoding === undefined) return 'identity';
  const text = (Array.isArray(contentEncoding) ? contentEncoding.join(',') : contentEncoding).trim().toLowerCase();
  if (text === '' || text === 'identity') return 'identity';
  if (text.includes(',')) return undefined;
  return text === 'x-gzip' ? 'gzip' : text;
}

/** What a request's Accept-Encoding allows, as edgecache reads it. */
export interface EncodingPreference {
  /** Forms the client accepts, most preferred first (ties: br, gzip, then identity). */
  readonly order: readonly Form[];
  /** Whether the client accepts the identity form (no Accept-Encoding, or identity not refused). */
  readonly identity: boolean;
  /**
   * The normalised field value: the Vary secondary key's value and what is forwarded to the origin. Undefined
   * when the client accepts only the identity form (the field is then left out).
   */
  readonly normalized: string | undefined;
}

const IDENTITY_ONLY: EncodingPreference = Object.freeze({ order: Object.freeze(['identity'] as Form[]), identity: true, normalized: undefined });

/**
 * Reads Accept-Encoding (RFC 9110 §12.5.3): codings with their q-values, `*` for any coding not listed,
 * `identity;q=0` or `*;q=0` (without identity) refusing the unencoded form. Codings edgecache cannot produce or
 * decode (deflate, zstd, ...) are left out: they are neither served nor asked of the origin. No field, or an empty
 * one, accepts the identity form only (RFC 9110 allows any coding then, but a client that says nothing gets plain
 * bytes, as from every common server).
 *
 * The normalised value lists the accepted forms in preference order, the first without a q-value and each later
 * one a tenth lower, with `identity;q=0` when identity is refused: `gzip, deflate, br` and `br;q=1.0, gzip;q=0.8`
 * both become `br, gzip;q=0.9`, since edgecache serves them the same form from any set of stored forms.
 */
export function encodingPreference(value: string | string[] | undefined): EncodingPreference {
  if (value === undefined) return IDENTITY_ONLY;
  const raw = Array.isArray(value) ? value.join(',') : value;
  const known = preferenceMemo.get(raw);
  if (known !== undefined) return known;
  const parsed = parsePreference(raw);
  preferenceMemo.set(raw, parsed);
  return parsed;
}

// Accept-Encoding values repeat (one per browser family): each is read once. An LRUCache get allocates nothing,
// so the hit path can ask on every request; the most recent spellings are kept, so made-up values cannot grow it.
const preferenceMemo = new LRUCache<string, EncodingPreference>({ max: 512 });

const QVALUE = /^q\s*=\s*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/i;

function parsePreference(raw: string): EncodingPreference {
  const q = new Map<string, number>();
  for (const part of raw.split(',')) {
    const [name = '', ...params] = part.split(';');
    let coding = name.trim().toLowerCase();
    if (coding === '') continue;
    if (coding === 'x-gzip') coding = 'gzip';
    let weight = 1;
    for (const param of params) {
      const m = QVALUE.exec(param.trim());
      if (m) weight = Number(m[1]);
      else if (/^q\s*=/i.test(param.trim())) weight = 0; // a malformed q-value: not an acceptance
    }
    // Listed twice: the first one counts (the field is a list; a repeat adds nothing meaningful).
    if (!q.has(coding)) q.set(coding, weight);
  }
  const star = q.get('*');
  const weightOf = (form: Form): number => q.get(form) ?? star ?? (form === 'identity' ? 0.0001 : 0);
  const forms: Array<{ form: Form; weight: number; rank: number }> = [];
  (['br', 'gzip', 'identity'] as const).forEach((form, rank) => {
    const weight = weightOf(form);
    if (weight > 0) forms.push({ form, weight, rank });
  });
  forms.sort((a, b) => b.weight - a.weight || a.rank - b.rank);
  const order = forms.map((f) => f.form);
  const identity = order.includes('identity');
  if (identity && order.length === 1) return IDENTITY_ONLY;
  const listed: string[] = [];
  order.forEach((form, i) => {
    // An implicit identity in last place needs no mention: it is acceptable by default.
    if (form === 'identity' && i === order.length - 1 && !q.has('identity') && star === undefined) return;
    listed.push(i === 0 ? form : `${form};q=${(1 - i / 10).toFixed(1)}`);
  });
  if (!identity) listed.push('identity;q=0');
  return Object.freeze({ order: Object.freeze(order), identity, normalized: listed.join(', ') });
}

/** The Accept-Encoding value as the Vary secondary key and the origin see it (undefined: leave the field out). */
export function normalizeAcceptEncoding(value: string | string[] | undefined): string | undefined {
  return encodingPreference(value).normalized;
}

/**
 * The form to serve from those available (the identity one included only when `identityAvailable`): the client's
 * most preferred. Undefined when none is acceptable (the client refused identity and accepts no stored coding).
 */
export function chooseForm(pref: EncodingPreference, available: (form: Form) => boolean): Form | undefined {
  const order = pref.order;
  for (let i = 0; i < order.length; i++) {
    const form = order[i] as Form;
    if (available(form)) return form;
  }
  return undefined;
}

/** Whether the client accepts a response in content coding `coding` ('identity' for none). */
export function accepts(pref: EncodingPreference, coding: string): boolean {
  return pref.order.includes(coding as Form);
}

/**
 * Whether an Accept-Encoding value accepts every coding of a Content-Encoding edgecache can neither serve in
 * another form nor undo (zstd, compress, several codings...): each listed with a q-value above 0, or covered by
 * `*` with one; or no Accept-Encoding at all (RFC 9110 §12.5.3: a request without it states no preference, and
 * edgecache cannot make it another form). Read from the raw value, on the pipeline only (such bodies never take
 * the hit path).
 */
export function acceptsEvery(acceptEncoding: string | string[] | undefined, contentEncoding: string | string[] | undefined): boolean {
  if (contentEncoding === undefined) return false;
  if (acceptEncoding === undefined) return true;
  const q = new Map<string, number>();
  for (const part of (Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding).split(',')) {
    const [name = '', ...params] = part.split(';');
    const coding = name.trim().toLowerCase();
    if (coding === '' || q.has(coding)) continue;
    let weight = 1;
    for (const param of params) {
      const m = QVALUE.exec(param.trim());
      if (m) weight = Number(m[1]);
      else if (/^q\s*=/i.test(param.trim())) weight = 0;
    }
    q.set(coding, weight);
  }
  const codings = (Array.isArray(contentEncoding) ? contentEncoding.join(',') : contentEncoding).split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  return codings.length > 0 && codings.every((coding) => (q.get(coding) ?? q.get(coding === 'gzip' ? 'x-gzip' : coding) ?? q.get('*') ?? 0) > 0);
}

/**
 * The entity tag of one form of a response whose own entity tag (as the origin sent it) is `etag`: `"abc"` in
 * br is `"abc-br"`, weak tags stay weak. RFC 9110 §8.8.3: different content codings of one resource must not
 * share a strong validator. Undefined stays undefined.
 */
export function formEtag(etag: string | string[] | undefined, form: string): string | undefined {
  if (typeof etag !== 'string') return undefined;
  const weak = etag.startsWith('W/');
  const opaque = weak ? etag.slice(2) : etag;
  if (opaque.length < 2 || !opaque.endsWith('"')) return undefined;
  return `${weak ? 'W/' : ''}${opaque.slice(0, -1)}-${form}"`;
}

const FORM_SUFFIX = /-(?:br|gzip|identity)"$/;

/**
 * An entity tag list as the origin must see it: each tag edgecache derived for a form (formEtag) back to the
 * origin's own tag. Used for If-None-Match and If-Match sent upstream.
 */
export function originEtags(value: string): string {
  if (!value.includes('-')) return value;
  return value
    .split(',')
    .map((tag) => tag.trim().replace(FORM_SUFFIX, '"'))
    .join(', ');
}

/** Whether an entity tag is one edgecache derived for a form (see formEtag). */
export function isFormEtag(value: string): boolean {
  return FORM_SUFFIX.test(value.trim());
}

/**
 * A stored response's fields once edgecache serves it in more than one form: Vary names Accept-Encoding (RFC 9110
 * §12.5.5), so that caches downstream keep the forms apart. Unchanged when Vary already names it, or is `*`.
 */
export function varyingOnEncoding(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const vary = headers.vary;
  const text = vary === undefined ? '' : Array.isArray(vary) ? vary.join(', ') : vary;
  const names = text.split(',').map((n) => n.trim().toLowerCase());
  if (names.includes('accept-encoding') || names.includes('*')) return headers;
  headers.vary = text.trim() === '' ? 'Accept-Encoding' : `${text}, Accept-Encoding`;
  return headers;
}

/** Whether a response's Vary nominates Accept-Encoding (the origin chose its coding by it). */
export function variesOnEncoding(vary: string | string[] | undefined): boolean {
  if (vary === undefined) return false;
  const text = Array.isArray(vary) ? vary.join(',') : vary;
  return text.split(',').some((n) => n.trim().toLowerCase() === 'accept-encoding');
}

/** Codings edgecache can undo for a client that does not accept them (node:zlib). */
export function decodable(coding: string | undefined): coding is 'br' | 'gzip' | 'deflate' {
  return coding === 'br' || coding === 'gzip' || coding === 'deflate';
}
