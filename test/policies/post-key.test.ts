import { describe, expect, it } from 'vitest';
import { canonicalJson, MAX_DEPTH } from '../../policies/http/canonical-json.js';
import { bodyDigest, credentialDigest, isCachedPostPath, postKey, postTag, type PostKeyRules } from '../../policies/http/post-key.js';

const NONE = new Set<string>();
const json = (text: string): string => bodyDigest(Buffer.from(text), 'application/json', NONE);

describe('canonicalJson', () => {
  it('sorts object members by name, at every depth', () => {
    expect(canonicalJson('{"b":1,"a":{"d":[{"z":1,"y":2}],"c":2}}')).toBe('{"a":{"c":2,"d":[{"y":2,"z":1}]},"b":1}');
  });

  it('sorts by UTF-16 code units, as RFC 8785 does', () => {
    // U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16 although its code point is higher.
    expect(canonicalJson('{"\uFB33":1,"\uD83D\uDE00":2,"a":3}')).toBe('{"a":3,"\uD83D\uDE00":2,"\uFB33":1}');
  });

  it('removes insignificant whitespace and keeps it inside strings', () => {
    expect(canonicalJson(' \n{ "input" :\t[ "a b" ,\r\n "c" ] }\n ')).toBe('{"input":["a b","c"]}');
  });

  it('normalises string escapes', () => {
    expect(canonicalJson('"\\u0041\\/\\u00e9\\n\\u000a\\u001f\\""')).toBe('"A/é\\n\\n\\u001f\\""');
    expect(canonicalJson('{"\\u0061":1}')).toBe('{"a":1}');
    // A lone surrogate is kept, escaped (it cannot be written raw).
    expect(canonicalJson('"\\ud800"')).toBe('"\\ud800"');
  });

  it('keeps numbers exactly as written', () => {
    expect(canonicalJson('[1, 1.0, 1e2, 1E+2, -0, 12345678901234567890123, 0.10]')).toBe('[1,1.0,1e2,1E+2,-0,12345678901234567890123,0.10]');
    expect(json('{"n":1}')).not.toBe(json('{"n":1.0}'));
    expect(json('{"n":9007199254740993}')).not.toBe(json('{"n":9007199254740992}'));
  });

  it('refuses what is not JSON', () => {
    for (const text of ['', '{', '{"a":1,}', '[1,]', '01', '{"a" 1}', "{'a':1}", 'NaN', '"\t"', '{"a":1} x', 'tru', '{"a":1,"a":2}']) {
      expect(canonicalJson(text), text).toBeUndefined();
    }
  });

  it('refuses nesting deeper than MAX_DEPTH instead of overflowing the stack', () => {
    expect(canonicalJson('['.repeat(MAX_DEPTH) + ']'.repeat(MAX_DEPTH))).toBeDefined();
    expect(canonicalJson('['.repeat(100_000) + ']'.repeat(100_000))).toBeUndefined();
  });

  it('leaves out the ignored top-level members only', () => {
    const ignore = new Set(['user', 'request_id']);
    expect(canonicalJson('{"user":"u1","input":"x","request_id":7,"meta":{"user":"kept"}}', ignore)).toBe('{"input":"x","meta":{"user":"kept"}}');
  });
});

describe('bodyDigest', () => {
  it('gives one digest for the same JSON value written differently', () => {
    const a = json('{"model":"m","input":["hello","world"],"dimensions":8}');
    expect(json('{ "dimensions": 8, "input": [ "hello", "world" ], "model": "\\u006d" }')).toBe(a);
    expect(bodyDigest(Buffer.from('{"input":["hello","world"],"model":"m","dimensions":8}'), 'application/json; charset=utf-8', NONE)).toBe(a);
    expect(json('{"model":"m","input":["world","hello"],"dimensions":8}')).not.toBe(a);
  });

  it('canonicalises +json media types too, and ignores the named fields', () => {
    const ignore = new Set(['user']);
    expect(bodyDigest(Buffer.from('{"a":1,"user":"x"}'), 'application/vnd.api+json', ignore)).toBe(bodyDigest(Buffer.from('{"user":"y", "a":1}'), 'application/vnd.api+json', ignore));
  });

  it('digests invalid JSON, non-UTF-8 bytes and other media types as sent', () => {
    expect(json('{"a":1,}')).not.toBe(json('{"a":1 ,}'));
    const latin1 = Buffer.from([0x22, 0xe9, 0x22]);
    expect(bodyDigest(latin1, 'application/json', NONE)).toBe(bodyDigest(Buffer.from(latin1), 'application/json', NONE));
    expect(bodyDigest(Buffer.from('{"b":1,"a":2}'), 'text/plain', NONE)).not.toBe(bodyDigest(Buffer.from('{"a":2,"b":1}'), 'text/plain', NONE));
    // The same bytes under another media type are another request.
    expect(bodyDigest(Buffer.from('x'), 'text/plain', NONE)).not.toBe(bodyDigest(Buffer.from('x'), 'application/octet-stream', NONE));
    expect(bodyDigest(Buffer.from('{"a":1}'), 'text/plain', NONE)).not.toBe(json('{"a":1}'));
  });
});

describe('credentialDigest and postKey', () => {
  const rules: PostKeyRules = { ignoreFields: NONE, keyHeaders: ['x-api-key'], shared: false };

  it('separates credentials, and says nothing of their values', () => {
    const a = credentialDigest({ authorization: 'Bearer one' }, rules);
    const b = credentialDigest({ authorization: 'Bearer two' }, rules);
    const k = credentialDigest({ 'x-api-key': 'Bearer one' }, rules);
    expect(new Set([a, b, k]).size).toBe(3);
    expect(credentialDigest({}, rules)).toBe('');
    expect(a).not.toContain('one');
    expect(credentialDigest({ authorization: 'Bearer one' }, { ...rules, shared: true })).toBe('');
  });

  it('puts the method, URL, body and credentials in a key no GET variant can have', () => {
    const key = postKey('a.test/v1/embeddings', 'BODY', 'CRED');
    expect(key).toBe('a.test/v1/embeddings\n\u0000POST BODY CRED');
    expect(postKey('a.test/v1/embeddings', 'BODY', '')).toBe('a.test/v1/embeddings\n\u0000POST BODY');
    expect(postTag('a.test/x')).toContain(' ');
  });

  it('matches listed path prefixes only', () => {
    expect(isCachedPostPath('/v1/embeddings?x=1', ['/v1/embeddings'])).toBe(true);
    expect(isCachedPostPath('/v1/chat', ['/v1/embeddings', '/v1/ch'])).toBe(true);
    expect(isCachedPostPath('/v2/embeddings', ['/v1/'])).toBe(false);
  });
});
