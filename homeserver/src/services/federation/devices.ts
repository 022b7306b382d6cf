/**
 * End-to-end encryption across servers (spec: server-server API, "End-to-End Encryption" and
 * "Device Management"): our users' device lists and keys for other servers (/user/devices,
 * /user/keys/query|claim, and the `m.device_list_update` content), other servers' users' keys for
 * our clients (asked over federation with a deadline; lists of users we share a room with are
 * cached and kept fresh by their server's device-list EDUs), and those EDUs in.
 */
import { createHash } from 'node:crypto';
import type { FederationSenderConfig } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import { encodeCanonicalJson, type JsonObject as CanonicalObject } from '../../core/canonical_json.js';
import { isObject, type JsonObject } from '../../core/json.js';
import { parseUserId } from '../../core/ids.js';
import type { Database } from '../../storage/db.js';
import * as e2eStore from '../../storage/e2e_keys.js';
import { listDevices } from '../../storage/devices.js';
import * as store from '../../storage/federation_edus.js';
import type { DeviceListService } from '../e2e/device_lists.js';
import type { KeysService, RemoteKeys } from '../e2e/keys.js';
import type { FederationClient } from './client.js';

/** One device as /user/devices lists it. */
export interface LocalDevice {
  device_id: string;
  keys?: JsonObject;
  device_display_name?: string;
}

export interface LocalDeviceList {
  devices: LocalDevice[];
  master_key?: JsonObject;
  self_signing_key?: JsonObject;
}

const serverOf = (userId: string) => parseUserId(userId)?.serverName;

/** Hash of what another server knows of a device (its keys and display name). */
export function deviceHash(d: LocalDevice): string {
  return createHash('sha256').update(encodeCanonicalJson({ keys: d.keys ?? null, name: d.device_display_name ?? null })).digest('base64');
}

export class FederationDevices implements RemoteKeys {
  private readonly resyncing = new Map<string, Promise<store.RemoteDeviceList | undefined>>();

  constructor(
    private readonly deps: {
      db: Database;
      serverName: string;
      keys: KeysService;
      deviceLists: DeviceListService;
      client: FederationClient;
      config: FederationSenderConfig;
      logger: Logger;
    },
  ) {}

  // --- Our users, for other servers ---

  /** A local user's devices with their keys (and our cross-signing signatures), and cross-signing keys. */
  async localDeviceList(userId: string): Promise<LocalDeviceList> {
    const { db } = this.deps;
    const answer = await this.deps.keys.query('', { device_keys: { [userId]: [] } });
    const withKeys = ((answer.device_keys as JsonObject | undefined)?.[userId] ?? {}) as Record<string, JsonObject>;
    const devices: LocalDevice[] = [];
    for (const d of await listDevices(db, userId)) {
      const keys = withKeys[d.device_id];
      const out: LocalDevice = { device_id: d.device_id };
      if (keys) {
        const { unsigned: _u, ...signed } = keys;
        out.keys = signed;
      }
      if (d.display_name !== null && d.display_name !== undefined) out.device_display_name = d.display_name;
      devices.push(out);
    }
    const master = (answer.master_keys as JsonObject | undefined)?.[userId];
    const selfSigning = (answer.self_signing_keys as JsonObject | undefined)?.[userId];
    return { devices, ...(isObject(master) ? { master_key: master } : {}), ...(isObject(selfSigning) ? { self_signing_key: selfSigning } : {}) };
  }

  /** GET /_matrix/federation/v1/user/devices/{userId}. */
  async userDevices(userId: string): Promise<JsonObject> {
    const list = await this.localDeviceList(userId);
    return { user_id: userId, stream_id: await store.deviceStreamId(this.deps.db, userId), ...list };
  }

  /** POST /_matrix/federation/v1/user/keys/query: our users only (others are left out). */
  async queryLocal(body: JsonObject): Promise<JsonObject> {
    const wanted = isObject(body.device_keys) ? body.device_keys : {};
    const local = Object.fromEntries(Object.entries(wanted).filter(([u]) => serverOf(u) === this.deps.serverName));
    const { failures: _f, user_signing_keys: _us, ...answer } = await this.deps.keys.query('', { device_keys: local });
    return answer;
  }

  /** POST /_matrix/federation/v1/user/keys/claim: our users only. */
  async claimLocal(body: JsonObject): Promise<JsonObject> {
    const wanted = isObject(body.one_time_keys) ? body.one_time_keys : {};
    const local = Object.fromEntries(Object.entries(wanted).filter(([u]) => serverOf(u) === this.deps.serverName));
    const { failures: _f, ...answer } = await this.deps.keys.claim({ one_time_keys: local });
    return answer;
  }

  // --- Other servers' users, for our clients (RemoteKeys) ---

