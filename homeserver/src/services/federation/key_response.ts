/**
 * Checking a `/_matrix/key/v2/server` response (spec: "Publishing Keys"; schema keys.yaml), whether
 * it came from the server itself or through a notary.
 */
import { decodeBase64 } from '../../core/signing.js';
import { verifyJsonSignature } from '../../core/signing.js';
import { encodeCanonicalJson, type JsonObject } from '../../core/canonical_json.js';

export const KEY_ID_RE = /^ed25519:[A-Za-z0-9_]+$/;

export interface VerifiedKeyResponse {
  serverName: string;
  validUntilTs: number;
  verifyKeys: { keyId: string; publicKey: string }[];
  oldVerifyKeys: { keyId: string; publicKey: string; expiredTs: number }[];
  /** Canonical JSON of the response with only the origin's own signatures (what a notary re-serves). */
  originSignedJson: string;
}

export class KeyResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyResponseError';
  }
}

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function isPublicKey(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  try {
    return decodeBase64(v).length === 32;
  } catch {
    return false;
  }
}

/**
 * Validates a key response for `expectedServer`: right `server_name`, integer `valid_until_ts`, at
 * least one ed25519 verify key, and a valid self-signature by every verify key it lists (keys of
 * other algorithms are ignored). Malformed `old_verify_keys` entries are dropped, not fatal.
 */
export function verifyKeyResponse(json: unknown, expectedServer: string): VerifiedKeyResponse {
  if (!isObj(json)) throw new KeyResponseError('not a JSON object');
  if (json.server_name !== expectedServer) throw new KeyResponseError(`server_name is ${JSON.stringify(json.server_name)}, expected ${expectedServer}`);
  const validUntilTs = json.valid_until_ts;
  if (typeof validUntilTs !== 'number' || !Number.isSafeInteger(validUntilTs) || validUntilTs < 0) throw new KeyResponseError('valid_until_ts missing or not an integer');
  if (!isObj(json.verify_keys)) throw new KeyResponseError('verify_keys missing');
  const verifyKeys: VerifiedKeyResponse['verifyKeys'] = [];
  for (const [keyId, entry] of Object.entries(json.verify_keys)) {
    if (!keyId.startsWith('ed25519:')) continue;
    if (!KEY_ID_RE.test(keyId) || !isObj(entry) || !isPublicKey(entry.key)) throw new KeyResponseError(`verify key ${keyId} is malformed`);
    if (!verifyJsonSignature(json, expectedServer, keyId, entry.key)) throw new KeyResponseError(`not self-signed by ${keyId}`);
    verifyKeys.push({ keyId, publicKey: entry.key.replace(/=+$/, '') });
  }
  if (verifyKeys.length === 0) throw new KeyResponseError('no ed25519 verify key');
  const oldVerifyKeys: VerifiedKeyResponse['oldVerifyKeys'] = [];
  if (isObj(json.old_verify_keys)) {
    for (const [keyId, entry] of Object.entries(json.old_verify_keys)) {
      if (!KEY_ID_RE.test(keyId) || !isObj(entry) || !isPublicKey(entry.key)) continue;
      if (typeof entry.expired_ts !== 'number' || !Number.isSafeInteger(entry.expired_ts)) continue;
      if (verifyKeys.some((k) => k.keyId === keyId)) continue; // listed as current too: current wins
      oldVerifyKeys.push({ keyId, publicKey: entry.key.replace(/=+$/, ''), expiredTs: entry.expired_ts });
    }
  }
  const signatures = json.signatures as JsonObject; // present: verifyJsonSignature checked it
  const originSignedJson = encodeCanonicalJson({ ...json, signatures: { [expectedServer]: signatures[expectedServer]! } });
  return { serverName: expectedServer, validUntilTs, verifyKeys, oldVerifyKeys, originSignedJson };
}
