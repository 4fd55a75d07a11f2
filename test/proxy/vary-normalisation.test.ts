/**
 * Vary matching that normalises losslessly (RFC 9111 §4.1), against a real origin: several field lines and
 * optional whitespace do not make another variant, language tags compare case-insensitively; order and quoted
 * strings do. What is forwarded is normalised the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeFieldValue, varyKey } from '../../policies/http/cache-key.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/http.js';

let origin: TestOrigin;
let proxy: TestProxy;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.writeHead(200, { 'cache-control': 'max-age=3600', vary: url.searchParams.get('vary') ?? 'accept-language' });
    res.end(`#${origin.count(req.url)}`);
  });
  proxy = await startProxy(origin.url);
});

afterAll(async () => {
  await proxy.close();
  await origin.close();
});

let n = 0;
const fresh = (vary: string) => `/v?n=${++n}&vary=${vary}`;

async function body(path: string, headers: Record<string, string | string[]>): Promise<string> {
  return (await request(`${proxy.url}${path}`, { headers })).text;
}

describe('normalised field values', () => {
  it('drops optional whitespace around separators and combines lines; keeps quoted strings and order', () => {
    expect(normalizeFieldValue('accept', ' text/html ;q=0.9 ,  application/json ')).toBe('text/html;q=0.9,application/json');
    expect(normalizeFieldValue('accept', ['text/html', 'application/json'])).toBe('text/html,application/json');
    expect(normalizeFieldValue('x-token', 'a="x , y" , b')).toBe('a="x , y",b');
    expect(normalizeFieldValue('x-token', 'a="q\\" , ", b')).toBe('a="q\\" , ",b');
    expect(normalizeFieldValue('accept-language', 'EN-us, Fr;Q=0.5')).toBe('en-us,fr;q=0.5');
    expect(normalizeFieldValue('x-token', 'ABC')).toBe('ABC');
    expect(varyKey(['accept-language'], { 'accept-language': 'fr, en' })).not.toBe(varyKey(['accept-language'], { 'accept-language': 'en, fr' }));
  });
});

describe('Vary matching (RFC 9111 §4.1)', () => {
  it('Accept-Language: whitespace and the case of language tags do not make another variant', async () => {
    const path = fresh('accept-language');
    expect(await body(path, { 'accept-language': 'en-US, fr;q=0.5' })).toBe('#1');
    expect(await body(path, { 'accept-language': 'EN-us,fr ; q=0.5' })).toBe('#1');
    expect(await body(path, { 'accept-language': 'en-us ,  fr;q=0.5' })).toBe('#1');
  });

  it('another order, another tag or a missing field is another variant: nothing is guessed', async () => {
    const path = fresh('accept-language');
    expect(await body(path, { 'accept-language': 'en-US, fr;q=0.5' })).toBe('#1');
    expect(await body(path, { 'accept-language': 'fr;q=0.5, en-US' })).toBe('#2');
    expect(await body(path, { 'accept-language': 'en' })).toBe('#3');
    expect(await body(path, {})).toBe('#4');
  });

  it('several field lines match the same list on one line', async () => {
    const path = fresh('accept');
    expect(await body(path, { accept: 'text/html, application/json' })).toBe('#1');
    expect(await body(path, { accept: ['text/html', 'application/json'] })).toBe('#1');
  });

  it('whitespace inside a quoted string is significant', async () => {
    const path = fresh('x-token');
    expect(await body(path, { 'x-token': 'a="x , y"' })).toBe('#1');
    expect(await body(path, { 'x-token': 'a="x,y"' })).toBe('#2');
    expect(await body(path, { 'x-token': 'a = "x , y"' })).toBe('#3');
  });

  it('forwards the nominated fields in the normalised form the cache compares', async () => {
    const path = fresh('accept-language');
    await body(path, { 'accept-language': 'de' });
    await body(path, { 'accept-language': 'EN-US , fr; q=0.5' });
    const seen = origin.requests.filter((r) => r.url === path).map((r) => r.headers['accept-language']);
    expect(seen).toEqual(['de', 'en-us,fr;q=0.5']);
  });
});
