/**
 * This process's /stats document: uptime, event-loop delay, memory, the counters, and each tier's figures. Under
 * --workers each worker sends its own to the cluster primary, which sums them (cluster/primary.ts).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { CacheStore } from '../../cache-store/cache-store.js';
import { processMemory, type ProxyStats } from './stats.js';
import type { CompressorStats } from '../pipeline/compressor.js';

/** Sampling interval of the event-loop delay histogram (ms). */
const LOOP_RESOLUTION_MS = 10;

export class ProcessStats {
  private readonly startedAt = Date.now();
  /** Event-loop delay: the first thing to look at when latency has a tail (a long synchronous step somewhere). */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });

  constructor(
    private readonly stats: ProxyStats,
    private readonly store: CacheStore,
    private readonly compression?: CompressorStats,
  ) {
    this.loopDelay.enable();
  }

  snapshot(): Record<string, unknown> {
    const loop = this.loopDelay;
    return {
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      eventLoopDelayMs: { p50: delayMs(loop.percentile(50)), p99: delayMs(loop.percentile(99)), max: delayMs(loop.max) },
      memory: processMemory(),
      ...this.stats.toJSON(),
      tiers: Object.fromEntries(this.store.stats().map((t) => [t.name, t])),
      ...(this.compression && { compression: structuredClone(this.compression) }),
    };
  }

  stop(): void {
    this.loopDelay.disable();
  }
}

/**
 * The histogram records the time between two samples, so an idle loop reads as the sampling interval: the
 * delay is what exceeds it (in ms, to the microsecond).
 */
function delayMs(ns: number): number {
  return Math.max(0, Math.round(ns / 1e3 - LOOP_RESOLUTION_MS * 1e3) / 1e3);
}
