/**
 * HTTP-date (RFC 9110 §5.6.7), strictly: IMF-fixdate and the two obsolete forms a recipient must still accept
 * (RFC 850 and asctime), names matched case-insensitively. Everything else (another zone name, a two-digit year
 * in IMF-fixdate, a missing comma, extra or missing spaces, one-digit hours, a list of dates) is not a date.
 * http-cache-semantics reads dates with the lenient Date.parse; freshness.ts hands it only dates checked here.
 */
import { RecentValues } from './recent-values.js';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY = '(?:mon|tue|wed|thu|fri|sat|sun)';
const DAY_LONG = '(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)';
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';

/** Sun, 06 Nov 1994 08:49:37 GMT */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`, 'i');
/** Sunday, 06-Nov-94 08:49:37 GMT */
const RFC850_DATE = new RegExp(`^${DAY_LONG}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`, 'i');
/** Sun Nov  6 08:49:37 1994 */
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} (\\d{2}| \\d) ${TIME} (\\d{4})$`, 'i');

function toEpoch(year: number, month: string, day: number, hour: number, minute: number, second: number): number | undefined {
  const m = MONTHS.indexOf(month.toLowerCase());
  if (hour > 23 || minute > 59 || second > 60 || day < 1) return undefined;
  const ms = Date.UTC(year, m, day, hour, minute, Math.min(second, 59));
  // 31 Feb and the like roll over into the next month: not a date.
  if (new Date(ms).getUTCDate() !== day) return undefined;
  return ms;
}

/**
 * RFC 9110 §5.6.7: a two-digit year that appears to be more than 50 years in the future is the most recent
 * past year with the same last two digits.
 */
function fullYear(twoDigits: number, now: number): number {
  const current = new Date(now).getUTCFullYear();
  let year = current - (current % 100) + twoDigits;
  if (year > current + 50) year -= 100;
  return year;
}

/**
 * The IMF-fixdates read last (see RecentValues): a miss reads its response's Date and Expires several times, and
 * every response of the same second carries the same Date. Only this form: the RFC 850 form's century depends on
 * `now`.
 */
const recentFixdates = new RecentValues<number>(8);

/** Epoch milliseconds of an HTTP-date, or undefined when the value is not one (several field lines are not). */
export function parseHttpDate(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || Array.isArray(value)) return undefined;
  const text = value.trim();
  const known = recentFixdates.get(text);
  if (known !== undefined) return known;
  let m = IMF_FIXDATE.exec(text);
  if (m) {
    const ms = toEpoch(Number(m[3]), m[2] as string, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
    if (ms !== undefined) recentFixdates.set(text, ms);
    return ms;
  }
  m = RFC850_DATE.exec(text);
  if (m) return toEpoch(fullYear(Number(m[3]), now), m[2] as string, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = ASCTIME_DATE.exec(text);
  if (m) return toEpoch(Number(m[6]), m[1] as string, Number((m[2] as string).trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  return undefined;
}

/** The IMF-fixdate form of an epoch time (what Date.prototype.toUTCString writes). */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString();
}
