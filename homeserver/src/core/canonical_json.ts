/**
 * Matrix canonical JSON (spec: appendices "Canonical JSON"; rooms v6+ "Canonical JSON").
 *
 * `parseStrictJson` is the gate for untrusted JSON: it refuses what room versions 6+ forbid
 * (floats, exponents, -0, integers outside +-(2^53-1), lone surrogates) plus duplicate keys,
 * which JSON.parse would silently resolve to "last one wins" — two servers resolving a
 * duplicate differently would hash and sign different events.
 *
 * `encodeCanonicalJson` produces the exact bytes that are hashed and signed.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Raised for text that is not strict canonical-compatible JSON, and for values that cannot be encoded. */
export class CanonicalJsonError extends Error {
  constructor(
    message: string,
    /** Offset in the (decoded) text for parse errors; undefined for encode errors. */
    readonly position?: number,
  ) {
    super(position === undefined ? message : `${message} (at offset ${position})`);
    this.name = 'CanonicalJsonError';
  }
}

/**
 * Nesting limit for both directions. It keeps hostile input from overflowing the stack and
 * turns a reference cycle into an error; Python's json (Synapse) gives up near 1000 too.
 */
export const MAX_JSON_DEPTH = 512;

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses JSON, refusing anything canonical JSON forbids. Bytes are decoded as strict UTF-8
 * (invalid sequences are an error rather than U+FFFD); a leading BOM is an error, as in
 * JSON.parse. Insignificant whitespace and redundant escapes (`\/`, `\u0041`) are allowed:
 * the input need not be canonical, only representable canonically.
 */
