import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CanonicalJsonError,
  MAX_JSON_DEPTH,
  compareCodePoints,
  encodeCanonicalJson,
  parseStrictJson,
} from '../src/core/canonical_json.js';
import {
  decodeBase64,
  decodeBase64Url,
  encodeBase64,
  encodeBase64Url,
  privateKeyFromSeed,
  publicKeyBytes,
  signJson,
  verifyJsonSignature,
} from '../src/core/signing.js';

const canon = (text: string) => encodeCanonicalJson(parseStrictJson(text));

const rejects = (input: string | Uint8Array, fragment: string) => {
  try {
    parseStrictJson(input);
  } catch (err) {
    assert.instance(err, CanonicalJsonError);
    assert.ok((err as Error).message.includes(fragment), `"${(err as Error).message}" should mention "${fragment}"`);
    return;
  }
  assert.unreachable(`should have rejected ${typeof input === 'string' ? input : 'bytes'}`);
};

const encodeThrows = (value: unknown, fragment: string) => {
  try {
    encodeCanonicalJson(value);
  } catch (err) {
    assert.instance(err, CanonicalJsonError);
    assert.ok((err as Error).message.includes(fragment), `"${(err as Error).message}" should mention "${fragment}"`);
    return;
  }
  assert.unreachable('should have refused to encode');
};

// ---- spec appendix "Canonical JSON" examples, inputs verbatim ----

test('spec examples: canonical JSON of the appendix inputs', () => {
  assert.is(canon('{}'), '{}');
  assert.is(canon('{\n    "one": 1,\n    "two": "Two"\n}'), '{"one":1,"two":"Two"}');
  assert.is(canon('{\n    "b": "2",\n    "a": "1"\n}'), '{"a":"1","b":"2"}');
  assert.is(canon('{"b":"2","a":"1"}'), '{"a":"1","b":"2"}');
  const auth = `{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}`;
  assert.is(
    canon(auth),
    '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
  );
  assert.is(canon('{\n    "a": "日本語"\n}'), '{"a":"日本語"}');
  assert.is(canon('{\n    "本": 2,\n    "日": 1\n}'), '{"日":1,"本":2}');
  assert.is(canon('{\n    "a": "\\u65E5"\n}'), '{"a":"日"}');
  assert.is(canon('{\n    "a": null\n}'), '{"a":null}');
});

test('spec example {"a": -0, "b": 1e10}: the encoder writes {"a":0,"b":10000000000}; the strict parser refuses the text', () => {
  assert.is(encodeCanonicalJson({ a: -0, b: 1e10 }), '{"a":0,"b":10000000000}');
  rejects('{\n    "a": -0,\n    "b": 1e10\n}', 'negative zero');
  rejects('{"b": 1e10}', 'exponents');
});

// ---- key order ----

test('keys sort by code point, not UTF-16 code unit (astral after U+FFFF)', () => {
  const grin = '\u{1F600}';
  // UTF-16 puts the surrogate pair D83D.. before FFFF; code point order is the reverse.
  assert.equal(Object.keys({ [grin]: 1, '\uFFFF': 2 }).sort(), [grin, '\uFFFF']);
  assert.is(encodeCanonicalJson({ [grin]: 1, '\uFFFF': 2 }), `{"\uFFFF":2,"${grin}":1}`);
  assert.is(encodeCanonicalJson({ '\uE000': 1, '\u{10000}': 2, '\uD7FF': 3 }), '{"\uD7FF":3,"\uE000":1,"\u{10000}":2}');
  assert.ok(compareCodePoints('\u{10FFFF}', '\uFFFD') > 0);
  assert.ok(compareCodePoints('a', 'ab') < 0);
  assert.ok(compareCodePoints('\u{1F601}', '\u{1F600}') > 0);
  assert.is(compareCodePoints('x\u{1F600}', 'x\u{1F600}'), 0);
  assert.is(encodeCanonicalJson({ b: 1, B: 2, a: 3, _: 4, '': 5 }), '{"":5,"B":2,"_":4,"a":3,"b":1}');
});

// ---- strings ----

