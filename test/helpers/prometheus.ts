/**
 * A strict reader of the Prometheus text exposition format (0.0.4) for tests: throws on anything a scraper
 * could reject or misread, and returns the samples by series (a histogram's as `name_bucket{...,le="..."}`,
 * `name_sum`, `name_count`).
 */

export interface Exposition {
  /** Family name → its TYPE and HELP. */
  families: Map<string, { type: string; help: string }>;
  /** Series (`name{a="x",b="y"}`, labels as written) → value. */
  series: Map<string, number>;
  /** The value of one series; labels in the order edgecache writes them. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('exposition text must end with a newline');
  const families = new Map<string, { type: string; help: string }>();
  const helps = new Map<string, string>();
  const series = new Map<string, number>();
  const done = new Set<string>();
  let current: string | undefined;
  const enter = (name: string, line: number): void => {
    if (name === current) return;
    if (current !== undefined) done.add(current);
    if (done.has(name)) throw new Error(`line ${line}: family ${name} is split`);
    current = name;
  };
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, index) => {
    const at = index + 1;
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!match) throw new Error(`line ${at}: malformed comment: ${line}`);
      const [, kind, name, rest] = match as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`line ${at}: bad metric name ${name}`);
      enter(name, at);
      if (kind === 'HELP') {
        if (helps.has(name)) throw new Error(`line ${at}: second HELP for ${name}`);
        if (/\\(?![\\n])/.test(rest)) throw new Error(`line ${at}: bad escape in HELP`);
        helps.set(name, rest);
      } else {
        if (families.has(name)) throw new Error(`line ${at}: second TYPE for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`line ${at}: unknown type ${rest}`);
        families.set(name, { type: rest, help: '' });
      }
      return;
    }
    // Blank lines are ignored by the format (prom-client writes one between families).
    if (line.trim() === '') return;
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nameMatch) throw new Error(`line ${at}: no metric name: ${line}`);
    const name = nameMatch[0];
    let rest = line.slice(name.length);
    const labels: string[] = [];
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      const seen = new Set<string>();
      while (!rest.startsWith('}')) {
        const label = LABEL.exec(rest);
        if (!label) throw new Error(`line ${at}: malformed labels: ${line}`);
        const labelName = label[1] as string;
        if (seen.has(labelName)) throw new Error(`line ${at}: label ${labelName} repeated`);
        seen.add(labelName);
        labels.push(label[0]);
        rest = rest.slice(label[0].length);
        if (rest.startsWith(',')) rest = rest.slice(1);
        else if (!rest.startsWith('}')) throw new Error(`line ${at}: malformed labels: ${line}`);
      }
      rest = rest.slice(1);
    }
    // NaN and Inf in any case, as Prometheus reads them (Go's ParseFloat): prom-client writes NaN as `Nan`.
    const valueMatch = /^ ((?:nan)|[+-]?inf|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/i.exec(rest);
    if (!valueMatch) throw new Error(`line ${at}: malformed value: ${line}`);
    // A histogram's samples are named after its family with _bucket, _sum and _count.
    const base = /_(bucket|sum|count)$/.test(name) && families.get(name.replace(/_(bucket|sum|count)$/, ''))?.type === 'histogram' ? name.replace(/_(bucket|sum|count)$/, '') : name;
    const family = families.get(base);
    if (family === undefined) throw new Error(`line ${at}: sample of ${name} before its TYPE`);
    if (!helps.has(base)) throw new Error(`line ${at}: sample of ${name} without HELP`);
    enter(base, at);
    const key = labels.length ? `${name}{${labels.join(',')}}` : name;
    if (series.has(key)) throw new Error(`line ${at}: duplicate series ${key}`);
    const raw = valueMatch[1] as string;
    const special = raw.toLowerCase();
    series.set(key, special === 'nan' ? NaN : special === '+inf' || special === 'inf' ? Infinity : special === '-inf' ? -Infinity : Number(raw));
  });
  for (const [name, help] of helps) {
    const family = families.get(name);
    if (family === undefined) throw new Error(`HELP without TYPE for ${name}`);
    family.help = help;
  }
  for (const name of families.keys()) if (!helps.has(name)) throw new Error(`TYPE without HELP for ${name}`);
  return {
    families,
    series,
    value: (name, labels) => {
      const list = Object.entries(labels ?? {}).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
      return series.get(list.length ? `${name}{${list.join(',')}}` : name);
    },
  };
}
