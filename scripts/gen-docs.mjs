#!/usr/bin/env node
// Regenerates the settings table in docs/configuration.md from config/settings.ts (via dist/), between the
// BEGIN/END markers. Run after changing a setting: `npm run build && npm run docs`. A test fails when the
// committed document and the settings table disagree.
import fs from 'node:fs';
import { configReference } from '../dist/config/help.js';

const file = new URL('../docs/configuration.md', import.meta.url);
const text = fs.readFileSync(file, 'utf8');
const begin = '<!-- BEGIN GENERATED SETTINGS -->';
const end = '<!-- END GENERATED SETTINGS -->';
const start = text.indexOf(begin);
const stop = text.indexOf(end);
if (start === -1 || stop === -1) {
  console.error('docs/configuration.md lacks the generated-settings markers');
  process.exit(2);
}
fs.writeFileSync(file, `${text.slice(0, start + begin.length)}\n${configReference()}\n${text.slice(stop)}`);
console.log('docs/configuration.md updated');
