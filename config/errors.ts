/** A configuration problem the operator must fix: one line naming the setting; the command exits with code 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
