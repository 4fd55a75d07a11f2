/** `--help` text and the Markdown config reference, both generated from the settings table. */
import { SETTINGS, SETTING_NAMES, envName, flagName, type SettingSpec } from './settings.js';

const PLACEHOLDER: Record<SettingSpec['kind'], string> = {
  string: 'TEXT',
  url: 'URL',
  redisUrl: 'URL',
  port: 'PORT',
  int: 'N',
  processes: 'N',
  size: 'SIZE',
  duration: 'DURATION',
  boolean: '',
  enum: 'NAME',
  percent: 'PCT',
  fields: 'NAME,...',
  list: 'LIST',
};

function usageOf(spec: SettingSpec, flag: string): string {
  if (spec.kind === 'boolean') return `--${flag}, --no-${flag}`;
  const placeholder = spec.placeholder ?? (spec.kind === 'enum' ? spec.values?.join('|') : PLACEHOLDER[spec.kind]);
  return `--${flag} ${placeholder}`;
}

export function helpText(): string {
  const lines = [
    'edgecache - an HTTP caching reverse proxy',
    '',
    'Usage: edgecache --origin URL [options]',
    '',
    'Options (each also read from the environment variable shown, or from the --config JSON file by its camelCase name):',
  ];
  for (const name of SETTING_NAMES) {
    const spec: SettingSpec = SETTINGS[name];
    const usage = usageOf(spec, flagName(name));
    const dflt = spec.default !== undefined ? ` [default: ${spec.default}]` : spec.required ? ' [required]' : '';
    lines.push(`  ${usage}`);
    lines.push(`      ${spec.description}${dflt}`);
    lines.push(`      env ${envName(name)}`);
  }
  lines.push('  --help, -h', '      Print this help and exit.', '  --version, -v', '      Print the version and exit.');
  lines.push('', 'Sizes are binary (1mb = 1,048,576 bytes). Durations take ms, s, m, h; a bare number is seconds.');
  lines.push('Bad values print one line naming the setting and exit with code 2; start-up failures (a port in use,');
  lines.push('an unusable --data-dir) print one line and exit with code 1.');
  return `${lines.join('\n')}\n`;
}

export function configReference(): string {
  const rows = SETTING_NAMES.map((name) => {
    const spec: SettingSpec = SETTINGS[name];
    const dflt = spec.default !== undefined ? `\`${spec.default}\`` : spec.required ? 'required' : '-';
    const key = spec.notInFile ? '(flag/env only)' : `\`${name}\``;
    return `| \`--${flagName(name)}\` | \`${envName(name)}\` | ${key} | ${dflt} | ${spec.description.replace(/\|/g, '\\|')} |`;
  });
  return [
    '| flag | environment | config file key | default | meaning |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
