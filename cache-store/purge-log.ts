/**
 * Purges as a sequence of generations, so that a write computed before a purge cannot land after it.
 *
 * An origin fill (or a revalidation, or a copy from a lower tier) reads the current generation when it starts,
 * and asks again when it is about to store: `since(generation, subject)` says whether any purge recorded since
 * then addresses what it is storing. The store then drops the write (hard purge: the purged response must not
 * be served again, RFC 9111 §4.4 applied by the operator's purge) or stores it already stale (soft purge).
 *
 * Memory stays bounded: the most recent purges are kept (at most MAX_MARKS, and MAX_ITEMS selector items in
 * all); a write older than the oldest purge kept cannot be checked and is treated as purged hard. A write whose
 * generation is current (the usual case: no purge happened while it was fetched) costs one comparison.
 */
import { hostStart } from '../policies/http/cache-key.js';
import type { PurgeSelector } from './purge.js';

/** What a write is about: its full key, its URL's primary key, and its surrogate keys when known. */
export interface PurgeSubject {
  key: string;
  primaryKey: string;
  /** undefined: not known yet (the response headers have not arrived), so any tag purge may address it. */
  tags?: readonly string[];
}

/** What the purges since a generation mean for a subject. */
export type PurgeVerdict = 'none' | 'soft' | 'hard';

export const MAX_MARKS = 256;
const MAX_ITEMS = 100_000;

interface Mark {
  generation: number;
  soft: boolean;
  items: number;
  all: boolean;
  urls: ReadonlySet<string>;
  paths: ReadonlySet<string>;
  tags: ReadonlySet<string>;
  keyPrefixes: readonly string[];
  pathPrefixes: readonly string[];
}

const EMPTY: ReadonlySet<string> = new Set();

function setOf(list: string[] | undefined): ReadonlySet<string> {
  return list === undefined || list.length === 0 ? EMPTY : new Set(list);
}

/** The path (and query) of a key: [https://] host + path, perhaps + newline + Vary secondary key. */
export function pathOf(key: string): string {
  const slash = key.indexOf('/', hostStart(key));
  if (slash === -1) return '';
  const newline = key.indexOf('\n', slash);
  return newline === -1 ? key.slice(slash) : key.slice(slash, newline);
}

/** Whether a purge selector addresses a subject, as CacheStore.purge would find it in a tier. */
function addresses(mark: Mark, subject: PurgeSubject): boolean {
  if (mark.all || mark.urls.has(subject.primaryKey)) return true;
  if (mark.tags.size > 0) {
    if (subject.tags === undefined) return true;
    for (const tag of subject.tags) if (mark.tags.has(tag)) return true;
  }
  if (mark.paths.size > 0 || mark.pathPrefixes.length > 0) {
    const path = pathOf(subject.primaryKey);
    if (mark.paths.has(path)) return true;
    for (const prefix of mark.pathPrefixes) if (path.startsWith(prefix)) return true;
  }
  for (const prefix of mark.keyPrefixes) if (subject.key.startsWith(prefix)) return true;
  return false;
}

export class PurgeLog {
  private generation = 0;
  /** Oldest first. */
  private marks: Mark[] = [];
  private items = 0;
  /** Writes that started before this generation cannot be checked (their purges were forgotten). */
  private floor = 0;

  /** The generation a write starting now records. */
  get current(): number {
    return this.generation;
  }

  /** Records a purge (before any of its deletes); returns its generation. */
  record(selector: PurgeSelector, soft: boolean): number {
    const generation = ++this.generation;
    const mark: Mark = {
      generation,
      soft,
      all: selector.all === true,
      urls: setOf(selector.urls),
      paths: setOf(selector.paths),
      tags: setOf(selector.tags),
      keyPrefixes: selector.keyPrefixes ?? [],
      pathPrefixes: selector.pathPrefixes ?? [],
      items: 1,
    };
    mark.items += mark.urls.size + mark.paths.size + mark.tags.size + mark.keyPrefixes.length + mark.pathPrefixes.length;
    this.marks.push(mark);
    this.items += mark.items;
    let drop = 0;
    while (this.marks.length - drop > 1 && (this.marks.length - drop > MAX_MARKS || this.items > MAX_ITEMS)) {
      const gone = this.marks[drop] as Mark;
      this.items -= gone.items;
      this.floor = gone.generation;
      drop++;
    }
    if (drop > 0) this.marks = this.marks.slice(drop);
    return generation;
  }

  /**
   * What the purges recorded after `generation` mean for the subject: 'hard' when one of them removed it (or
   * when they cannot be told any more), else 'soft' when one marked it stale, else 'none'.
   */
  since(generation: number, subject: PurgeSubject): PurgeVerdict {
    if (generation >= this.generation) return 'none';
    if (generation < this.floor) return 'hard';
    let verdict: PurgeVerdict = 'none';
    for (let i = this.marks.length - 1; i >= 0; i--) {
      const mark = this.marks[i] as Mark;
      if (mark.generation <= generation) break;
      if (!addresses(mark, subject)) continue;
      if (!mark.soft) return 'hard';
      verdict = 'soft';
    }
    return verdict;
  }
}
