import { MatrixError, badJson, invalidParam } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import { parseUserId } from '../../core/ids.js';
import type { Database, Sql } from '../../storage/db.js';
import * as store from '../../storage/e2e_keys.js';
import type { DeviceListService } from './device_lists.js';
import { canonical, checkOneTimeKey, checkSignatures, checkStringMap, isUserId, signedPart, splitKeyId } from './validate.js';

export interface KeysLimits {
  /** One-time plus fallback keys one /keys/upload may carry. */
  maxKeysPerUpload: number;
  /** Users plus devices one /keys/query or /keys/claim may name. */
  maxQueryTargets: number;
}

/**
 * Users of other servers, asked over federation (services/federation/devices.ts). Wired by
 * services/index.ts once the federation services exist; unset: remote users are reported in
 * `failures`.
 */
export interface RemoteKeys {
  query(wanted: Map<string, string[]>): Promise<{ deviceKeys: JsonObject; masterKeys: JsonObject; selfSigningKeys: JsonObject; failures: JsonObject }>;
  claim(wanted: Map<string, Record<string, string>>): Promise<{ oneTimeKeys: JsonObject; failures: JsonObject }>;
}

interface Who {
  userId: string;
  deviceId: string;
}

/**
 * Device keys, one-time keys and fallback keys (spec: "End-to-End Encryption", keys.yaml). The
 * server stores the public keys exactly as uploaded and hands them out; it never decrypts.
 * Users of other servers are asked through `remote` (federation), each server's failure in `failures`.
 */
export class KeysService {
  /** Federation's side of /keys/query and /keys/claim (see RemoteKeys). */
  remote?: RemoteKeys;

  constructor(private readonly deps: { db: Database; serverName: string; deviceLists: DeviceListService; limits: KeysLimits }) {}

  /** POST /keys/upload. */
  async upload(who: Who, body: JsonObject): Promise<{ one_time_key_counts: Record<string, number> }> {
    const deviceKeys = body.device_keys === undefined || body.device_keys === null ? undefined : this.checkDeviceKeys(who, body.device_keys);
    const otks = this.parseKeys(body.one_time_keys, 'one_time_keys');
    const fallbacks = this.parseKeys(body.fallback_keys, 'fallback_keys');
    if (otks.length + fallbacks.length > this.deps.limits.maxKeysPerUpload) {
      throw new MatrixError(413, 'M_TOO_LARGE', `At most ${this.deps.limits.maxKeysPerUpload} keys per upload`);
    }
    if (new Set(fallbacks.map((k) => k.algorithm)).size !== fallbacks.length) throw badJson('At most one fallback key per algorithm');
    let changed = 0;
    const counts = await this.deps.db.transaction(async (tx) => {
      const conflicts = await store.addOneTimeKeys(tx, who.userId, who.deviceId, otks);
      if (conflicts.length > 0) throw badJson(`One-time key ${conflicts[0]} already exists with a different key`);
      for (const k of fallbacks) await store.putFallbackKey(tx, who.userId, who.deviceId, k);
      if (deviceKeys) {
        const existing = await store.getDeviceKeys(tx, who.userId, who.deviceId);
        if (existing && signedPart(existing) !== signedPart(deviceKeys)) {
          // Like Synapse: a device's identity keys never change; a new identity needs a new device.
          throw badJson('This device already has different identity keys; log in as a new device');
        }
        await store.putDeviceKeys(tx, who.userId, who.deviceId, deviceKeys);
        if (!existing) changed = await this.deps.deviceLists.record(tx, [{ userId: who.userId }]);
      }
      return store.oneTimeKeyCounts(tx, who.userId, who.deviceId);
    });
    await this.deps.deviceLists.notify(changed, [{ userId: who.userId }]);
    return { one_time_key_counts: counts };
  }

