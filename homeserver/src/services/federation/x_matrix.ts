/**
 * Request authentication (spec: server-server API, "Request Authentication"): the `X-Matrix`
 * Authorization header. A request is signed as the JSON object {method, uri, origin, destination,
 * content?}; the header carries origin, destination, key id and signature.
 */
import type { JsonValue } from '../../core/canonical_json.js';
import { verifyJsonSignature, type Signatures } from '../../core/signing.js';

export interface XMatrixAuth {
  origin: string;
  /** Absent only from servers older than spec v1.3 (we always send it). */
  destination?: string;
  key: string;
  sig: string;
}

export interface SignedRequestParts {
  method: string;
  /** Path with `?` and the query exactly as sent, without scheme and host. */
  uri: string;
  origin: string;
  destination: string;
  /** The parsed JSON body; omitted for requests without one. */
  content?: JsonValue;
}

/** What can sign: this server's key (`ServerSigningKey`). */
export interface RequestSigner {
  readonly serverName: string;
  readonly keyId: string;
  sign<T extends object>(obj: T): Omit<T, 'signatures'> & { signatures: Signatures };
}

export class XMatrixParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XMatrixParseError';
  }
}

function signingObject(parts: SignedRequestParts): Record<string, JsonValue> {
  const obj: Record<string, JsonValue> = { method: parts.method.toUpperCase(), uri: parts.uri, origin: parts.origin, destination: parts.destination };
  if (parts.content !== undefined) obj.content = parts.content;
  return obj;
}

/** The Authorization header value for a request from `signer`. */
export function signRequest(signer: RequestSigner, parts: Omit<SignedRequestParts, 'origin'>): string {
  const signed = signer.sign(signingObject({ ...parts, origin: signer.serverName }));
  const sig = signed.signatures[signer.serverName]![signer.keyId]!;
  return formatXMatrix({ origin: signer.serverName, destination: parts.destination, key: signer.keyId, sig });
}

/** Whether `sig` is `origin`'s signature by the given public key over the request. */
export function verifyRequest(auth: XMatrixAuth, parts: SignedRequestParts, publicKeyBase64: string): boolean {
  const obj = { ...signingObject(parts), signatures: { [auth.origin]: { [auth.key]: auth.sig } } };
  return verifyJsonSignature(obj, auth.origin, auth.key, publicKeyBase64);
}

/** Written as the spec asks senders to: one space, lower-case names, quoted values, no spaces around commas. */
export function formatXMatrix(auth: XMatrixAuth): string {
  const q = (v: string) => `"${v.replace(/["\\]/g, '\\$&')}"`;
  const params = [`origin=${q(auth.origin)}`];
  if (auth.destination !== undefined) params.push(`destination=${q(auth.destination)}`);
  params.push(`key=${q(auth.key)}`, `sig=${q(auth.sig)}`);
  return `X-Matrix ${params.join(',')}`;
}

// RFC 9110 5.6.2: tchar.
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const isOws = (c: string | undefined) => c === ' ' || c === '\t';

/**
 * Parses an `X-Matrix` credentials value per RFC 9110 11.4 as the spec describes: the scheme is
 * case-insensitive and followed by one or more spaces; parameters are `name=value` separated by
 * commas with optional spaces/tabs around them; names are case-insensitive; values are tokens or
 * quoted strings with backslash escapes; colons are also accepted unquoted (older servers). Unknown
 * parameters are ignored; a repeated one is an error (two different values cannot both be meant).
 */
export function parseXMatrix(header: string): XMatrixAuth {
  const scheme = /^x-matrix +/i.exec(header);
  if (!scheme) throw new XMatrixParseError('not an X-Matrix authorization');
  const s = header;
  let i = scheme[0].length;
  const params = new Map<string, string>();
  while (i < s.length) {
    // Empty list elements (",,") are allowed by the list syntax.
    while (i < s.length && (isOws(s[i]) || s[i] === ',')) i++;
    if (i >= s.length) break;
    const nameStart = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    if (i === nameStart) throw new XMatrixParseError(`expected a parameter name at offset ${i}`);
    const name = s.slice(nameStart, i).toLowerCase();
    while (isOws(s[i])) i++;
    if (s[i] !== '=') throw new XMatrixParseError(`expected '=' after '${name}'`);
    i++;
    while (isOws(s[i])) i++;
    let value = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw new XMatrixParseError(`unterminated quoted value of '${name}'`);
        const c = s[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          if (i + 1 >= s.length) throw new XMatrixParseError(`dangling backslash in '${name}'`);
          value += s[i + 1];
          i += 2;
          continue;
        }
        if (c < ' ' && c !== '\t') throw new XMatrixParseError(`control character in '${name}'`);
        value += c;
        i++;
      }
    } else {
      const start = i;
      while (i < s.length && (TCHAR.test(s[i]!) || s[i] === ':')) i++;
      if (i === start) throw new XMatrixParseError(`expected a value for '${name}'`);
      value = s.slice(start, i);
    }
    while (isOws(s[i])) i++;
    if (i < s.length && s[i] !== ',') throw new XMatrixParseError(`unexpected '${s[i]}' after '${name}'`);
    if (params.has(name)) throw new XMatrixParseError(`parameter '${name}' given twice`);
    params.set(name, value);
  }
  const origin = params.get('origin');
  const key = params.get('key');
  const sig = params.get('sig');
  if (!origin || !key || !sig) throw new XMatrixParseError('origin, key and sig are required');
  const destination = params.get('destination');
  return destination === undefined ? { origin, key, sig } : { origin, destination, key, sig };
}
