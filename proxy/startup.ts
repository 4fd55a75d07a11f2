/**
 * Start-up failures the operator has to fix (a port already in use, a --data-dir that cannot be used): they are
 * told in one line naming the setting, and the command exits with code 1, from a single process and from the
 * cluster primary alike. A worker that cannot start is not restarted in a loop.
 */

export class StartupError extends Error {
  override name = 'StartupError';
}

/** Wraps a failure of `what` (e.g. `cannot listen on 0.0.0.0:8080 (--port)`) into a StartupError. */
export function startupError(what: string, err: unknown): StartupError {
  const message = (err as Error | undefined)?.message ?? String(err);
  return new StartupError(`${what}: ${message.split('\n')[0]}`);
}

/** The one line printed for a start-up failure: the message of a StartupError, the stack of anything else (a bug). */
export function startupMessage(err: unknown): string {
  if (err instanceof StartupError) return err.message;
  return (err as Error | undefined)?.stack ?? String(err);
}
