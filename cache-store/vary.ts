/**
 * Vary records (RFC 9111 §4.1): a URL whose responses vary has a VaryRecord under its primary key naming the
 * selecting request fields, and each variant lives under primary key + secondary key. These are the rules for
 * keeping the record right as variants are stored; CacheStore applies them to its tiers.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { variantKey, varyKey } from '../policies/http/cache-key.js';
import type { CacheRecord, VaryRecord } from './entry.js';

/** The full key of the variant of `record`'s URL that a request with these headers selects. */
export function selectedVariant(primaryKey: string, record: VaryRecord, headers: IncomingHttpHeaders): string {
  return variantKey(primaryKey, varyKey(record.fields, headers));
}

/** The full keys of every variant a Vary record names. */
export function variantKeys(record: VaryRecord): string[] {
  return record.variants.map((v) => variantKey(record.primaryKey, v));
}

/**
 * The URL's Vary record once variant `secondary` of a response varying on `fields` is stored, and the variants
 * that must go: all of them when the URL varied on other fields (they were selected by another rule), and the
 * least recently stored beyond `maxVariants`. `existing` is what the URL's primary key holds now.
 */
export function varyRecordWith(
  existing: CacheRecord | undefined,
  primaryKey: string,
  fields: string[],
  secondary: string,
  maxVariants: number,
): { record: VaryRecord; dropped: string[] } {
  const dropped: string[] = [];
  let variants: string[];
  if (existing?.kind === 'vary' && sameFields(existing.fields, fields)) {
    variants = existing.variants.filter((v) => v !== secondary);
  } else {
    if (existing?.kind === 'vary') dropped.push(...variantKeys(existing));
    variants = [];
  }
  variants.push(secondary);
  while (variants.length > maxVariants) dropped.push(variantKey(primaryKey, variants.shift() as string));
  return { record: { kind: 'vary', primaryKey, fields, variants }, dropped };
}

export function sameFields(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((f, i) => f === b[i]);
}