  private checkDeviceKeys(who: Who, v: unknown): JsonObject {
    if (!isObject(v)) throw badJson("'device_keys' must be an object");
    if (v.user_id !== who.userId) throw badJson("'device_keys.user_id' must be your user id");
    if (v.device_id !== who.deviceId) throw badJson("'device_keys.device_id' must be this device's id");
    if (!Array.isArray(v.algorithms) || !v.algorithms.every((a) => typeof a === 'string')) throw badJson("'device_keys.algorithms' must be an array of strings");
    checkStringMap(v.keys, 'device_keys.keys');
    for (const keyId of Object.keys(v.keys)) {
      const [, id] = splitKeyId(keyId, 'device_keys.keys');
      if (id !== who.deviceId) throw badJson(`'device_keys.keys' key '${keyId}' must name this device`);
    }
    checkSignatures(v.signatures, 'device_keys');
    if (!isObject(v.signatures[who.userId])) throw badJson("'device_keys.signatures' must hold your own signature");
    canonical(v, 'device_keys');
    const { unsigned: _u, ...keys } = v;
    return keys;
  }

  private parseKeys(v: unknown, what: string): store.KeyUpload[] {
    if (v === undefined || v === null) return [];
    if (!isObject(v)) throw badJson(`'${what}' must be an object`);
    return Object.entries(v).map(([keyId, key]) => {
      const [algorithm, id] = splitKeyId(keyId, what);
      checkOneTimeKey(key, `${what}.${keyId}`);
      return { algorithm, keyId: id, json: canonical(key, `${what}.${keyId}`) };
    });
  }

