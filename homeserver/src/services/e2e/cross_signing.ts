import { MatrixError, badJson, forbidden } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import { verifyJsonSignature } from '../../core/signing.js';
import type { Database } from '../../storage/db.js';
import * as store from '../../storage/e2e_keys.js';
import { listDevices } from '../../storage/devices.js';
import type { DeviceListService } from './device_lists.js';
import { checkSignatures, checkStringMap, isUserId, signedPart } from './validate.js';

type KeyType = store.CrossSigningType;
const BODY_FIELDS: [string, KeyType][] = [
  ['master_key', 'master'],
  ['self_signing_key', 'self_signing'],
  ['user_signing_key', 'user_signing'],
];

interface ParsedKey {
  type: KeyType;
  publicKey: string;
  key: JsonObject;
}

const invalidSignature = (msg: string) => new MatrixError(400, 'M_INVALID_SIGNATURE', msg);

/**
 * Cross-signing (spec: "Cross-signing"): a user's master key signs their self-signing key (which
 * signs their devices) and user-signing key (which signs other users' master keys). The server
 * checks every signature it accepts against the stored public keys, so a client never receives a
 * forged one.
 */
export class CrossSigningService {
  constructor(private readonly deps: { db: Database; deviceLists: DeviceListService }) {}

  private parse(userId: string, body: JsonObject): ParsedKey[] {
    const out: ParsedKey[] = [];
    for (const [field, type] of BODY_FIELDS) {
      const v = body[field];
      if (v === undefined || v === null) continue;
      if (!isObject(v)) throw badJson(`'${field}' must be an object`);
      if (v.user_id !== userId) throw badJson(`'${field}.user_id' must be your user id`);
      if (!Array.isArray(v.usage) || !v.usage.includes(type) || !v.usage.every((u) => typeof u === 'string')) {
        throw badJson(`'${field}.usage' must include '${type}'`);
      }
      checkStringMap(v.keys, `${field}.keys`);
      const entries = Object.entries(v.keys);
      const [keyId, publicKey] = entries[0]!;
      if (entries.length !== 1 || keyId !== `ed25519:${publicKey}`) throw badJson(`'${field}.keys' must hold exactly one 'ed25519:<public key>' entry`);
      if (v.signatures !== undefined) checkSignatures(v.signatures, field);
      const { unsigned: _u, ...key } = v;
      out.push({ type, publicKey, key });
    }
    return out;
  }

  /**
   * Whether this upload needs user-interactive auth (spec 1.11+): not when the user has no master
   * key yet, nor when every key in the request equals the stored one (a retried upload).
   */
  async needsAuth(userId: string, body: JsonObject): Promise<boolean> {
    const keys = this.parse(userId, body);
    const stored = (await store.getCrossSigningKeys(this.deps.db, [userId])).get(userId) ?? {};
    if (!stored.master) return false;
    if (keys.length === 0) return false;
    return keys.some((k) => {
      const s = stored[k.type];
      return !s || signedPart(s.key) !== signedPart(k.key);
    });
  }

  /** POST /keys/device_signing/upload (after needsAuth / UIA). */
  async uploadKeys(userId: string, body: JsonObject): Promise<void> {
    const keys = this.parse(userId, body);
    if (keys.length === 0) return;
    const position = await this.deps.db.transaction(async (tx) => {
      const stored = (await store.getCrossSigningKeys(tx, [userId])).get(userId) ?? {};
      const master = keys.find((k) => k.type === 'master') ?? (stored.master && { type: 'master' as const, ...stored.master });
      if (!master) throw new MatrixError(400, 'M_MISSING_PARAM', 'No master key is available');
      const deviceIds = new Set((await listDevices(tx, userId)).map((d) => d.device_id));
      for (const k of keys) {
        if (deviceIds.has(k.publicKey)) throw forbidden('Key ID in use');
        if (k.type !== 'master' && !verifyJsonSignature(k.key, userId, `ed25519:${master.publicKey}`, master.publicKey)) {
          throw invalidSignature(`The ${k.type} key is not signed by the master key`);
        }
      }
      for (const k of keys) await store.putCrossSigningKey(tx, userId, k.type, k.publicKey, k.key);
      return this.deps.deviceLists.record(tx, [{ userId }]);
    });
    await this.deps.deviceLists.notify(position, [{ userId }]);
  }

