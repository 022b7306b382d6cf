import type { KeyObject } from 'node:crypto';
import { encodeBase64, generateSeed, privateKeyFromSeed, publicKeyBytes, signJson } from '../../src/core/signing.js';
import { api, ok, type User } from './rooms.js';
import type { TestServer } from './harness.js';

/** Real ed25519 keys and signed key objects for the end-to-end encryption tests. */

export interface Ed25519 {
  priv: KeyObject;
  pub: string;
}

export function newKey(): Ed25519 {
  const priv = privateKeyFromSeed(generateSeed());
  return { priv, pub: encodeBase64(publicKeyBytes(priv)) };
}

/** `obj` signed by `user` with the key id `ed25519:<keyName>`. */
export function signAs<T extends object>(obj: T, user: string, keyName: string, key: Ed25519): T {
  return signJson(obj, user, `ed25519:${keyName}`, key.priv) as unknown as T;
}

/** A device's self-signed identity keys (`deviceKey` also signs its one-time keys). */
export function deviceKeys(u: User, deviceKey: Ed25519, curve = 'curve+' + u.device_id): Record<string, any> {
  const obj = {
    user_id: u.user_id,
    device_id: u.device_id,
    algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
    keys: { [`curve25519:${u.device_id}`]: curve, [`ed25519:${u.device_id}`]: deviceKey.pub },
  };
  return signAs(obj, u.user_id, u.device_id, deviceKey);
}

/** A cross-signing key object of `type`, signed by `signer` (the master key) when given. */
export function crossSigningKey(u: User, type: 'master' | 'self_signing' | 'user_signing', key: Ed25519, signer?: Ed25519): Record<string, any> {
  const obj = { user_id: u.user_id, usage: [type], keys: { [`ed25519:${key.pub}`]: key.pub } };
  return signer ? signAs(obj, u.user_id, signer.pub, signer) : obj;
}

/** Uploads the user's device keys; returns the device's ed25519 key. */
export async function uploadDeviceKeys(s: TestServer, u: User): Promise<Ed25519> {
  const k = newKey();
  ok(await api(s, u, 'POST', '/keys/upload', { device_keys: deviceKeys(u, k) }), 'keys/upload');
  return k;
}

/** GET /sync as `u` with these query parameters. */
export async function syncAs(s: TestServer, u: User, q: Record<string, string | number> = {}): Promise<any> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) params.set(k, String(v));
  return ok(await api(s, u, 'GET', `/sync?${params}`), 'sync');
}
