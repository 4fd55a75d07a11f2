/**
 * Canonical JSON text for cache keys (the POST cache, --cache-post): two bodies that mean the same JSON value get
 * the same text, in the spirit of RFC 8785 (JCS): object members sorted by their names' UTF-16 code units,
 * insignificant whitespace removed, strings written with the minimal escapes (JSON.stringify's, which are JCS's).
 * Unlike JCS, numbers keep their exact text: `1` and `1.0`, or an integer beyond 2^53, may mean different things
 * to the origin, so they are never rewritten. A text that is not valid JSON (RFC 8259), that repeats a member
 * name in one object (the origin may read either one), or that nests deeper than MAX_DEPTH has no canonical
 * form: the caller digests it as sent.
 */

/** Deepest nesting canonicalised (the parser recurses); deeper documents are digested as sent. */
export const MAX_DEPTH = 256;

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Invalid extends Error {}
const INVALID = new Invalid();

class Canonicaliser {
  private at = 0;
  constructor(private readonly text: string) {}

  document(ignore: ReadonlySet<string> | undefined): string {
    this.space();
    const value = this.value(0, ignore);
    this.space();
    if (this.at !== this.text.length) throw INVALID;
    return value;
  }

  private space(): void {
    const text = this.text;
    let i = this.at;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
    this.at = i;
  }

  private match(pattern: RegExp): string | undefined {
    pattern.lastIndex = this.at;
    const found = pattern.exec(this.text);
    if (found === null) return undefined;
    this.at = pattern.lastIndex;
    return found[0];
  }

  private value(depth: number, ignore?: ReadonlySet<string>): string {
    if (depth > MAX_DEPTH) throw INVALID;
    const c = this.text.charCodeAt(this.at);
    if (c === 0x7b /* { */) return this.object(depth, ignore);
    if (c === 0x5b /* [ */) return this.array(depth);
    if (c === 0x22 /* " */) return this.string();
    const literal = c === 0x74 ? 'true' : c === 0x66 ? 'false' : c === 0x6e ? 'null' : undefined;
    if (literal !== undefined) {
      if (!this.text.startsWith(literal, this.at)) throw INVALID;
      this.at += literal.length;
      return literal;
    }
    const number = this.match(NUMBER);
    if (number === undefined) throw INVALID;
    return number;
  }

  /** The string token in canonical form, and its decoded value. */
  private stringToken(): { text: string; value: string } {
    const text = this.text;
    const start = this.at;
    let i = start + 1;
    let escaped = false;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x22 /* " */) break;
      if (c === 0x5c /* \ */) {
        escaped = true;
        i += 2;
        continue;
      }
      // The end of the text (NaN), or a control character, which may not appear raw.
      if (!(c >= 0x20)) throw INVALID;
      i++;
    }
    const token = text.slice(start, i + 1);
    this.at = i + 1;
    // Without escapes the token is already canonical; with them JSON.parse checks and decodes them (a SyntaxError
    // for a bad one), and JSON.stringify writes the minimal ones.
    if (!escaped) return { text: token, value: token.slice(1, -1) };
    const value = JSON.parse(token) as string;
    return { text: JSON.stringify(value), value };
  }

  private string(): string {
    return this.stringToken().text;
  }

  private array(depth: number): string {
    this.at++;
    this.space();
    if (this.text.charCodeAt(this.at) === 0x5d /* ] */) {
      this.at++;
      return '[]';
    }
    const items: string[] = [];
    for (;;) {
      items.push(this.value(depth + 1));
      this.space();
      const c = this.text.charCodeAt(this.at++);
      if (c === 0x5d) return `[${items.join(',')}]`;
      if (c !== 0x2c /* , */) throw INVALID;
      this.space();
    }
  }

  private object(depth: number, ignore: ReadonlySet<string> | undefined): string {
    this.at++;
    this.space();
    if (this.text.charCodeAt(this.at) === 0x7d /* } */) {
      this.at++;
      return '{}';
    }
    const members = new Map<string, string>();
    for (;;) {
      if (this.text.charCodeAt(this.at) !== 0x22) throw INVALID;
      const name = this.stringToken();
      this.space();
      if (this.text.charCodeAt(this.at++) !== 0x3a /* : */) throw INVALID;
      this.space();
      const value = this.value(depth + 1);
      if (members.has(name.value)) throw INVALID;
      members.set(name.value, `${name.text}:${value}`);
      this.space();
      const c = this.text.charCodeAt(this.at++);
      if (c === 0x7d) break;
      if (c !== 0x2c) throw INVALID;
      this.space();
    }
    // Sorted by UTF-16 code units (JS string comparison), as RFC 8785 §3.2.3 sorts.
    const names = [...members.keys()].filter((name) => ignore === undefined || !ignore.has(name)).sort();
    return `{${names.map((name) => members.get(name) as string).join(',')}}`;
  }
}

/**
 * The canonical text of a JSON document, or undefined when `text` is not one (see the module comment). `ignore`
 * names top-level members left out (when the document is an object).
 */
export function canonicalJson(text: string, ignore?: ReadonlySet<string>): string | undefined {
  try {
    return new Canonicaliser(text).document(ignore !== undefined && ignore.size > 0 ? ignore : undefined);
  } catch (err) {
    if (err instanceof Invalid || err instanceof RangeError || err instanceof SyntaxError) return undefined;
    throw err;
  }
}