test('string escapes: only " \\ and U+0000-U+001F, short forms, lowercase \\u00XX', () => {
  assert.is(encodeCanonicalJson('"\\'), '"\\"\\\\"');
  assert.is(encodeCanonicalJson('\b\t\n\f\r'), '"\\b\\t\\n\\f\\r"');
  assert.is(encodeCanonicalJson('\u0000\u0001\u000b\u000e\u001f'), '"\\u0000\\u0001\\u000b\\u000e\\u001f"');
  // Not escaped: DEL, slash, U+2028/2029, non-ASCII and astral characters stay literal.
  assert.is(encodeCanonicalJson('/\u007f\u2028\u2029é\u{1F600}'), '"/\u007f\u2028\u2029é\u{1F600}"');
  assert.is(canon('"\\/\\u0041\\u00e9\\ud83d\\ude00"'), '"/Aé\u{1F600}"');
  assert.is(canon('{"k\\u001F":"\\u001f"}'), '{"k\\u001f":"\\u001f"}');
  assert.is(Buffer.byteLength(encodeCanonicalJson('日')), 5, 'non-ASCII written as UTF-8, not \\u escapes');
});

test('lone surrogates are refused in the text, in escapes and when encoding', () => {
  rejects('"\\ud800"', 'lone high surrogate');
  rejects('"\\ud800x"', 'lone high surrogate');
  rejects('"\\udc00"', 'lone low surrogate');
  rejects('"\\ud800\\u0041"', 'not followed by a low surrogate');
  rejects('"a\ud800b"', 'lone surrogate');
  rejects('"a\udc00"', 'lone surrogate');
  encodeThrows('\ud800', 'lone surrogate');
  encodeThrows({ ['\udfff']: 1 }, 'lone surrogate');
});

test('invalid UTF-8 bytes are refused; valid UTF-8 bytes parse', () => {
  rejects(Buffer.from([0x22, 0xc3, 0x28, 0x22]), 'invalid UTF-8');
  rejects(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), 'invalid UTF-8'); // CESU-style surrogate
  rejects(Buffer.from([0x22, 0xc0, 0xaf, 0x22]), 'invalid UTF-8'); // overlong '/'
  rejects(Buffer.from('\uFEFF{}', 'utf8'), 'unexpected character');
  assert.equal(parseStrictJson(Buffer.from('{"a":"日\u{1F600}"}', 'utf8')), { a: '日\u{1F600}' });
});

test('raw control characters and bad escapes in strings are refused', () => {
  rejects('"a\nb"', 'control character');
  rejects('"a\u0000"', 'control character');
  rejects('"\\x41"', 'invalid escape');
  rejects('"\\u12G4"', 'invalid \\u escape');
  rejects('"abc', 'unterminated');
});

// ---- numbers ----

test('floats, exponents and -0 are refused by the parser', () => {
  for (const t of ['1.0', '-0.0', '0.5', '1e10', '1E2', '1e-2', '[1, 2.5]', '{"a":{"b":3.0}}']) {
    rejects(t, 'not allowed');
  }
  rejects('-0', 'negative zero');
  rejects('01', 'leading zeros');
  rejects('-', 'expected digits');
  rejects('+1', 'unexpected character');
  rejects('NaN', 'unexpected character');
  rejects('Infinity', 'unexpected character');
});

test('integers: the full safe range parses exactly, one past it is refused', () => {
  assert.is(parseStrictJson('9007199254740991'), 9007199254740991);
  assert.is(parseStrictJson('-9007199254740991'), -9007199254740991);
  assert.is(parseStrictJson('0'), 0);
  rejects('9007199254740992', 'outside');
  rejects('-9007199254740992', 'outside');
  // JSON.parse would silently round this one to 2^53 + 2.
  rejects('9007199254740993', 'outside');
  rejects('{"depth":123456789012345678901234567890}', 'outside');
  assert.is(encodeCanonicalJson([9007199254740991, -9007199254740991]), '[9007199254740991,-9007199254740991]');
  encodeThrows(2 ** 53, 'not an integer');
  encodeThrows(-(2 ** 53), 'not an integer');
  encodeThrows({ a: [1.5] }, '$.a[0]');
  encodeThrows(NaN, 'not an integer');
  encodeThrows(Infinity, 'not an integer');
  encodeThrows(10n, 'bigint');
});

// ---- objects ----

