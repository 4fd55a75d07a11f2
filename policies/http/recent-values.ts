/**
 * The last few values computed from texts that repeat (the Cache-Control an origin always sends, the Date of this
 * second), kept with their text in a ring and searched in order. A text among them costs a few string comparisons
 * and no hashing; one that is not costs as many more (a Map cleared when full cost a text not seen before 1.7 µs
 * in `npm run bench:micro`, the ring 0.3), and nothing is kept beyond `size` entries, so made-up texts cannot grow
 * it. Values are shared by every caller: read-only.
 */
export class RecentValues<V> {
  /** (Empty slots hold undefined, which no text equals.) */
  private readonly texts: Array<string | undefined>;
  private readonly values: Array<V | undefined>;
  private next = 0;

  constructor(private readonly size: number) {
    this.texts = new Array<string | undefined>(size).fill(undefined);
    this.values = new Array<V | undefined>(size).fill(undefined);
  }

  /** The value remembered for `text`, or undefined. */
  get(text: string): V | undefined {
    const texts = this.texts;
    for (let i = 0; i < this.size; i++) if (texts[i] === text) return this.values[i];
    return undefined;
  }

  /** Remembers `value` (never undefined) for `text`, in place of the oldest. */
  set(text: string, value: V): void {
    this.texts[this.next] = text;
    this.values[this.next] = value;
    this.next = (this.next + 1) % this.size;
  }
}