  /** /keys/query for users of other servers: each server asked once, failures reported per server. */
  async query(wanted: Map<string, string[]>): Promise<{ deviceKeys: JsonObject; masterKeys: JsonObject; selfSigningKeys: JsonObject; failures: JsonObject }> {
    const out = { deviceKeys: {} as JsonObject, masterKeys: {} as JsonObject, selfSigningKeys: {} as JsonObject, failures: {} as JsonObject };
    const byServer = groupByServer(wanted);
    await Promise.all(
      [...byServer].map(async ([server, users]) => {
        try {
          await this.queryServer(server, users, out);
        } catch (err) {
          out.failures[server] = failureOf(err);
        }
      }),
    );
    return out;
  }

  private async queryServer(server: string, users: Map<string, string[]>, out: { deviceKeys: JsonObject; masterKeys: JsonObject; selfSigningKeys: JsonObject }): Promise<void> {
    const ask = new Map<string, string[]>();
    for (const [userId, deviceIds] of users) {
      const list = await this.cachedList(userId);
      if (!list) {
        ask.set(userId, deviceIds);
        continue;
      }
      const devices: JsonObject = {};
      for (const [id, keys] of Object.entries(list.devices)) if (deviceIds.length === 0 || deviceIds.includes(id)) devices[id] = keys;
      out.deviceKeys[userId] = devices;
      if (list.masterKey) out.masterKeys[userId] = list.masterKey;
      if (list.selfSigningKey) out.selfSigningKeys[userId] = list.selfSigningKey;
    }
    if (ask.size === 0) return;
    const answer = await this.deps.client.request({
      destination: server,
      method: 'POST',
      path: '/_matrix/federation/v1/user/keys/query',
      body: { device_keys: Object.fromEntries(ask) },
      timeoutMs: this.deps.config.remoteKeysTimeoutMs,
    });
    // A server speaks for its own users only: anything else in its answer is dropped.
    const own = (v: unknown) => (isObject(v) ? Object.entries(v).filter(([u, x]) => ask.has(u) && serverOf(u) === server && isObject(x)) : []);
    for (const [u, devices] of own(answer.device_keys)) out.deviceKeys[u] = devices;
    for (const [u, key] of own(answer.master_keys)) out.masterKeys[u] = key;
    for (const [u, key] of own(answer.self_signing_keys)) out.selfSigningKeys[u] = key;
    for (const u of ask.keys()) out.deviceKeys[u] ??= {};
  }

  /**
   * The cached list of a user we share a room with (fetched with /user/devices when we have none
   * or it went stale); undefined for other users (their server is asked every time).
   */
  private async cachedList(userId: string): Promise<store.RemoteDeviceList | undefined> {
    const cached = (await store.remoteDeviceLists(this.deps.db, [userId])).get(userId);
    if (cached && !cached.stale) return cached;
    if (!(await store.sharesRoomWithLocal(this.deps.db, userId, this.deps.serverName))) return undefined;
    return this.resync(userId);
  }

  /** Fetches the user's whole list from their server and caches it (concurrent calls share one request). */
  resync(userId: string): Promise<store.RemoteDeviceList | undefined> {
    let p = this.resyncing.get(userId);
    if (!p) {
      p = this.doResync(userId).finally(() => this.resyncing.delete(userId));
      this.resyncing.set(userId, p);
    }
    return p;
  }

  private async doResync(userId: string): Promise<store.RemoteDeviceList | undefined> {
    const server = serverOf(userId)!;
    const answer = await this.deps.client.request({
      destination: server,
      method: 'GET',
      path: `/_matrix/federation/v1/user/devices/${encodeURIComponent(userId)}`,
      timeoutMs: this.deps.config.remoteKeysTimeoutMs,
    });
    if (answer.user_id !== userId || !Number.isSafeInteger(answer.stream_id) || !Array.isArray(answer.devices)) {
      throw new Error(`${server}: malformed /user/devices answer`);
    }
    const devices: store.RemoteDeviceList['devices'] = {};
    for (const d of answer.devices) {
      if (!isObject(d) || typeof d.device_id !== 'string') continue;
      const keys = isObject(d.keys) && d.keys.user_id === userId && d.keys.device_id === d.device_id ? { ...d.keys } : undefined;
      if (!keys) continue; // a device without keys cannot take part in encryption
      if (typeof d.device_display_name === 'string') keys.unsigned = { device_display_name: d.device_display_name };
      devices[d.device_id] = keys;
    }
    const list: store.RemoteDeviceList = {
      userId,
      streamId: answer.stream_id as number,
      stale: false,
      devices,
      masterKey: isObject(answer.master_key) && answer.master_key.user_id === userId ? answer.master_key : null,
      selfSigningKey: isObject(answer.self_signing_key) && answer.self_signing_key.user_id === userId ? answer.self_signing_key : null,
    };
    await store.putRemoteDeviceList(this.deps.db, list, Date.now());
    return list;
  }