test('duplicate keys are refused at any depth, compared after unescaping', () => {
  rejects('{"a":1,"a":2}', 'duplicate key "a"');
  rejects('{"x":{"y":[{"a":1,"b":2,"a":1}]}}', 'duplicate key "a"');
  rejects('{"a":1,"\\u0061":2}', 'duplicate key "a"');
  rejects('{"\\ud83d\\ude00":1,"\u{1F600}":2}', 'duplicate key');
  // The same key in sibling objects is fine.
  assert.equal(parseStrictJson('[{"a":1},{"a":2}]'), [{ a: 1 }, { a: 2 }]);
});

test('nested values round-trip; whitespace is insignificant; "__proto__" stays an ordinary key', () => {
  const text = ' { "z" : [ true , false , null , { } , [ ] , "" ] ,\r\n\t"a" : { "c" : -5 , "b" : 0 } } ';
  const v = parseStrictJson(text);
  assert.equal(v, JSON.parse(text));
  assert.is(encodeCanonicalJson(v), '{"a":{"b":0,"c":-5},"z":[true,false,null,{},[],""]}');
  const p = parseStrictJson('{"__proto__":{"polluted":1}}') as Record<string, unknown>;
  assert.ok(Object.hasOwn(p, '__proto__'));
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  assert.is(encodeCanonicalJson(p), '{"__proto__":{"polluted":1}}');
});

test('malformed documents are refused with a position', () => {
  rejects('', 'unexpected end');
  rejects('{"a":1,}', 'expected a string key');
  rejects('[1,]', 'unexpected character');
  rejects('{"a" 1}', "expected ':'");
  rejects('{"a":1 "b":2}', "expected ',' or '}'");
  rejects('[1 2]', "expected ',' or ']'");
  rejects('{} {}', 'unexpected text after');
  rejects('tru', 'invalid literal');
  rejects('{a:1}', 'expected a string key');
  try {
    parseStrictJson('{"a": 1.5}');
    assert.unreachable('1.5 should be refused');
  } catch (err) {
    assert.is((err as CanonicalJsonError).position, 6);
  }
});

test('nesting deeper than MAX_JSON_DEPTH is refused (and a cycle cannot hang the encoder)', () => {
  const ok = '['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH);
  assert.ok(Array.isArray(parseStrictJson(ok)));
  rejects('['.repeat(MAX_JSON_DEPTH + 2) + ']'.repeat(MAX_JSON_DEPTH + 2), 'nested deeper');
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  encodeThrows(cyclic, 'nested deeper');
});

test('encoder: undefined object members are omitted (as JSON.stringify); other non-JSON values throw', () => {
  assert.is(encodeCanonicalJson({ b: undefined, a: 1 }), '{"a":1}');
  assert.is(encodeCanonicalJson({ a: undefined }), '{}');
  encodeThrows([1, undefined], 'undefined in an array');
  encodeThrows(undefined, 'undefined');
  encodeThrows({ f: () => 1 }, 'function');
  encodeThrows({ s: Symbol('x') }, 'symbol');
  encodeThrows({ d: new Date(0) }, 'Date');
  encodeThrows({ m: new Map() }, 'Map');
  assert.is(encodeCanonicalJson(Object.assign(Object.create(null), { b: 1, a: 2 })), '{"a":2,"b":1}');
});

// ---- base64 (appendix "Unpadded Base64") ----

test('unpadded base64: the spec examples, URL-safe alphabet, strict decoding', () => {
  const vectors: [string, string][] = [
    ['', ''],
    ['f', 'Zg'],
    ['fo', 'Zm8'],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg'],
    ['fooba', 'Zm9vYmE'],
    ['foobar', 'Zm9vYmFy'],
  ];
  for (const [plain, b64] of vectors) {
    assert.is(encodeBase64(Buffer.from(plain)), b64);
    assert.is(decodeBase64(b64).toString(), plain);
  }
  assert.is(decodeBase64('Zm8=').toString(), 'fo', 'padding accepted');
  assert.is(decodeBase64('Zg==').toString(), 'f');
  const bytes = Buffer.from([0xfb, 0xff, 0xbf]);
  assert.is(encodeBase64(bytes), '+/+/');
  assert.is(encodeBase64Url(bytes), '-_-_');
  assert.equal(decodeBase64Url('-_-_'), bytes);
  assert.throws(() => decodeBase64('-_-_'));
  assert.throws(() => decodeBase64Url('+/+/'));
  assert.throws(() => decodeBase64('Zm9v!'));
  assert.throws(() => decodeBase64('Z'));
  assert.throws(() => decodeBase64('Zm8=='));
  assert.throws(() => decodeBase64('Zm 9v'));
  // A subarray view must encode only its own bytes.
  assert.is(encodeBase64(Buffer.from('xfoo').subarray(1)), 'Zm9v');
});

