/** An in-memory tag → keys index for a tier that holds entries in process memory. */

/** What the index reads of a record: an entry's tags (a Vary record has none). */
type Tagged = { kind: 'vary' } | { kind: 'entry'; meta: { tags: readonly string[] } };

export class TagIndex {
  private readonly byTag = new Map<string, Set<string>>();

  add(key: string, record: Tagged): void {
    if (record.kind !== 'entry') return;
    for (const tag of record.meta.tags) {
      let keys = this.byTag.get(tag);
      if (keys === undefined) {
        keys = new Set();
        this.byTag.set(tag, keys);
      }
      keys.add(key);
    }
  }

  remove(key: string, record: Tagged): void {
    if (record.kind !== 'entry') return;
    for (const tag of record.meta.tags) {
      const keys = this.byTag.get(tag);
      if (keys === undefined) continue;
      keys.delete(key);
      if (keys.size === 0) this.byTag.delete(tag);
    }
  }

  keys(tag: string): string[] {
    const keys = this.byTag.get(tag);
    return keys === undefined ? [] : [...keys];
  }

  clear(): void {
    this.byTag.clear();
  }
}
