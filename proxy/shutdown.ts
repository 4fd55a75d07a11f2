/**
 * The graceful shutdown's signals, through close-with-grace: the first SIGTERM or SIGINT (docker stop,
 * Kubernetes, Ctrl-C) runs the drain, and the process exits 0 once it is done; a second signal exits at once
 * (code 1). Errors are not handled here: an unhandled rejection is logged and the process keeps serving (cli.ts).
 */
import closeWithGrace from 'close-with-grace';

/** The logger calls made here (pino's, Fastify's app.log alike). */
interface ShutdownLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Time allowed beyond --shutdown-grace for flushing the disk tier and Redis and closing them. */
const FLUSH_MARGIN_MS = 15_000;

/** Every event close-with-grace listens to but SIGTERM and SIGINT. */
const SKIPPED: closeWithGrace.AllEvents[] = [
  'SIGHUP',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGSEGV',
  'SIGUSR2',
  'uncaughtException',
  'unhandledRejection',
  'beforeExit',
];

/** Runs `drain` on the first SIGTERM/SIGINT and exits 0 after it (1 if it fails or outlives grace + margin). */
export function drainOnSignal(graceMs: number, log: ShutdownLog, drain: (signal: string) => Promise<void>): void {
  closeWithGrace(
    {
      delay: graceMs + FLUSH_MARGIN_MS,
      skip: SKIPPED,
      logger: { error: (message: unknown) => log.error({ err: message }, 'shutdown failed') },
      onSecondSignal: (signal) => log.warn({ signal }, 'second signal: exiting at once'),
      onTimeout: (delay) => log.error({ delayMs: delay }, 'shutdown did not finish in time: exiting'),
    },
    async ({ signal }) => {
      log.info({ signal, graceMs }, 'draining: no new connections; requests in flight finish');
      await drain(signal ?? 'manual');
      log.info({ signal }, 'drained; exiting');
    },
  );
}
