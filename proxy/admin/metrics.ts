/**
 * GET /metrics on the admin port: a prom-client 15 registry per process (prom-client's default process and
 * Node metrics included), and under --workers the cluster primary's sum of every worker's (AggregatorRegistry).
 *
 * The request path never touches prom-client: its children hash their labels on every call. Requests are counted
 * in a preallocated table (cache result × tier) and their durations in preallocated bucket arrays
 * ({@link FastHistogram}); a hit costs two array increments and a short bucket search, no allocation. prom-client
 * reads the tables when scraped, through metric objects whose get() builds the exposition values. The other
 * figures (ProxyStats counters, each tier's stats) are read at scrape time too, as before.
 */
import { AggregatorRegistry, collectDefaultMetrics, Registry, type Metric, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { CacheStore } from '../../cache-store/cache-store.js';
import { ORIGIN_ERROR_FIELDS, type ProxyStats } from './stats.js';
import { FORM_CODINGS, SKIP_REASONS, type CompressorStats } from '../pipeline/compressor.js';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** The `cache` label: a response's X-Cache outcome, lower-cased. */
export const CACHE_RESULTS = ['hit', 'miss', 'stale', 'revalidated', 'bypass'] as const;
/** The `tier` label: where the body came from (origin: fetched, or relayed without the cache). */
export const RESULT_TIERS = ['memory', 'disk', 'redis', 'origin'] as const;
export type ResultTier = (typeof RESULT_TIERS)[number];

/** Seconds; from half a millisecond (a hit) to half a minute (a slow origin). */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type Values = Array<MetricValue<string>>;

/** A histogram over a fixed set of label values, in preallocated arrays: observe() allocates nothing. */
class FastHistogram {
  private readonly counts: Float64Array;
  private readonly sums: Float64Array;
  private readonly width = DURATION_BUCKETS.length + 1;

  constructor(
    private readonly label: string | undefined,
    private readonly labelValues: readonly string[],
  ) {
    this.counts = new Float64Array(labelValues.length * this.width);
    this.sums = new Float64Array(labelValues.length);
  }

  observe(index: number, seconds: number): void {
    let bucket = 0;
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number)) bucket++;
    const at = index * this.width + bucket;
    this.counts[at] = (this.counts[at] as number) + 1;
    this.sums[index] = (this.sums[index] as number) + seconds;
  }

  values(name: string): Values {
    const values: Values = [];
    this.labelValues.forEach((labelValue, index) => {
      const labels = this.label === undefined ? {} : { [this.label]: labelValue };
      let cumulative = 0;
      for (let bucket = 0; bucket < this.width; bucket++) {
        cumulative += this.counts[index * this.width + bucket] as number;
        const le = bucket < DURATION_BUCKETS.length ? (DURATION_BUCKETS[bucket] as number) : '+Inf';
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative } as MetricValue<string>);
      }
      values.push({ metricName: `${name}_sum`, labels, value: this.sums[index] as number } as MetricValue<string>);
      values.push({ metricName: `${name}_count`, labels, value: cumulative } as MetricValue<string>);
    });
    return values;
  }
}

type MetricType = 'counter' | 'gauge' | 'histogram';

/** A metric prom-client reads through get() (the shape of its own metrics' get(); summed across workers). */
function metric(name: string, type: MetricType, help: string, values: () => Values): Metric {
  const get = async (): Promise<MetricObjectWithValues<MetricValue<string>>> => ({ name, help, type, values: values(), aggregator: 'sum' }) as never;
  return { name, help, type, aggregator: 'sum', get, reset: () => undefined } as unknown as Metric;
}