// ---- appendix "Cryptographic Test Vectors": signing key and JSON signing ----

const SEED = decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');
const KEY = privateKeyFromSeed(SEED);
const PUBLIC = encodeBase64(publicKeyBytes(KEY));

test('spec JSON signing vector: {}', () => {
  const signed = signJson({}, 'domain', 'ed25519:1', KEY);
  assert.equal(signed, {
    signatures: {
      domain: {
        'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ',
      },
    },
  });
  assert.ok(verifyJsonSignature(signed, 'domain', 'ed25519:1', PUBLIC));
});

test('spec JSON signing vector: {"one": 1, "two": "Two"}', () => {
  const signed = signJson({ one: 1, two: 'Two' }, 'domain', 'ed25519:1', KEY);
  assert.equal(signed, {
    one: 1,
    signatures: {
      domain: {
        'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
      },
    },
    two: 'Two',
  });
  assert.ok(verifyJsonSignature(signed, 'domain', 'ed25519:1', PUBLIC));
});

test('signJson ignores signatures/unsigned, keeps them, merges with existing signatures, does not mutate', () => {
  const input = {
    one: 1,
    two: 'Two',
    unsigned: { age_ts: 5 },
    signatures: { other: { 'ed25519:x': 'abc' }, domain: { 'ed25519:0': 'old' } },
  };
  const copy = structuredClone(input);
  const signed = signJson(input, 'domain', 'ed25519:1', KEY);
  assert.equal(input, copy);
  assert.is(
    signed.signatures.domain!['ed25519:1'],
    'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
  );
  assert.is(signed.signatures.domain!['ed25519:0'], 'old');
  assert.equal(signed.signatures.other, { 'ed25519:x': 'abc' });
  assert.equal(signed.unsigned, { age_ts: 5 });
  assert.throws(() => signJson({}, 'domain', 'curve25519:1', KEY));
});

test('verifyJsonSignature fails for tampering, wrong key, wrong server or key id, bad base64', () => {
  const signed = signJson({ one: 1, two: 'Two' }, 'domain', 'ed25519:1', KEY);
  assert.ok(verifyJsonSignature({ ...signed, unsigned: { anything: true } }, 'domain', 'ed25519:1', PUBLIC));
  assert.not.ok(verifyJsonSignature({ ...signed, one: 2 }, 'domain', 'ed25519:1', PUBLIC));
  assert.not.ok(verifyJsonSignature({ ...signed, three: 3 }, 'domain', 'ed25519:1', PUBLIC));
  const otherKey = encodeBase64(publicKeyBytes(privateKeyFromSeed(Buffer.alloc(32, 7))));
  assert.not.ok(verifyJsonSignature(signed, 'domain', 'ed25519:1', otherKey));
  assert.not.ok(verifyJsonSignature(signed, 'elsewhere', 'ed25519:1', PUBLIC));
  assert.not.ok(verifyJsonSignature(signed, 'domain', 'ed25519:2', PUBLIC));
  assert.not.ok(verifyJsonSignature({ one: 1, two: 'Two' }, 'domain', 'ed25519:1', PUBLIC));
  const mangled = { ...signed, signatures: { domain: { 'ed25519:1': '!' + signed.signatures.domain!['ed25519:1'] } } };
  assert.not.ok(verifyJsonSignature(mangled, 'domain', 'ed25519:1', PUBLIC));
  const truncated = { ...signed, signatures: { domain: { 'ed25519:1': signed.signatures.domain!['ed25519:1']!.slice(0, 84) } } };
  assert.not.ok(verifyJsonSignature(truncated, 'domain', 'ed25519:1', PUBLIC));
  assert.not.ok(verifyJsonSignature(signed, 'domain', 'ed25519:1', 'not a key'));
  assert.not.ok(verifyJsonSignature({ ...signed, bad: 1.5 }, 'domain', 'ed25519:1', PUBLIC));
});

test.run();