  /** POST /keys/query. */
  async query(requester: string, body: JsonObject): Promise<JsonObject> {
    const wanted = body.device_keys;
    if (!isObject(wanted)) throw badJson("'device_keys' must be an object");
    let targets = 0;
    const local = new Map<string, string[]>();
    const remote = new Map<string, string[]>();
    const failures: JsonObject = {};
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!isUserId(userId)) throw invalidParam(`Invalid user id '${userId}'`);
      if (!Array.isArray(devices) || !devices.every((d) => typeof d === 'string')) throw badJson(`'device_keys.${userId}' must be an array of device ids`);
      targets += 1 + devices.length;
      const server = parseUserId(userId)!.serverName;
      if (server === this.deps.serverName) local.set(userId, [...new Set(devices as string[])]);
      else if (this.remote) remote.set(userId, [...new Set(devices as string[])]);
      else failures[server] = { status: 503, message: 'Federation is not available' };
    }
    if (targets > this.deps.limits.maxQueryTargets) throw new MatrixError(413, 'M_TOO_LARGE', `At most ${this.deps.limits.maxQueryTargets} users and devices per query`);
    const answer: JsonObject = await this.deps.db.transaction(async (tx) => {
      await tx.query('set transaction isolation level repeatable read, read only');
      return { failures, ...(await this.lookup(tx, requester, local)) };
    });
    if (this.remote && remote.size > 0) {
      // Remote users' keys (cached or asked over federation): merged into the same maps.
      const r = await this.remote.query(remote);
      Object.assign(answer.device_keys as JsonObject, r.deviceKeys);
      Object.assign(answer.master_keys as JsonObject, r.masterKeys);
      Object.assign(answer.self_signing_keys as JsonObject, r.selfSigningKeys);
      Object.assign(failures, r.failures);
    }
    return answer;
  }

  private async lookup(sql: Sql, requester: string, local: Map<string, string[]>): Promise<JsonObject> {
    const userIds = [...local.keys()];
    const sigs = await store.signaturesFor(sql, userIds, requester);
    const withSignatures = (userId: string, keyId: string, obj: JsonObject): JsonObject => {
      const extra = sigs.filter((s) => s.targetUserId === userId && s.targetKeyId === keyId);
      if (extra.length === 0) return obj;
      const signatures: Record<string, Record<string, string>> = {};
      for (const [u, m] of Object.entries((obj.signatures ?? {}) as Record<string, Record<string, string>>)) signatures[u] = { ...m };
      for (const s of extra) (signatures[s.signerUserId] ??= {})[s.signerKeyId] = s.signature;
      return { ...obj, signatures };
    };
    const deviceKeys: Record<string, JsonObject> = {};
    for (const u of userIds) deviceKeys[u] = {};
    for (const row of userIds.length === 0 ? [] : await store.queryDeviceKeys(sql, local)) {
      const unsigned = row.displayName !== null ? { device_display_name: row.displayName } : {};
      deviceKeys[row.userId]![row.deviceId] = { ...withSignatures(row.userId, row.deviceId, row.keys), unsigned };
    }
    const master: JsonObject = {};
    const selfSigning: JsonObject = {};
    const userSigning: JsonObject = {};
    for (const [userId, keys] of await store.getCrossSigningKeys(sql, userIds)) {
      if (keys.master) master[userId] = withSignatures(userId, keys.master.publicKey, keys.master.key);
      if (keys.self_signing) selfSigning[userId] = keys.self_signing.key;
      // Whom a user has verified is their own business.
      if (keys.user_signing && userId === requester) userSigning[userId] = keys.user_signing.key;
    }
    return { device_keys: deviceKeys, master_keys: master, self_signing_keys: selfSigning, user_signing_keys: userSigning };
  }

  /** POST /keys/claim: one key per requested device and algorithm; a one-time key is never handed out twice. */
  async claim(body: JsonObject): Promise<JsonObject> {
    const wanted = body.one_time_keys;
    if (!isObject(wanted)) throw badJson("'one_time_keys' must be an object");
    const requests: { userId: string; deviceId: string; algorithm: string }[] = [];
    const failures: JsonObject = {};
    const remote = new Map<string, Record<string, string>>();
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!isUserId(userId)) throw invalidParam(`Invalid user id '${userId}'`);
      if (!isObject(devices)) throw badJson(`'one_time_keys.${userId}' must be an object`);
      const server = parseUserId(userId)!.serverName;
      if (server !== this.deps.serverName) {
        if (!this.remote) failures[server] = { status: 503, message: 'Federation is not available' };
        else if (Object.values(devices).every((a) => typeof a === 'string' && a !== '')) remote.set(userId, devices as Record<string, string>);
        else throw badJson(`'one_time_keys.${userId}' must map device ids to algorithm names`);
        continue;
      }
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        if (typeof algorithm !== 'string' || algorithm === '') throw badJson(`'one_time_keys.${userId}.${deviceId}' must be an algorithm name`);
        requests.push({ userId, deviceId, algorithm });
      }
    }
    if (requests.length + [...remote.values()].reduce((n, d) => n + Object.keys(d).length, 0) > this.deps.limits.maxQueryTargets) throw new MatrixError(413, 'M_TOO_LARGE', `At most ${this.deps.limits.maxQueryTargets} devices per claim`);
    const out: Record<string, Record<string, JsonObject>> = {};
    for (const r of requests) {
      // Each claim is its own statement: the row it deletes is gone for every other claimer.
      const key =
        (await store.claimOneTimeKey(this.deps.db, r.userId, r.deviceId, r.algorithm)) ??
        (await store.claimFallbackKey(this.deps.db, r.userId, r.deviceId, r.algorithm));
      if (!key) continue;
      ((out[r.userId] ??= {})[r.deviceId] ??= {})[`${r.algorithm}:${key.keyId}`] = JSON.parse(key.json) as unknown;
    }
    if (this.remote && remote.size > 0) {
      const r = await this.remote.claim(remote);
      Object.assign(out, r.oneTimeKeys);
      Object.assign(failures, r.failures);
    }
    return { one_time_keys: out, failures };
  }

  /** Deletes the keys of devices being deleted, inside the caller's transaction. */
  async devicesDeleted(tx: Sql, userId: string, deviceIds: string[]): Promise<void> {
    await store.deleteDeviceKeys(tx, userId, deviceIds);
  }
}