export function parseStrictJson(input: string | Uint8Array): JsonValue {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = utf8.decode(input);
    } catch {
      throw new CanonicalJsonError('invalid UTF-8 in JSON text');
    }
  }
  return new Parser(text).parseDocument();
}

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  parseDocument(): JsonValue {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.i < this.s.length) this.fail('unexpected text after the JSON value');
    return v;
  }

  private fail(msg: string, at = this.i): never {
    throw new CanonicalJsonError(msg, at);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.i++;
    }
  }

  private value(depth: number): JsonValue {
    if (depth > MAX_JSON_DEPTH) this.fail(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    const c = this.s[this.i];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      case undefined:
        return this.fail('unexpected end of JSON text');
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.fail(`unexpected character ${JSON.stringify(c)}`);
    }
  }

  private literal<T>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.i)) this.fail('invalid literal');
    this.i += word.length;
    return v;
  }

  private object(depth: number): JsonObject {
    const start = this.i;
    this.i++; // {
    // A Map keeps insertion order and makes duplicate detection exact (keys compared after
    // unescaping, so "a" and "\u0061" collide). Object.fromEntries defines own properties,
    // so a "__proto__" key stays data instead of replacing the prototype.
    const entries = new Map<string, JsonValue>();
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return {};
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('expected a string key');
      const keyAt = this.i;
      const key = this.string();
      if (entries.has(key)) this.fail(`duplicate key ${JSON.stringify(key)} in object starting at ${start}`, keyAt);
      this.ws();
      if (this.s[this.i] !== ':') this.fail("expected ':' after object key");
      this.i++;
      this.ws();
      entries.set(key, this.value(depth + 1));
      this.ws();
      const c = this.s[this.i];
      this.i++;
      if (c === '}') return Object.fromEntries(entries);
      if (c !== ',') this.fail("expected ',' or '}' in object", this.i - 1);
    }
  }

  private array(depth: number): JsonValue[] {
    this.i++; // [
    const out: JsonValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i];
      this.i++;
      if (c === ']') return out;
      if (c !== ',') this.fail("expected ',' or ']' in array", this.i - 1);
    }
  }

  private number(): number {
    const s = this.s;
    const start = this.i;
    if (s[this.i] === '-') this.i++;
    const digitsAt = this.i;
    while (this.i < s.length && s.charCodeAt(this.i) >= 0x30 && s.charCodeAt(this.i) <= 0x39) this.i++;
    const digits = this.i - digitsAt;
    if (digits === 0) this.fail('expected digits in number', digitsAt);
    if (digits > 1 && s[digitsAt] === '0') this.fail('numbers must not have leading zeros', start);
    const next = s[this.i];
    if (next === '.' || next === 'e' || next === 'E') {
      this.fail('floats and exponents are not allowed in canonical JSON (integers only)', start);
    }
    const text = s.slice(start, this.i);
    if (text === '-0') this.fail('negative zero is not allowed in canonical JSON', start);
    // Decimal text with a safe-integer value is always exactly representable, and anything of
    // 17+ digits exceeds 2^53, so the double conversion cannot accept a rounded value.
    const n = Number(text);
    if (!Number.isSafeInteger(n)) {
      this.fail(`integer ${text} is outside the canonical JSON range [-(2^53-1), 2^53-1]`, start);
    }
    return n;
  }

  private string(): string {
    const s = this.s;
    const start = this.i;
    this.i++; // opening quote
    let out = '';
    let runStart = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string', start);
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(runStart, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail('unescaped control character in string');
      if (c === 0x5c) {
        out += s.slice(runStart, this.i);
        out += this.escape();
        runStart = this.i;
        continue;
      }
      if (c >= 0xd800 && c <= 0xdbff) {
        // A literal high surrogate must be followed by a literal low one (a real astral char).
        const d = s.charCodeAt(this.i + 1);
        if (!(d >= 0xdc00 && d <= 0xdfff)) this.fail('lone surrogate in string');
        this.i += 2;
        continue;
      }
      if (c >= 0xdc00 && c <= 0xdfff) this.fail('lone surrogate in string');
      this.i++;
    }
  }

  /** Decodes one escape at `this.i` (the backslash); \u surrogate pairs are taken together. */
  private escape(): string {
    const s = this.s;
    const at = this.i;
    const e = s[this.i + 1];
    this.i += 2;
    switch (e) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const hi = this.hex4(at);
        if (hi >= 0xdc00 && hi <= 0xdfff) this.fail('lone low surrogate escape in string', at);
        if (hi < 0xd800 || hi > 0xdbff) return String.fromCharCode(hi);
        if (s[this.i] !== '\\' || s[this.i + 1] !== 'u') this.fail('lone high surrogate escape in string', at);
        this.i += 2;
        const lo = this.hex4(at);
        if (lo < 0xdc00 || lo > 0xdfff) this.fail('high surrogate escape not followed by a low surrogate', at);
        return String.fromCharCode(hi, lo);
      }
      default:
        return this.fail('invalid escape sequence in string', at);
    }
  }

  private hex4(escapeAt: number): number {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.s.charCodeAt(this.i + k);
      const d =
        c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
      if (d < 0) this.fail('invalid \\u escape in string', escapeAt);
      v = v * 16 + d;
    }
    this.i += 4;
    return v;
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/**
 * Orders two strings by Unicode code point. JavaScript's default `<` and `.sort()` compare
 * UTF-16 code units, which puts astral characters (surrogates D800-DFFF) before U+E000-U+FFFF;
 * remapping surrogates above that range restores code point order.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    const x = a.charCodeAt(k);
    const y = b.charCodeAt(k);
    if (x !== y) return remap(x) - remap(y);
  }
  return a.length - b.length;
}

function remap(u: number): number {
  if (u >= 0xd800 && u <= 0xdfff) return u + 0x2000;
  if (u >= 0xe000) return u - 0x800;
  return u;
}

const SHORT_ESCAPES: Record<number, string> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r' };
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;
/** In unicode mode a valid surrogate pair is one code point, so only lone surrogates match. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function encodeString(s: string): string {
  // A lone surrogate has no UTF-8 encoding; writing U+FFFD instead would sign different text.
  if (LONE_SURROGATE.test(s)) throw new CanonicalJsonError(`string contains a lone surrogate: ${JSON.stringify(s)}`);
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  let out = '"';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c < 0x20) out += SHORT_ESCAPES[c] ?? `\\u00${c.toString(16).padStart(2, '0')}`;
    else out += s[k];
  }
  return out + '"';
}

function encodeValue(v: unknown, depth: number, path: string): string {
  if (depth > MAX_JSON_DEPTH) throw new CanonicalJsonError(`value nested deeper than ${MAX_JSON_DEPTH} levels (a cycle?)`);
  switch (typeof v) {
    case 'string':
      return encodeString(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(v)) {
        throw new CanonicalJsonError(`${path}: ${v} is not an integer in [-(2^53-1), 2^53-1]`);
      }
      return String(v); // String(-0) is "0": the spec's example maps -0 to 0
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        const parts = v.map((item, k) => {
          // JSON.stringify would write null here, silently changing the signed data.
          if (item === undefined) throw new CanonicalJsonError(`${path}[${k}]: undefined in an array`);
          return encodeValue(item, depth + 1, `${path}[${k}]`);
        });
        return `[${parts.join(',')}]`;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalJsonError(`${path}: ${proto?.constructor?.name ?? 'object'} is not a plain JSON object`);
      }
      const rec = v as Record<string, unknown>;
      const keys = Object.keys(rec)
        .filter((k) => rec[k] !== undefined)
        .sort(compareCodePoints);
      const parts = keys.map((k) => `${encodeString(k)}:${encodeValue(rec[k], depth + 1, `${path}.${k}`)}`);
      return `{${parts.join(',')}}`;
    }
    default:
      throw new CanonicalJsonError(`${path}: a ${typeof v} cannot be encoded as JSON`);
  }
}

/**
 * Encodes a value as canonical JSON text (encode it as UTF-8 for hashing and signing).
 *
 * Like JSON.stringify, object properties whose value is `undefined` are omitted: optional
 * TypeScript fields set to undefined then sign the same as absent ones, and the bytes signed
 * match what JSON.stringify sends. Everything else JSON.stringify would coerce is an error:
 * undefined in arrays, non-integer or unsafe numbers, NaN, bigint, functions, symbols, lone
 * surrogates and non-plain objects (Date, Map, Buffer...). -0 is written as 0 (spec example).
 */
export function encodeCanonicalJson(value: unknown): string {
  if (value === undefined) throw new CanonicalJsonError('undefined is not a JSON value');
  return encodeValue(value, 0, '$');
}

/** Canonical JSON as the UTF-8 bytes that are hashed and signed. */
export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(encodeCanonicalJson(value), 'utf8');
}
