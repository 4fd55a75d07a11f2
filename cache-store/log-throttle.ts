/**
 * Log throttles for the lower tiers and the purge broadcast: a fault that repeats on every write must not flood
 * the log.
 */

/** The logger a tier writes to (pino's, or any object with these methods). */
export interface TierLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Logs the first failure of a burst (and a reminder each minute while it lasts), then one line on recovery. */
export class BurstLog {
  private failures = 0;
  private lastLogged = 0;

  constructor(
    private readonly log: TierLogger,
    private readonly level: 'error' | 'warn',
    private readonly message: string,
    private readonly recovered: string,
  ) {}

  fail(fields: Record<string, unknown>): void {
    this.failures++;
    const now = Date.now();
    if (this.failures === 1 || now - this.lastLogged >= 60_000) {
      this.lastLogged = now;
      this.log[this.level]({ ...fields, failuresInBurst: this.failures }, this.message);
    }
  }

  ok(): void {
    if (this.failures === 0) return;
    this.log.info({ failures: this.failures }, this.recovered);
    this.failures = 0;
  }
}

/** Logs each event, at most `limit` per minute; the ones dropped are counted in the next line logged. */
export class RateLog {
  private windowStart = 0;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly log: TierLogger,
    private readonly message: string,
    private readonly limit = 10,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.windowStart >= 60_000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (++this.inWindow > this.limit) {
      this.suppressed++;
      return;
    }
    this.log.warn(this.suppressed > 0 ? { ...fields, suppressed: this.suppressed } : fields, this.message);
    this.suppressed = 0;
  }
}
