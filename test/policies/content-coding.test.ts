/** Content codings: the compressible types, Accept-Encoding read and normalised, the form chosen, per-form tags. */
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  acceptsEvery,
  accepts,
  chooseForm,
  COMPRESSIBLE_TYPES,
  encodingPreference,
  formEtag,
  hasNoTransform,
  isCompressibleType,
  isFormEtag,
  normalizeAcceptEncoding,
  originEtags,
  storedCoding,
  varyingOnEncoding,
  type Form,
} from '../../policies/http/content-coding.js';
import { varyKey } from '../../policies/http/cache-key.js';
import { brotliQuality, compressBody, GZIP_LEVEL } from '../../proxy/pipeline/compressor.js';

describe('compressible types', () => {
  it('takes the documented list, with parameters and any case', () => {
    for (const type of ['text/html; charset=utf-8', 'TEXT/CSS', 'application/json', 'application/ld+json', 'application/javascript', 'image/svg+xml', 'application/atom+xml', 'application/wasm']) {
      expect(isCompressibleType(type)).toBe(true);
    }
    for (const type of ['image/png', 'video/mp4', 'font/woff2', 'application/zip', 'application/octet-stream', undefined]) {
      expect(isCompressibleType(type)).toBe(false);
    }
    for (const type of COMPRESSIBLE_TYPES.filter((t) => !t.includes('*'))) expect(isCompressibleType(type)).toBe(true);
  });

  it('reads no-transform and the stored coding', () => {
    expect(hasNoTransform('public, No-Transform')).toBe(true);
    expect(hasNoTransform('public, max-age=1')).toBe(false);
    expect(hasNoTransform(['max-age=1', 'no-transform'])).toBe(true);
    // A quoted argument is not a directive of its own.
    expect(hasNoTransform('private="x-a, no-transform", max-age=1')).toBe(false);
    expect(storedCoding(undefined)).toBe('identity');
    expect(storedCoding('x-gzip')).toBe('gzip');
    expect(storedCoding('gzip, br')).toBeUndefined();
  });
});

describe('Accept-Encoding', () => {
  it('normalises requests served the same form to one value', () => {
    expect(normalizeAcceptEncoding('gzip, deflate, br')).toBe('br, gzip;q=0.9');
    expect(normalizeAcceptEncoding('br;q=1.0, gzip;q=0.8')).toBe('br, gzip;q=0.9');
    expect(normalizeAcceptEncoding('gzip,br,zstd')).toBe('br, gzip;q=0.9');
    expect(normalizeAcceptEncoding('gzip')).toBe('gzip');
    expect(normalizeAcceptEncoding('gzip;q=0.5, br;q=0.9')).toBe('br, gzip;q=0.9');
    expect(normalizeAcceptEncoding('br;q=0.5, gzip;q=0.9')).toBe('gzip, br;q=0.9');
  });

  it('leaves the field out for identity only, and keeps a refused identity', () => {
    expect(normalizeAcceptEncoding(undefined)).toBeUndefined();
    expect(normalizeAcceptEncoding('')).toBeUndefined();
    expect(normalizeAcceptEncoding('deflate, zstd')).toBeUndefined();
    expect(normalizeAcceptEncoding('identity')).toBeUndefined();
    expect(normalizeAcceptEncoding('gzip, identity;q=0')).toBe('gzip, identity;q=0');
    expect(normalizeAcceptEncoding('*;q=0')).toBe('identity;q=0');
    expect(normalizeAcceptEncoding('gzip;q=0.5, identity')).toBe('identity, gzip;q=0.9');
  });

  it('applies * to the codings not listed, and q=0 to refuse one', () => {
    const pref = encodingPreference('br;q=0, *');
    expect(accepts(pref, 'br')).toBe(false);
    expect(accepts(pref, 'gzip')).toBe(true);
    expect(accepts(pref, 'identity')).toBe(true);
    expect(encodingPreference('*;q=0, identity').order).toEqual(['identity']);
  });

  it('chooses the preferred form among those stored, none when nothing acceptable is', () => {
    const all = (): boolean => true;
    const only = (...forms: Form[]) => (f: Form) => forms.includes(f);
    expect(chooseForm(encodingPreference('gzip, br'), all)).toBe('br');
    expect(chooseForm(encodingPreference('gzip, br'), only('gzip', 'identity'))).toBe('gzip');
    expect(chooseForm(encodingPreference(undefined), all)).toBe('identity');
    expect(chooseForm(encodingPreference('br, identity;q=0'), only('gzip', 'identity'))).toBeUndefined();
  });

  it('enters the Vary secondary key normalised', () => {
    expect(varyKey(['accept-encoding'], { 'accept-encoding': 'gzip, deflate, br' })).toBe(varyKey(['accept-encoding'], { 'accept-encoding': 'br;q=1.0, gzip;q=0.8' }));
    expect(varyKey(['accept-encoding'], { 'accept-encoding': 'gzip' })).not.toBe(varyKey(['accept-encoding'], { 'accept-encoding': 'br' }));
  });
});

