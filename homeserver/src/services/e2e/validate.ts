import { badJson } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import { encodeCanonicalJson } from '../../core/canonical_json.js';
import { parseUserId } from '../../core/ids.js';

/** Shape checks for key objects (the server never verifies device self-signatures, only their shape). */

/** `{ userId: { keyId: signature } }` with string leaves. */
export function checkSignatures(v: unknown, where: string): asserts v is Record<string, Record<string, string>> {
  if (!isObject(v)) throw badJson(`'${where}.signatures' must be an object`);
  for (const [user, sigs] of Object.entries(v)) {
    if (!isObject(sigs) || !Object.values(sigs).every((s) => typeof s === 'string')) {
      throw badJson(`'${where}.signatures.${user}' must map key ids to signatures`);
    }
  }
}

/** An object of string values, with at least one entry. */
export function checkStringMap(v: unknown, what: string): asserts v is Record<string, string> {
  if (!isObject(v) || Object.keys(v).length === 0 || !Object.values(v).every((s) => typeof s === 'string')) {
    throw badJson(`'${what}' must be a non-empty object of strings`);
  }
}

/** Splits `<algorithm>:<id>`; both parts non-empty. */
export function splitKeyId(keyId: string, what: string): [string, string] {
  const i = keyId.indexOf(':');
  if (i <= 0 || i === keyId.length - 1 || keyId.length > 255) throw badJson(`Invalid key id '${keyId}' in '${what}'`);
  return [keyId.slice(0, i), keyId.slice(i + 1)];
}

/** Canonical JSON text of a client-supplied value (400 for what canonical JSON cannot hold, e.g. floats). */
export function canonical(v: unknown, what: string): string {
  try {
    return encodeCanonicalJson(v);
  } catch {
    throw badJson(`'${what}' is not valid canonical JSON`);
  }
}

/** The part of a key object its signatures cover (spec: "Signing JSON"). */
export function signedPart(obj: JsonObject): string {
  const { signatures: _s, unsigned: _u, ...rest } = obj;
  return encodeCanonicalJson(rest);
}

/** A one-time or fallback key: an unsigned key string, or `{ key, signatures, fallback? }`. */
export function checkOneTimeKey(v: unknown, what: string): void {
  if (typeof v === 'string') return;
  if (!isObject(v) || typeof v.key !== 'string') throw badJson(`'${what}' must be a key string or an object with a 'key' string`);
  if (v.signatures !== undefined) checkSignatures(v.signatures, what);
}

export function isUserId(v: unknown): v is string {
  return typeof v === 'string' && parseUserId(v) !== null;
}