  /** /keys/claim for users of other servers. */
  async claim(wanted: Map<string, Record<string, string>>): Promise<{ oneTimeKeys: JsonObject; failures: JsonObject }> {
    const out = { oneTimeKeys: {} as JsonObject, failures: {} as JsonObject };
    const byServer = new Map<string, JsonObject>();
    for (const [userId, devices] of wanted) {
      const server = serverOf(userId)!;
      let m = byServer.get(server);
      if (!m) byServer.set(server, (m = {}));
      m[userId] = devices;
    }
    await Promise.all(
      [...byServer].map(async ([server, users]) => {
        try {
          const answer = await this.deps.client.request({
            destination: server,
            method: 'POST',
            path: '/_matrix/federation/v1/user/keys/claim',
            body: { one_time_keys: users as CanonicalObject },
            timeoutMs: this.deps.config.remoteKeysTimeoutMs,
          });
          if (isObject(answer.one_time_keys)) {
            for (const [u, keys] of Object.entries(answer.one_time_keys)) if (u in users && isObject(keys)) out.oneTimeKeys[u] = keys;
          }
        } catch (err) {
          out.failures[server] = failureOf(err);
        }
      }),
    );
    return out;
  }

  // --- EDUs in ---

  /** `m.device_list_update` from `origin` (already checked to be the user's server). */
  async deviceListUpdate(content: JsonObject): Promise<void> {
    const userId = content.user_id as string;
    const deviceId = content.device_id;
    const streamId = content.stream_id;
    if (typeof deviceId !== 'string' || !Number.isSafeInteger(streamId)) return;
    const prev = Array.isArray(content.prev_id) ? content.prev_id.filter((p): p is number => Number.isSafeInteger(p)) : [];
    const { db } = this.deps;
    let stale = false;
    const position = await db.transaction(async (tx) => {
      const cached = (await store.remoteDeviceLists(tx, [userId], true)).get(userId);
      if (cached && !cached.stale) {
        if ((streamId as number) <= cached.streamId) return 0; // already applied
        if (prev.includes(cached.streamId)) {
          const devices = { ...cached.devices };
          if (content.deleted === true) delete devices[deviceId];
          else if (isObject(content.keys) && content.keys.user_id === userId && content.keys.device_id === deviceId) {
            devices[deviceId] = { ...content.keys, ...(typeof content.device_display_name === 'string' ? { unsigned: { device_display_name: content.device_display_name } } : {}) };
          }
          await store.putRemoteDeviceList(tx, { ...cached, devices, streamId: streamId as number }, Date.now());
        } else {
          // We missed an update: fetch the whole list again (now in the background, or at the next query).
          await store.markRemoteDeviceListStale(tx, userId);
          stale = true;
        }
      }
      return this.deps.deviceLists.record(tx, [{ userId }]);
    });
    await this.deps.deviceLists.notify(position, [{ userId }]);
    if (stale) this.resync(userId).catch((err: unknown) => this.deps.logger.debug({ err, userId }, 'device list resync failed'));
  }

  /** `m.signing_key_update`: the user's new cross-signing keys. */
  async signingKeyUpdate(content: JsonObject): Promise<void> {
    const userId = content.user_id as string;
    const valid = (k: unknown): k is JsonObject => isObject(k) && k.user_id === userId;
    const position = await this.deps.db.transaction(async (tx) => {
      const cached = (await store.remoteDeviceLists(tx, [userId], true)).get(userId);
      if (cached) {
        await store.putRemoteDeviceList(
          tx,
          { ...cached, masterKey: valid(content.master_key) ? content.master_key : cached.masterKey, selfSigningKey: valid(content.self_signing_key) ? content.self_signing_key : cached.selfSigningKey },
          Date.now(),
        );
      }
      return this.deps.deviceLists.record(tx, [{ userId }]);
    });
    await this.deps.deviceLists.notify(position, [{ userId }]);
  }

  /** Cross-signing keys of a local user as an `m.signing_key_update` would carry them (for the sender). */
  async localCrossSigning(userId: string): Promise<{ master_key?: JsonObject; self_signing_key?: JsonObject }> {
    const keys = (await e2eStore.getCrossSigningKeys(this.deps.db, [userId])).get(userId) ?? {};
    return { ...(keys.master ? { master_key: keys.master.key } : {}), ...(keys.self_signing ? { self_signing_key: keys.self_signing.key } : {}) };
  }
}

function groupByServer<T>(wanted: Map<string, T>): Map<string, Map<string, T>> {
  const out = new Map<string, Map<string, T>>();
  for (const [userId, v] of wanted) {
    const server = serverOf(userId)!;
    let m = out.get(server);
    if (!m) out.set(server, (m = new Map()));
    m.set(userId, v);
  }
  return out;
}

/** A per-server failure as /keys/query and /keys/claim report it. */
function failureOf(err: unknown): JsonObject {
  const e = err as { status?: number; kind?: string; message?: string };
  return { status: e.kind === 'remote' && e.status ? e.status : 503, message: e.kind === 'timeout' ? 'Timed out' : 'Remote server unavailable' };
}
