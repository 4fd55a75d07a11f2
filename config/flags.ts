/**
 * Command-line flags: node:util parseArgs reads them (`--name value`, `--name=value`, `--flag` / `--no-flag` for
 * booleans, `-h`, `-v`), and each token is checked here so that every mistake is one line naming the flag as the
 * user typed it. Values stay text: load.ts coerces and validates them like the environment's.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from './errors.js';
import { SETTINGS, SETTING_NAMES, flagName, type SettingName } from './settings.js';

export interface ParsedFlags {
  help: boolean;
  version: boolean;
  /** Each setting given, as text (a boolean: 'true', 'false', or what followed `=`). */
  values: Map<SettingName, string>;
}

const BY_FLAG = new Map(SETTING_NAMES.map((name) => [flagName(name), name]));

const OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  ...Object.fromEntries(SETTING_NAMES.map((name) => [flagName(name), { type: SETTINGS[name].kind === 'boolean' ? 'boolean' : 'string' } as const])),
};

export function parseFlags(argv: readonly string[]): ParsedFlags {
  const out: ParsedFlags = { help: false, version: false, values: new Map() };
  // Not strict: parseArgs tokenizes, and the checks below say what is wrong in edgecache's words.
  const { tokens } = parseArgs({ args: [...argv], options: OPTIONS, strict: false, allowPositionals: true, allowNegative: true, tokens: true });
  for (const token of tokens) {
    if (token.kind === 'positional') throw new ConfigError(`unexpected argument "${token.value}" (see --help)`);
    if (token.kind === 'option-terminator') throw new ConfigError('unexpected argument "--" (see --help)');
    if (!token.rawName.startsWith('--') && token.name !== 'help' && token.name !== 'version') {
      throw new ConfigError(`unexpected argument "${token.rawName}" (see --help)`);
    }
    if (token.name === 'help' || token.name === 'version') {
      out[token.name] = true;
      continue;
    }
    const negative = token.rawName === `--no-${token.name}`;
    const name = BY_FLAG.get(token.name);
    if (name === undefined || (negative && SETTINGS[name].kind !== 'boolean')) throw new ConfigError(`unknown flag ${token.rawName} (see --help)`);
    if (SETTINGS[name].kind === 'boolean') {
      out.values.set(name, negative ? 'false' : (token.value ?? 'true'));
      continue;
    }
    // A flag followed by another flag was given no value (parseArgs takes the next argument whatever it is).
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) throw new ConfigError(`--${token.name} needs a value`);
    out.values.set(name, token.value);
  }
  return out;
}
