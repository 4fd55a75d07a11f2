/** The process logger: pino, JSON lines on stdout. */
import pino, { type Logger } from 'pino';
import type { EdgecacheConfig } from '../config/settings.js';

export function createLogger(level: EdgecacheConfig['logLevel']): Logger {
  return pino({ level, base: { pid: process.pid }, name: 'edgecache' });
}
