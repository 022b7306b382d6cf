/**
 * Ed25519 JSON signing (spec: appendices "Signing JSON", "Checking for a Signature",
 * "Unpadded Base64") on node:crypto, with keys handled as the raw 32-byte seeds and public
 * keys the Matrix protocol publishes.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJsonBytes } from './canonical_json.js';

export type Signatures = Record<string, Record<string, string>>;

// ---------------------------------------------------------------------------------------------
// Base64
// ---------------------------------------------------------------------------------------------

/** Unpadded base64 with the standard alphabet (`+`, `/`), as Matrix writes keys, hashes and signatures. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}

/** Unpadded URL-safe base64 (`-`, `_`), as room versions 4+ write event ids. */
export function encodeBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

const STD = /^[A-Za-z0-9+/]*$/;
const URL_SAFE = /^[A-Za-z0-9_-]*$/;

/**
 * Strict base64 decode (padding optional, as the spec asks decoders to accept). Node's own
 * decoder skips characters it does not know, so a mangled signature would decode to some
 * other bytes instead of failing; here anything outside the alphabet throws.
 */
export function decodeBase64(text: string): Buffer {
  return decodeWith(text, STD, 'base64');
}

export function decodeBase64Url(text: string): Buffer {
  return decodeWith(text, URL_SAFE, 'base64url');
}

function decodeWith(text: string, alphabet: RegExp, encoding: 'base64' | 'base64url'): Buffer {
  const body = text.replace(/={1,2}$/, '');
  if (body.length !== text.length && text.length % 4 !== 0) throw new Error('invalid base64 padding');
  if (!alphabet.test(body) || body.length % 4 === 1) throw new Error('invalid base64');
  return Buffer.from(body, encoding);
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

// node:crypto takes Ed25519 keys only as DER/PEM/JWK; these fixed ASN.1 headers (RFC 8410)
// wrap a raw 32-byte seed or public key.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** 32 random bytes: a new Ed25519 seed (the private key as Matrix key files store it). */
export function generateSeed(): Buffer {
  return randomBytes(32);
}

export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new Error(`an ed25519 seed is 32 bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function publicKeyFromBytes(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new Error(`an ed25519 public key is 32 bytes, got ${publicKey.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

/** The raw 32-byte public key of an Ed25519 private or public key. */
export function publicKeyBytes(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

// ---------------------------------------------------------------------------------------------
// Signing JSON
// ---------------------------------------------------------------------------------------------

/** The object as it is signed: without `signatures` and `unsigned`, as canonical JSON bytes. */
function signingBytes(obj: object): Buffer {
  const { signatures: _s, unsigned: _u, ...rest } = obj as Record<string, unknown>;
  return canonicalJsonBytes(rest);
}

/**
 * Signs `obj` as `serverName` with `keyId` (e.g. `ed25519:a_AbCd`). Returns a copy with the new
 * signature merged into any existing `signatures` (other servers' and other keys' kept) and
 * `unsigned` carried over untouched; `obj` is not modified.
 */
export function signJson<T extends object>(
  obj: T,
  serverName: string,
  keyId: string,
  privateKey: KeyObject,
): Omit<T, 'signatures'> & { signatures: Signatures } {
  if (!keyId.startsWith('ed25519:')) throw new Error(`cannot sign with key ${keyId}: only ed25519 is supported`);
  const signature = encodeBase64(sign(null, signingBytes(obj), privateKey));
  const existing = ((obj as { signatures?: Signatures }).signatures ?? {}) as Signatures;
  const signatures: Signatures = { ...existing, [serverName]: { ...existing[serverName], [keyId]: signature } };
  return { ...obj, signatures };
}

/**
 * Checks `serverName`'s signature by `keyId` on `obj` against an unpadded-base64 public key,
 * following "Checking for a Signature": false when the signature is missing, not valid
 * base64, uses an algorithm other than ed25519, or does not verify; never throws for a bad
 * object or key, because callers treat any of these as an unsigned event.
 */
export function verifyJsonSignature(obj: object, serverName: string, keyId: string, publicKeyBase64: string): boolean {
  if (!keyId.startsWith('ed25519:')) return false;
  const sigs = (obj as { signatures?: unknown }).signatures;
  if (typeof sigs !== 'object' || sigs === null) return false;
  const mine = (sigs as Record<string, unknown>)[serverName];
  if (typeof mine !== 'object' || mine === null) return false;
  const sigText = Object.hasOwn(mine, keyId) ? (mine as Record<string, unknown>)[keyId] : undefined;
  if (typeof sigText !== 'string') return false;
  try {
    const signature = decodeBase64(sigText);
    const key = publicKeyFromBytes(decodeBase64(publicKeyBase64));
    return verify(null, signingBytes(obj), key, signature);
  } catch {
    return false;
  }
}