  /** POST /keys/signatures/upload: each signature is checked and stored on its own; failures are reported per key. */
  async uploadSignatures(userId: string, body: JsonObject): Promise<{ failures: JsonObject }> {
    const failures: Record<string, Record<string, JsonObject>> = {};
    const fail = (u: string, k: string, e: MatrixError) => ((failures[u] ??= {})[k] = { errcode: e.errcode, error: e.message });
    const mine = (await store.getCrossSigningKeys(this.deps.db, [userId])).get(userId) ?? {};
    const changes: { userId: string; visibleTo?: string }[] = [];
    for (const [target, objects] of Object.entries(body)) {
      if (!isUserId(target)) throw badJson(`Invalid user id '${target}'`);
      if (!isObject(objects)) throw badJson(`'${target}' must map key ids to signed objects`);
      for (const [keyId, obj] of Object.entries(objects)) {
        try {
          if (!isObject(obj)) throw badJson('The signed object must be an object');
          checkSignatures(obj.signatures, keyId);
          const stored = await this.signedKey(target, keyId);
          if (!stored) throw new MatrixError(404, 'M_NOT_FOUND', 'Unknown key');
          if (signedPart(stored.key) !== signedPart(obj)) throw invalidSignature('The signed object does not match the stored key');
          const mySigs = obj.signatures[userId] ?? {};
          const signer = await this.acceptableSigners(userId, mine, target, stored.kind);
          // Signatures by keys that may sign this one must all verify; others (e.g. a device's own) are ignored.
          const accepted = Object.entries(mySigs).filter(([sigKeyId]) => signer.has(sigKeyId));
          if (accepted.length === 0) throw invalidSignature('No signature by a key that may sign this key');
          if (!accepted.every(([sigKeyId]) => verifyJsonSignature(obj, userId, sigKeyId, signer.get(sigKeyId)!))) throw invalidSignature('Invalid signature');
          await this.deps.db.transaction(async (tx) => {
            for (const [sigKeyId, sig] of accepted) {
              await store.putSignature(tx, { signerUserId: userId, signerKeyId: sigKeyId, targetUserId: target, targetKeyId: stored.id, signature: sig });
            }
          });
          changes.push(target === userId ? { userId } : { userId: target, visibleTo: userId });
        } catch (err) {
          if (!(err instanceof MatrixError)) throw err;
          fail(target, keyId, err);
        }
      }
    }
    if (changes.length > 0) {
      const pos = await this.deps.db.transaction((tx) => this.deps.deviceLists.record(tx, changes));
      await this.deps.deviceLists.notify(pos, changes);
    }
    return { failures };
  }

  /** The stored key a signature upload names: a device of the target, or their master key. */
  private async signedKey(target: string, keyId: string): Promise<{ kind: 'device' | 'master'; id: string; key: JsonObject } | undefined> {
    const device = await store.getDeviceKeys(this.deps.db, target, keyId);
    if (device) return { kind: 'device', id: keyId, key: device };
    const master = (await store.getCrossSigningKeys(this.deps.db, [target])).get(target)?.master;
    if (master && (keyId === master.publicKey || keyId === `ed25519:${master.publicKey}`)) return { kind: 'master', id: master.publicKey, key: master.key };
    return undefined;
  }

  /**
   * Which of the uploader's keys may sign this key (key id -> public key): their self-signing key
   * signs their own devices, their devices sign their own master key, their user-signing key signs
   * other users' master keys.
   */
  private async acceptableSigners(userId: string, mine: Partial<Record<KeyType, store.CrossSigningKey>>, target: string, kind: 'device' | 'master'): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (target === userId && kind === 'device' && mine.self_signing) out.set(`ed25519:${mine.self_signing.publicKey}`, mine.self_signing.publicKey);
    if (target !== userId && kind === 'master' && mine.user_signing) out.set(`ed25519:${mine.user_signing.publicKey}`, mine.user_signing.publicKey);
    if (target === userId && kind === 'master') {
      const devices = await store.queryDeviceKeys(this.deps.db, new Map([[userId, []]]));
      for (const d of devices) {
        const keys = d.keys.keys;
        const pub = isObject(keys) ? keys[`ed25519:${d.deviceId}`] : undefined;
        if (typeof pub === 'string') out.set(`ed25519:${d.deviceId}`, pub);
      }
    }
    return out;
  }
}
