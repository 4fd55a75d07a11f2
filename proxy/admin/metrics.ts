/**
 * GET /metrics on the admin port: the /stats document rewritten in the Prometheus text exposition format
 * (version 0.0.4). It is derived from the same snapshot when /metrics is scraped (under --workers: the cluster
 * primary's sum), so the two never disagree and nothing is added to the request path.
 */
import { OUTCOME_COUNTERS } from '../pipeline/outcome.js';
import type { ProxyStats } from './stats.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type MetricType = 'counter' | 'gauge' | 'untyped';

/** One HELP per ProxyStats counter; typed so that a counter added there without a line here does not compile. */
const COUNTERS: Record<Exclude<keyof ProxyStats, 'toJSON'>, string> = {
  hits: 'Responses served fresh from the cache (X-Cache: HIT).',
  misses: 'Responses fetched from the origin for a cacheable request (X-Cache: MISS).',
  stale: 'Stale responses served (max-stale, stale-while-revalidate, stale-if-error; X-Cache: STALE).',
  revalidated: 'Stored responses served after the origin confirmed them (304; X-Cache: REVALIDATED).',
  bypass: 'Requests passed through to the origin without the cache (other methods, ranges on a miss; X-Cache: BYPASS).',
  badRequests: 'Requests answered 4xx by edgecache itself (malformed request target or Host).',
  originFetches: 'Requests sent to the origin, for any reason.',
  originErrors: 'Origin fetches that failed (refused, timed out, reset).',
  stored: 'Origin responses stored in the cache.',
  notStored: 'Origin responses fetched but not stored.',
  invalidations: 'Entries removed after an unsafe request (RFC 9111 section 4.4).',
  coalesced: "Requests that waited for another request's origin fetch instead of making their own.",
  coalesceDetached: 'Waiters that could not share the response (or waited too long) and fetched on their own.',
  backgroundRefreshes: 'stale-while-revalidate refreshes started in the background.',
  staleIfError: "Stale responses served because the origin failed (stale-if-error, or the operator's grace).",
  hitForMiss: 'Requests that skipped the collapsing queue because the URL recently proved uncacheable.',
  purges: 'Purge requests applied.',
  purgedEntries: 'Entries removed or marked stale by purges.',
  purgeAuthFailures: 'Purge attempts refused for authentication.',
  purgesBroadcast: 'Purges and invalidations published to the other nodes sharing the Redis (--redis).',
  purgesReceived: 'Purges and invalidations received from other nodes and applied here (--redis).',
  purgeBroadcastFailures: 'Purges that could not be published at once (Redis unavailable; retried when it is back).',
  localTierDrops: 'Times this node dropped its memory and disk tiers: the purge stream was trimmed past its position, or Redis lost its data (a new epoch).',
};

/** The X-Cache outcomes, each one of the counters above. */
const RESPONSES = Object.entries(OUTCOME_COUNTERS);

interface TierField {
  type: MetricType;
  help: string;
}

/** Per-tier figures (TierStats and the tiers' extras); a numeric field missing here is exposed untyped. */
const TIER_FIELDS: Record<string, TierField> = {
  entries: { type: 'gauge', help: 'Entries in the tier.' },
  bytes: { type: 'gauge', help: 'Bytes held by the tier.' },
  maxBytes: { type: 'gauge', help: "The tier's byte budget." },
  evictions: { type: 'counter', help: 'Entries evicted from the tier to stay within its budget.' },
  rejections: { type: 'counter', help: "Entries the memory tier's eviction policy declined to admit." },
  writeFailures: { type: 'counter', help: 'Disk writes that failed to commit (I/O error) or found no room in the data file.' },
  writesDeclined: {
    type: 'counter',
    help: 'Writes declined: over the budget or the size limit, already expired, queue full, no room after bounded eviction, writes paused by a full disk or map (disk), Redis unavailable (redis).',
  },
  diskFull: { type: 'counter', help: 'Times disk writes paused because the filesystem was full.' },
  mapFull: { type: 'counter', help: 'Times a disk write found the data file at its budget (--disk-max) with no free page for it.' },
  writesPaused: { type: 'gauge', help: 'Whether disk writes are paused by a full disk or map (under --workers: how many workers).' },
  usedBytes: { type: 'gauge', help: 'Pages the disk tier uses in its data file, in bytes: what --disk-max holds.' },
  corruptRecords: { type: 'counter', help: 'Unreadable records found in the tier (deleted).' },
  connected: { type: 'gauge', help: 'Whether the tier is connected to its server (redis: 1 or 0; under --workers, the workers connected).' },
  reads: { type: 'counter', help: 'Lookups sent to the tier (redis).' },
  hits: { type: 'counter', help: 'Lookups that found an entry or a Vary record in the tier (redis).' },
  writes: { type: 'counter', help: 'Records written to the tier and acknowledged (redis).' },
  errors: { type: 'counter', help: 'Commands that failed or timed out (redis).' },
  skipped: { type: 'counter', help: 'Lookups answered as misses without asking the tier, because it was unavailable or backing off (redis).' },
  deletesDropped: { type: 'counter', help: 'Deletes that could not be sent while Redis was unavailable and did not fit the retry list (redis).' },
  expired: { type: 'counter', help: 'Disk entries removed because they were past their deletion time (sweeps and reads).' },
  readFailures: { type: 'counter', help: 'Disk reads that failed inside LMDB (answered as misses).' },
  pendingWrites: { type: 'gauge', help: 'Writes queued and not yet committed (disk) or answered (redis).' },
  pendingBytes: { type: 'gauge', help: 'Bytes of the writes queued and not yet committed (disk) or answered (redis).' },
  fileBytes: { type: 'gauge', help: 'Size of the disk data file (free pages and reserved space included; LMDB files never shrink).' },
};