/** One HELP per ProxyStats counter that is not in edgecache_requests_total; typed so that none is forgotten. */
type OriginErrorField = (typeof ORIGIN_ERROR_FIELDS)[keyof typeof ORIGIN_ERROR_FIELDS];
const COUNTERS: Record<Exclude<keyof ProxyStats, 'toJSON' | 'originError' | 'hits' | 'misses' | 'stale' | 'revalidated' | 'bypass' | 'originErrors' | OriginErrorField>, string> = {
  badRequests: 'Requests answered 4xx by edgecache itself (malformed request target or Host).',
  originFetches: 'Requests sent to the origin, for any reason.',
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

interface TierField {
  type: 'counter' | 'gauge';
  help: string;
}

/** Per-tier figures (TierStats and the tiers' extras); a numeric field missing here is not exposed. */
const TIER_FIELDS: Record<string, TierField> = {
  entries: { type: 'gauge', help: 'Entries in the tier.' },
  bytes: { type: 'gauge', help: 'Bytes held by the tier.' },
  maxBytes: { type: 'gauge', help: "The tier's byte budget." },
  evictions: { type: 'counter', help: 'Entries evicted from the tier to stay within its budget.' },
  rejections: { type: 'counter', help: "Entries the memory tier's eviction policy declined to admit." },
  slabBytes: { type: 'gauge', help: "Bytes of the memory tier's slabs of packed small entries (live entries, and room not yet reclaimed by compaction)." },
  slabLiveBytes: { type: 'gauge', help: 'Bytes of the packed small entries (header fields and body) the memory tier holds in its slabs.' },
  decodedEntries: { type: 'gauge', help: "Packed small entries of the memory tier held decoded for hits (the hot ones; see --memory-max)." },
  decodedBytes: { type: 'gauge', help: 'What the decoded entries are charged beside the packed ones (within --memory-max).' },
  writeFailures: { type: 'counter', help: 'Disk writes that failed to commit (I/O error) or found no room in the data file.' },
  writesDeclined: { type: 'counter', help: 'Writes declined (over budget or size limit, expired, queue full, disk or map full, Redis unavailable).' },
  diskFull: { type: 'counter', help: 'Times disk writes paused because the filesystem was full.' },
  mapFull: { type: 'counter', help: 'Times a disk write found the data file at its budget (--disk-max) with no free page for it.' },
  writesPaused: { type: 'gauge', help: 'Whether disk writes are paused by a full disk or map (under --workers: how many workers).' },
  usedBytes: { type: 'gauge', help: 'Pages the disk tier uses in its data file, in bytes: what --disk-max holds.' },
  corruptRecords: { type: 'counter', help: 'Unreadable records found in the tier (deleted).' },
  connected: { type: 'gauge', help: 'Whether the tier is connected to its server (redis; under --workers, the workers connected).' },
  reads: { type: 'counter', help: 'Lookups sent to the tier (redis).' },
  hits: { type: 'counter', help: 'Lookups that found an entry or a Vary record in the tier (redis).' },
  writes: { type: 'counter', help: 'Records written to the tier and acknowledged (redis).' },
  errors: { type: 'counter', help: 'Commands that failed or timed out (redis).' },
  skipped: { type: 'counter', help: 'Lookups answered as misses without asking the tier, unavailable or backing off (redis).' },
  deletesDropped: { type: 'counter', help: 'Deletes that could not be sent while Redis was unavailable and did not fit the retry list (redis).' },
  expired: { type: 'counter', help: 'Disk entries removed because they were past their deletion time (sweeps and reads).' },
  readFailures: { type: 'counter', help: 'Disk reads that failed inside LMDB (answered as misses).' },
  pendingWrites: { type: 'gauge', help: 'Writes queued and not yet committed (disk) or answered (redis).' },
  pendingBytes: { type: 'gauge', help: 'Bytes of the writes queued and not yet committed (disk) or answered (redis).' },
  fileBytes: { type: 'gauge', help: 'Size of the disk data file (free pages and reserved space included).' },
};

/**
 * Figures every worker reads from the same place (the shared LMDB environment, the Redis server): under
 * --workers only one worker reports them, so that the primary's sum counts them once.
 */
const SHARED_FIGURES: Record<string, ReadonlySet<string>> = {
  disk: new Set(['entries', 'bytes', 'maxBytes', 'usedBytes', 'fileBytes']),
  redis: new Set(['entries', 'bytes', 'maxBytes', 'evictions']),
};

function snakeCase(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function tierMetricName(field: string, type: 'counter' | 'gauge'): string {
  return `edgecache_tier_${snakeCase(field)}${type === 'counter' ? '_total' : ''}`;
}

/** This process's metrics: the hot tables the request path writes, and the registry that exposes them. */
export class ProxyMetrics {
  /** edgecache_requests_total, indexed cache result × RESULT_TIERS.length + tier. */
  readonly requests = new Float64Array(CACHE_RESULTS.length * RESULT_TIERS.length);
  /** edgecache_request_duration_seconds by cache result. */
  readonly requestDuration = new FastHistogram('cache', CACHE_RESULTS);
  /** edgecache_origin_request_duration_seconds: from sending the request to the origin's response headers. */
  readonly originDuration = new FastHistogram(undefined, ['']);
  readonly registry = new Registry();
  /** Whether the shared tiers' figures are reported by this process (see SHARED_FIGURES). */
  private reportShared = true;

  constructor(stats: ProxyStats, store: CacheStore | undefined) {
    const { registry } = this;
    collectDefaultMetrics({ register: registry });
    registry.registerMetric(
      metric('edgecache_requests_total', 'counter', 'Responses by cache result (X-Cache, lower-cased) and the tier the body came from (origin: fetched or relayed).', () => {
        const values: Values = [];
        CACHE_RESULTS.forEach((cache, c) =>
          RESULT_TIERS.forEach((tier, t) => values.push({ labels: { cache, tier }, value: this.requests[c * RESULT_TIERS.length + t] as number })),
        );
        return values;
      }),
    );
    registry.registerMetric(
      metric(
        'edgecache_request_duration_seconds',
        'histogram',
        'Time from the request reaching edgecache to its last byte handed to the socket (fresh hits: to the stored Buffer written), by cache result.',
        () => this.requestDuration.values('edgecache_request_duration_seconds'),
      ),
    );
    registry.registerMetric(
      metric('edgecache_origin_request_duration_seconds', 'histogram', "Time from sending a request to the origin (a cache fill, or a request passed through) to its response headers.", () =>
        this.originDuration.values('edgecache_origin_request_duration_seconds'),
      ),
    );
    registry.registerMetric(
      metric(
        'edgecache_origin_errors_total',
        'counter',
        'Origin requests that failed, by kind: refused, dns, connect-timeout, headers-timeout, body-timeout, reset (the connection closed or reset mid-response), other.',
        () => Object.entries(ORIGIN_ERROR_FIELDS).map(([kind, field]) => ({ labels: { kind }, value: stats[field] })),
      ),
    );
    for (const [field, help] of Object.entries(COUNTERS)) {
      registry.registerMetric(metric(`edgecache_${snakeCase(field)}_total`, 'counter', help, () => [{ labels: {}, value: stats[field as keyof typeof COUNTERS] }]));
    }
    if (store === undefined) return;
    for (const [field, { type, help }] of Object.entries(TIER_FIELDS)) {
      registry.registerMetric(
        metric(tierMetricName(field, type), type, help, () => {
          const values: Values = [];
          for (const figures of store.stats() as unknown as Array<Record<string, unknown>>) {
            const tier = String(figures.name);
            const value = figures[field];
            if (typeof value !== 'number') continue;
            if (!this.reportShared && SHARED_FIGURES[tier]?.has(field)) continue;
            values.push({ labels: { tier }, value });
          }
          return values;
        }),
      );
    }
  }

  /** One response: its cache result and tier (indexes into CACHE_RESULTS and RESULT_TIERS). */
  countRequest(cache: number, tier: number): void {
    const at = cache * RESULT_TIERS.length + tier;
    this.requests[at] = (this.requests[at] as number) + 1;
  }

  /** The compressor's counters (--compress, proxy/pipeline/compressor.ts), read when scraped. */
  addCompression(stats: CompressorStats): void {
    const { registry } = this;
    registry.registerMetric(
      metric('edgecache_compressed_total', 'counter', 'Compressed forms stored beside the identity body (--compress), by content coding.', () =>
        FORM_CODINGS.map((encoding) => ({ labels: { encoding }, value: stats.compressed[encoding] })),
      ),
    );
    registry.registerMetric(
      metric('edgecache_compression_bytes_in_total', 'counter', 'Identity bytes of the bodies whose compressed forms were stored (each body once).', () => [
        { labels: {}, value: stats.bytesIn },
      ]),
    );
    registry.registerMetric(
      metric('edgecache_compression_bytes_out_total', 'counter', 'Bytes of the compressed forms stored, by content coding.', () =>
        FORM_CODINGS.map((encoding) => ({ labels: { encoding }, value: stats.bytesOut[encoding] })),
      ),
    );
    registry.registerMetric(
      metric(
        'edgecache_compression_skipped_total',
        'counter',
        'Compressible bodies stored without compressed forms, by reason: queue-full (too many waiting), no-gain (no form saved 5 %), superseded (the entry was replaced, purged or evicted first), error.',
        () => SKIP_REASONS.map((reason) => ({ labels: { reason }, value: stats.skipped[reason] })),
      ),
    );
  }

  /** A gauge read when scraped (the primary's edgecache_workers). */
  addGauge(name: string, help: string, value: () => number): void {
    this.registry.registerMetric(metric(name, 'gauge', help, () => [{ labels: {}, value: value() }]));
  }

  /** The exposition text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The metrics as JSON for the cluster primary; `shared`: whether this worker reports the shared tiers' figures. */
  json(shared: boolean): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    this.reportShared = shared;
    // Every metric's get() runs synchronously inside this call (none awaits), so the flag holds for exactly it.
    const result = this.registry.getMetricsAsJSON();
    this.reportShared = true;
    return result as Promise<MetricObjectWithValues<MetricValue<string>>[]>;
  }
}

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The node's exposition under --workers: the live workers' metrics, the last counters and histograms of the
 * workers that died (so that no counter goes backwards when one is replaced), and the primary's own.
 */
export function aggregateWorkers(parts: MetricsJson[]): Promise<string> {
  return AggregatorRegistry.aggregate(parts as never).metrics();
}

/** What of a dead worker's last metrics stays in the sum: counters and histograms, not its gauges nor shared figures. */
export function monotonicPart(json: MetricsJson): MetricsJson {
  return json
    .filter((family) => family.type === ('counter' as never) || family.type === ('histogram' as never))
    .map((family) => ({ ...family, values: family.values.filter((value) => !isSharedSeries(family.name, value.labels.tier)) }));
}

function isSharedSeries(name: string, tier: unknown): boolean {
  if (typeof tier !== 'string') return false;
  for (const field of SHARED_FIGURES[tier] ?? []) {
    if (name === tierMetricName(field, 'counter')) return true;
  }
  return false;
}