describe('validators per form', () => {
  it('derives a tag per form, weak staying weak, and translates them back for the origin', () => {
    expect(formEtag('"abc"', 'br')).toBe('"abc-br"');
    expect(formEtag('W/"abc"', 'gzip')).toBe('W/"abc-gzip"');
    expect(formEtag(undefined, 'br')).toBeUndefined();
    expect(originEtags('"abc-br", W/"x-gzip", "y"')).toBe('"abc", W/"x", "y"');
    expect(isFormEtag('"abc-identity"')).toBe(true);
    expect(isFormEtag('"abc"')).toBe(false);
  });

  it('adds Accept-Encoding to Vary once', () => {
    expect(varyingOnEncoding({}).vary).toBe('Accept-Encoding');
    expect(varyingOnEncoding({ vary: 'Origin' }).vary).toBe('Origin, Accept-Encoding');
    expect(varyingOnEncoding({ vary: 'accept-encoding' }).vary).toBe('accept-encoding');
    expect(varyingOnEncoding({ vary: '*' }).vary).toBe('*');
  });
});

describe('compressor levels', () => {
  it('uses brotli 11 for small bodies, less for large, gzip 9; output decodes to the input', async () => {
    expect(brotliQuality(10_000)).toBe(11);
    expect(brotliQuality(500_000)).toBe(9);
    expect(brotliQuality(10_000_000)).toBe(6);
    expect(GZIP_LEVEL).toBe(9);
    const body = Buffer.from('hello compression '.repeat(1000));
    const br = (await compressBody(body, 'br')) as Buffer;
    const gz = (await compressBody(body, 'gzip')) as Buffer;
    expect(brotliDecompressSync(br).equals(body)).toBe(true);
    expect(gunzipSync(gz).equals(body)).toBe(true);
  });
});

describe('a coding edgecache cannot undo', () => {
  it('is acceptable when every coding applied is listed (or covered by *) with a q-value above 0, or nothing is said', () => {
    expect(acceptsEvery('zstd', 'zstd')).toBe(true);
    expect(acceptsEvery('gzip, ZSTD;q=0.2', 'zstd')).toBe(true);
    expect(acceptsEvery('*', 'zstd')).toBe(true);
    expect(acceptsEvery('*;q=0, zstd;q=0.5', 'zstd')).toBe(true);
    expect(acceptsEvery('zstd;q=0, *', 'zstd')).toBe(false);
    expect(acceptsEvery('br, gzip', 'zstd')).toBe(false);
    expect(acceptsEvery(undefined, 'zstd')).toBe(true);
    expect(acceptsEvery('zstd;q=x', 'zstd')).toBe(false);
    expect(acceptsEvery('gzip, compress', 'gzip, compress')).toBe(true);
    expect(acceptsEvery('gzip', 'gzip, compress')).toBe(false);
  });
});
