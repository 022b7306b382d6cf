import { MatrixError, badJson, invalidParam } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import type { PushConfig } from '../../core/config.js';
import type { Database, Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as store from '../../storage/pushers.js';

/** Spec limits (pusher.yaml): pushkey 512 bytes, app_id 64 characters. */
const MAX_PUSHKEY_BYTES = 512;
const MAX_APP_ID_LENGTH = 64;
/** Our limits on the free-text fields and the `data` object. */
const MAX_NAME_LENGTH = 256;
const MAX_LANG_LENGTH = 64;
const MAX_DATA_BYTES = 4096;
export const NOTIFY_PATH = '/_matrix/push/v1/notify';

/** Advisory-lock class of pusher writes (two-key form: per user). */
const PUSHER_LOCK_CLASS = 0x50534852; // "PSHR"

/**
 * Pushers (spec: "Push Notifications", GET /pushers, POST /pushers/set). Only `http` pushers are
 * supported: `email` pushers (Synapse sends digests by email to a validated address) are refused
 * with M_INVALID_PARAM. A pusher belongs to the device that set it and goes when that device's
 * session ends (as Synapse deletes a logged-out access token's pushers).
 */
export class PusherService {
  constructor(private readonly deps: { db: Database; config: PushConfig }) {}

  async list(userId: string): Promise<JsonObject[]> {
    return (await store.listForUser(this.deps.db, userId)).map(toClient);
  }

  async set(userId: string, deviceId: string, raw: unknown): Promise<void> {
    if (!isObject(raw)) throw badJson('The body must be a JSON object');
    const missing = ['kind', 'app_id', 'pushkey'].filter((k) => !(k in raw));
    if (missing.length > 0) throw new MatrixError(400, 'M_MISSING_PARAM', `Missing parameters: ${missing.join(', ')}`);
    const appId = str(raw, 'app_id');
    const pushkey = str(raw, 'pushkey');
    if (appId === '' || [...appId].length > MAX_APP_ID_LENGTH) throw invalidParam(`'app_id' must be 1 to ${MAX_APP_ID_LENGTH} characters`);
    if (pushkey === '' || Buffer.byteLength(pushkey) > MAX_PUSHKEY_BYTES) throw invalidParam(`'pushkey' must be 1 to ${MAX_PUSHKEY_BYTES} bytes`);
    if (raw.kind === null) {
      await store.deleteOne(this.deps.db, userId, appId, pushkey);
      return;
    }
    if (raw.kind === 'email') throw invalidParam('Email pushers are not supported by this server');
    if (raw.kind !== 'http') throw invalidParam("'kind' must be \"http\" or null");
    const needed = ['app_display_name', 'device_display_name', 'lang', 'data'].filter((k) => raw[k] === undefined || raw[k] === null);
    if (needed.length > 0) throw new MatrixError(400, 'M_MISSING_PARAM', `Missing parameters: ${needed.join(', ')}`);
    const appDisplayName = str(raw, 'app_display_name', MAX_NAME_LENGTH);
    const deviceDisplayName = str(raw, 'device_display_name', MAX_NAME_LENGTH);
    const lang = str(raw, 'lang', MAX_LANG_LENGTH);
    const profileTag = raw.profile_tag === undefined || raw.profile_tag === null ? null : str(raw, 'profile_tag', MAX_NAME_LENGTH);
    if (!isObject(raw.data)) throw badJson("'data' must be an object");
    const data = raw.data;
    if (Buffer.byteLength(JSON.stringify(data)) > MAX_DATA_BYTES) throw invalidParam(`'data' must be at most ${MAX_DATA_BYTES} bytes of JSON`);
    checkGatewayUrl(data.url);
    if (data.format !== undefined && typeof data.format !== 'string') throw invalidParam("'data.format' must be a string");
    if (raw.append !== undefined && typeof raw.append !== 'boolean') throw badJson("'append' must be a boolean");
    const append = raw.append === true;

    await this.deps.db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(?, hashtext(?))', [PUSHER_LOCK_CLASS, userId]);
      const existing = (await store.listForUser(tx, userId)).some((p) => p.appId === appId && p.pushkey === pushkey);
      if (!existing && (await store.countForUser(tx, userId)) >= this.deps.config.maxPushersPerUser) {
        throw invalidParam(`At most ${this.deps.config.maxPushersPerUser} pushers per user`);
      }
      await store.upsert(tx, {
        userId,
        deviceId,
        kind: 'http',
        appId,
        pushkey,
        appDisplayName,
        deviceDisplayName,
        profileTag,
        lang,
        data,
        startAfter: await events.maxStreamOrdering(tx),
        now: Date.now(),
      });
      if (!append) await store.deleteOthers(tx, userId, appId, pushkey);
    });
  }

}

/** Session hook: the pushers of deleted devices (logged out, deleted, deactivated) go with them, in the deleting transaction. */
export async function deletePushersOfDevices(tx: Sql, userId: string, deviceIds: readonly string[]): Promise<void> {
  await store.deleteForDevices(tx, userId, deviceIds);
}

function str(o: JsonObject, key: string, max = Infinity): string {
  const v = o[key];
  if (typeof v !== 'string') throw badJson(`'${key}' must be a string`);
  if ([...v].length > max) throw invalidParam(`'${key}' must be at most ${max} characters`);
  return v;
}

/** `data.url` of an http pusher: an http(s) URL whose path is exactly /_matrix/push/v1/notify. */
export function checkGatewayUrl(url: unknown): void {
  if (url === undefined || url === null) throw new MatrixError(400, 'M_MISSING_PARAM', "'data.url' is required for http pushers");
  if (typeof url !== 'string') throw invalidParam("'data.url' must be a string");
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidParam("'data.url' is not a URL");
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw invalidParam("'data.url' must be an http(s) URL");
  if (u.pathname !== NOTIFY_PATH) throw invalidParam(`'data.url' must have the path ${NOTIFY_PATH}`);
  if (u.username !== '' || u.password !== '') throw invalidParam("'data.url' must not carry credentials");
}

function toClient(p: store.PusherRow): JsonObject {
  const out: JsonObject = {
    pushkey: p.pushkey,
    kind: p.kind,
    app_id: p.appId,
    app_display_name: p.appDisplayName,
    device_display_name: p.deviceDisplayName,
    lang: p.lang,
    data: p.data,
  };
  if (p.profileTag !== null) out.profile_tag = p.profileTag;
  return out;
}