const LOOP_DELAY: ReadonlyArray<[string, string]> = [
  ['p50', 'Median event-loop delay since the process started, in seconds.'],
  ['p99', '99th percentile of the event-loop delay since the process started, in seconds.'],
  ['max', 'Longest event-loop delay since the process started, in seconds.'],
];

interface Family {
  type: MetricType;
  help: string;
  samples: string[];
}

/** Formats a /stats document (single process or the cluster primary's sum) as exposition text. */
export function formatMetrics(doc: Record<string, unknown>): string {
  const families = new Map<string, Family>();
  const add = (name: string, type: MetricType, help: string, value: unknown, labels?: Record<string, string>): void => {
    if (typeof value !== 'number') return;
    let family = families.get(name);
    if (family === undefined) {
      family = { type, help, samples: [] };
      families.set(name, family);
    }
    family.samples.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
  };

  for (const [field, help] of Object.entries(COUNTERS)) add(`edgecache_${snakeCase(field)}_total`, 'counter', help, doc[field]);
  for (const [cache, field] of RESPONSES) {
    add('edgecache_responses_total', 'counter', 'Responses by X-Cache outcome (the hits, misses, stale, revalidated and bypass counters).', doc[field], { cache });
  }

  const tiers = isRecord(doc.tiers) ? doc.tiers : {};
  for (const [key, stats] of Object.entries(tiers)) {
    if (!isRecord(stats)) continue;
    const tier = typeof stats.name === 'string' ? stats.name : key;
    const info: Record<string, string> = { tier };
    for (const [field, value] of Object.entries(stats)) {
      if (field === 'name') continue;
      if (typeof value === 'string') {
        info[snakeCase(field)] = value;
        continue;
      }
      const known = TIER_FIELDS[field];
      const type = known?.type ?? 'untyped';
      const name = `edgecache_tier_${snakeCase(field)}${type === 'counter' ? '_total' : ''}`;
      add(name, type, known?.help ?? `Tier figure "${field}" as reported in /stats.`, value, { tier });
    }
    if (Object.keys(info).length > 1) add('edgecache_tier_info', 'gauge', "A tier's settings as labels (e.g. the memory tier's eviction policy); always 1.", 1, info);
  }

  add('edgecache_uptime_seconds', 'gauge', 'Seconds since edgecache started (under --workers: the longest-running worker).', doc.uptimeSeconds);
  add('edgecache_workers', 'gauge', 'Worker processes running (under --workers).', doc.workers);
  // Event-loop delay is per process: one series per worker (or for the single process), labelled with its pid.
  const processes = Array.isArray(doc.processes) ? (doc.processes as unknown[]) : [doc];
  for (const part of processes) {
    if (!isRecord(part) || !isRecord(part.eventLoopDelayMs)) continue;
    const labels = typeof part.pid === 'number' ? { pid: String(part.pid) } : undefined;
    for (const [stat, help] of LOOP_DELAY) {
      const ms = part.eventLoopDelayMs[stat];
      add(`edgecache_event_loop_delay_${stat}_seconds`, 'gauge', help, typeof ms === 'number' ? Math.round(ms * 1000) / 1e6 : undefined, labels);
    }
  }

  let out = '';
  for (const [name, family] of families) {
    out += `# HELP ${name} ${escapeHelp(family.help)}\n# TYPE ${name} ${family.type}\n`;
    for (const sample of family.samples) out += `${sample}\n`;
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function snakeCase(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`).replace(/[^a-zA-Z0-9_]/g, '_');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function formatLabels(labels: Record<string, string> | undefined): string {
  if (labels === undefined) return '';
  const parts = Object.entries(labels).map(([name, value]) => `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
