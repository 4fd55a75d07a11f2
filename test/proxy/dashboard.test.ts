/**
 * The admin dashboard in a real browser: Debian's chromium driven by playwright-core (headless; the binary from
 * EDGECACHE_CHROMIUM or /usr/bin/chromium). The page is loaded while traffic flows, its figures move, and a purge
 * sent through its form (with the token typed into the page) takes effect. Without chromium the test is skipped
 * with one line.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { request } from '../helpers/http.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

/** The page's DOM, as the functions run inside the browser see it (this project compiles without the DOM lib). */
declare const document: {
  getElementById(id: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
};

const executablePath = process.env.EDGECACHE_CHROMIUM ?? '/usr/bin/chromium';
const available = existsSync(executablePath);
if (!available) console.warn(`dashboard browser test skipped: no chromium at ${executablePath} (set EDGECACHE_CHROMIUM)`);

let origin: TestOrigin;
let proxy: TestProxy;
let browser: Browser | undefined;

beforeAll(async () => {
  if (!available) return;
  origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=3600' });
    res.end('dashboard traffic');
  });
  proxy = await startProxy(origin.url, { adminToken: 'page-token' });
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
});

afterAll(async () => {
  if (!available) return;
  await browser?.close();
  await proxy.close();
  await origin.close();
});

describe.skipIf(!available)('the dashboard (GET / on the admin port)', () => {
  it('shows live figures while traffic flows and purges through its form', async () => {
    const page = await (browser as Browser).newPage();
    // Traffic for the whole test: a few hot keys, bounded, stopped at the end.
    let flowing = true;
    const traffic = (async () => {
      for (let i = 0; flowing && i < 5000; i++) await request(`${proxy.url}/hot${i % 3}`);
    })();
    try {
      await page.goto(`${proxy.adminUrl}/`);
      await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('live'));
      const firstTotal = Number(await page.textContent('#req-total'));
      // The figures move: more requests, a hit ratio, tiers with entries, hot keys listed.
      await page.waitForFunction((before) => Number(document.getElementById('req-total')?.textContent) > before + 10, firstTotal);
      await page.waitForFunction(() => document.querySelectorAll('#line[points*=","]').length === 1 && Number(document.getElementById('rps-total')?.textContent) > 0);
      expect(await page.textContent('#hit-ratio')).toMatch(/^\d+\.\d %$/);
      await page.waitForFunction(() => (document.getElementById('hot')?.textContent ?? '').includes('/hot'));
      expect(await page.textContent('#tiers')).toContain('memory');
      flowing = false;
      await traffic;

      // Purge one URL through the form, with the token typed into the page.
      const host = new URL(proxy.url).host;
      expect((await request(`${proxy.url}/hot1`)).headers['x-cache']).toBe('HIT');
      await page.selectOption('#kind', 'urls');
      await page.fill('#value', `http://${host}/hot1`);
      await page.fill('#token', 'wrong');
      await page.click('button[type=submit]');
      await page.waitForFunction(() => (document.getElementById('purge-result')?.textContent ?? '').length > 0);
      expect(await page.textContent('#purge-result')).toMatch(/^refused \(403\)/);
      await page.fill('#token', 'page-token');
      await page.click('button[type=submit]');
      await page.waitForFunction(() => (document.getElementById('purge-result')?.textContent ?? '').startsWith('purged'));
      expect(await page.textContent('#purge-result')).toBe('purged 1');
      expect((await request(`${proxy.url}/hot1`)).headers['x-cache']).toBe('MISS');
      expect((await request(`${proxy.url}/hot2`)).headers['x-cache']).toBe('HIT');
    } finally {
      flowing = false;
      await traffic;
      await page.close();
    }
  }, 60_000);
});
