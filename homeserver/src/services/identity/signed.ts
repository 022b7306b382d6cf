/**
 * The `signed` object of a third-party invite (signed_third_party_invite.yaml): `{mxid, token,
 * signatures}` signed by an identity server with a key it published in the room's
 * `m.room.third_party_invite` event. Rule 4.4.1.7 of the auth rules asks whether any signature in it
 * matches any of those public keys; this is that check (pure, synchronous: the keys are in the event,
 * no fetch is needed), handed to the auth rules through `THIRD_PARTY_AUTH`.
 */
import type { AuthOptions } from '../rooms/auth_rules_member.js';
import { verifyJsonSignature } from '../../core/signing.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A public key of an `m.room.third_party_invite` event and the URL that says whether it is still valid. */
export interface InvitePublicKey {
  publicKey: string;
  /** Absent for a `public_keys` entry without one: that key stays valid indefinitely. */
  validityUrl?: string;
}

/** The keys of an `m.room.third_party_invite` content: `public_key` (with `key_validity_url`) and every `public_keys[]` entry. */
export function invitePublicKeys(content: Record<string, unknown>): InvitePublicKey[] {
  const out: InvitePublicKey[] = [];
  const withUrl = (publicKey: string, url: unknown): InvitePublicKey => (typeof url === 'string' ? { publicKey, validityUrl: url } : { publicKey });
  if (typeof content.public_key === 'string') out.push(withUrl(content.public_key, content.key_validity_url));
  if (Array.isArray(content.public_keys)) {
    for (const entry of content.public_keys) {
      if (isObject(entry) && typeof entry.public_key === 'string') out.push(withUrl(entry.public_key, entry.key_validity_url));
    }
  }
  return out;
}

/** Keys come in standard or URL-safe unpadded base64; signatures are checked against the standard form. */
const standardBase64 = (key: string): string => key.replace(/-/g, '+').replace(/_/g, '/');

/**
 * Most (signature, key) pairs tried: a real `signed` has one or two signatures and the event two keys;
 * the cap keeps a hostile event (up to 64 KiB of signatures and keys) from costing seconds of CPU.
 */
export const MAX_SIGNATURE_CHECKS = 64;

/** The first of `publicKeys` that one of the ed25519 signatures in `signed` verifies against, if any. */
export function signingPublicKey(signed: Record<string, unknown>, publicKeys: readonly string[]): string | undefined {
  const signatures = signed.signatures;
  if (!isObject(signatures)) return undefined;
  let budget = MAX_SIGNATURE_CHECKS;
  for (const [server, byKey] of Object.entries(signatures)) {
    if (!isObject(byKey)) continue;
    for (const keyId of Object.keys(byKey)) {
      if (!keyId.startsWith('ed25519:')) continue;
      for (const key of publicKeys) {
        if (budget-- <= 0) return undefined;
        if (verifyJsonSignature(signed, server, keyId, standardBase64(key))) return key;
      }
    }
  }
  return undefined;
}

/** Rule 4.4.1.7: does any signature in `signed` match any of the invite's public keys? */
export function verifyThirdPartySigned(signed: Record<string, unknown>, publicKeys: string[]): boolean {
  return signingPublicKey(signed, publicKeys) !== undefined;
}

/** Auth-rule options every check of room events passes (local writes, received and backfilled events, state resolution). */
export const THIRD_PARTY_AUTH: AuthOptions = Object.freeze({ verifyThirdPartyInvite: verifyThirdPartySigned });
