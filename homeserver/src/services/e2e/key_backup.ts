import { MatrixError, badJson, invalidParam, missingParam, notFound, tooLarge } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import type { Database } from '../../storage/db.js';
import * as store from '../../storage/key_backup.js';
import type { BackedUpKey, BackupVersionRow } from '../../storage/key_backup.js';

/** The one backup algorithm of the spec (v1.19). */
export const MEGOLM_BACKUP_ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';

export interface KeyBackupLimits {
  /** Keys one upload (PUT /room_keys/keys...) may carry. */
  maxKeysPerRequest: number;
  /** Largest `session_data` of one key (bytes of JSON). */
  maxSessionDataBytes: number;
  /** Largest `auth_data` of a backup version (bytes of JSON). */
  maxAuthDataBytes: number;
}

export interface BackupVersionInfo {
  algorithm: string;
  auth_data: JsonObject;
  count: number;
  etag: string;
  version: string;
}

/** The answer to every key upload or deletion. */
export interface RoomKeysUpdate {
  etag: string;
  count: number;
}

/** A key as the client API shows it (KeyBackupData). */
export interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: JsonObject;
}

type KeyMetadata = Pick<BackedUpKey, 'isVerified' | 'firstMessageIndex' | 'forwardedCount'>;

/**
 * The spec's rule for a key uploaded for a session the backup already holds: a verified key beats
 * an unverified one; then the lower `first_message_index` wins (it decrypts more of the session);
 * then the lower `forwarded_count`. A tie keeps the stored key.
 */
export function shouldReplace(stored: KeyMetadata, incoming: KeyMetadata): boolean {
  if (stored.isVerified !== incoming.isVerified) return incoming.isVerified;
  if (stored.firstMessageIndex !== incoming.firstMessageIndex) return incoming.firstMessageIndex < stored.firstMessageIndex;
  return incoming.forwardedCount < stored.forwardedCount;
}

const MAX_ID_LENGTH = 255;

/** Path and body room ids: a `!` sigil, bounded (v12 room ids have no server part, so nothing more). */
export function checkRoomId(roomId: string): string {
  if (!roomId.startsWith('!') || roomId.length < 2 || roomId.includes('\u0000') || Buffer.byteLength(roomId) > MAX_ID_LENGTH) throw invalidParam(`Invalid room ID: ${roomId.slice(0, 64)}`);
  return roomId;
}

export function checkSessionId(sessionId: string): string {
  if (sessionId === '' || sessionId.includes('\u0000') || Buffer.byteLength(sessionId) > MAX_ID_LENGTH) throw invalidParam('Invalid session ID');
  return sessionId;
}

/** Backup versions are positive integers written as strings; anything else names no backup. */
function parseVersion(version: string): number | undefined {
  return /^[1-9]\d{0,14}$/.test(version) ? Number(version) : undefined;
}

const unknownVersion = () => notFound('Unknown backup version');

/**
 * Server-side room key backups (spec: "Server-side key backups", key_backup.yaml). Each user has
 * backup versions; keys are written only to the newest (current) one, read and deleted from any.
 * Every key write or deletion holds the backup's row lock, so the replacement rule, `etag` and
 * `count` stay exact under concurrent uploads. The server never decrypts anything. Everything is
 * keyed by the requesting user: no one sees or touches another user's backups.
 */
export class KeyBackupService {
  constructor(private readonly deps: { db: Database; limits: KeyBackupLimits }) {}

  /** POST /room_keys/version. */
  async createVersion(userId: string, body: JsonObject): Promise<{ version: string }> {
    const { algorithm, authData } = this.parseVersionBody(body);
    if (algorithm !== MEGOLM_BACKUP_ALGORITHM) throw invalidParam(`Unsupported backup algorithm: ${algorithm.slice(0, 100)}`);
    const version = await this.deps.db.transaction(async (tx) => {
      // Version numbers are per user and never reused: allocate under the user's lock.
      await store.lockUserVersions(tx, userId);
      const v = await store.nextVersion(tx, userId);
      await store.insertVersion(tx, userId, v, algorithm, authData);
      return v;
    });
    return { version: String(version) };
  }

  /** GET /room_keys/version (no `version`: the current one) and /room_keys/version/{version}. */
  async getVersion(userId: string, version?: string): Promise<BackupVersionInfo> {
    let row: BackupVersionRow | undefined;
    if (version === undefined) {
      row = await store.currentVersion(this.deps.db, userId);
      if (!row) throw notFound('No current backup version');
    } else {
      const n = parseVersion(version);
      row = n === undefined ? undefined : await store.getVersion(this.deps.db, userId, n);
      if (!row) throw unknownVersion();
    }
    return { algorithm: row.algorithm, auth_data: row.authData, count: row.count, etag: String(row.etag), version: String(row.version) };
  }

  /** PUT /room_keys/version/{version}: only `auth_data` changes; the algorithm must stay. */
  async updateVersion(userId: string, version: string, body: JsonObject): Promise<Record<string, never>> {
    const { algorithm, authData } = this.parseVersionBody(body);
    if (body.version !== undefined && body.version !== null) {
      if (typeof body.version !== 'string') throw badJson("'version' must be a string");
      if (body.version !== version) throw invalidParam('The version in the body does not match the version in the path');
    }
    const n = parseVersion(version);
    if (n === undefined) throw unknownVersion();
    await this.deps.db.transaction(async (tx) => {
      const row = await store.getVersion(tx, userId, n, true);
      if (!row) throw unknownVersion();
      if (row.algorithm !== algorithm) throw invalidParam('Algorithm does not match');
      await store.updateAuthData(tx, userId, n, authData);
    });
    return {};
  }

  /** DELETE /room_keys/version/{version}: the backup and all its keys; a deleted one again is fine. */
  async deleteVersion(userId: string, version: string): Promise<Record<string, never>> {
    const n = parseVersion(version);
    if (n === undefined) throw unknownVersion();
    const existed = await this.deps.db.transaction((tx) => store.deleteVersion(tx, userId, n));
    if (!existed) throw unknownVersion();
    return {};
  }

  /**
   * PUT /room_keys/keys[/{roomId}[/{sessionId}]]: stores keys in the current backup, keeping a stored
   * key the replacement rule prefers. `version` must be the current backup (else 403
   * M_WRONG_ROOM_KEYS_VERSION naming it).
   */
  async putKeys(userId: string, version: string, keys: BackedUpKey[]): Promise<RoomKeysUpdate> {
    return this.deps.db.transaction(async (tx) => {
      // Locks the current backup's row: uploads, deletions and deleting the backup take turns.
      const current = await store.currentVersion(tx, userId, true);
      if (!current) throw unknownVersion();
      if (parseVersion(version) !== current.version) {
        throw new MatrixError(403, 'M_WRONG_ROOM_KEYS_VERSION', 'Wrong backup version', { current_version: String(current.version) });
      }
      const stored = new Map((await store.getKeysOf(tx, userId, current.version, keys)).map((k) => [keyOf(k), k]));
      const writes = keys.filter((k) => {
        const old = stored.get(keyOf(k));
        return old === undefined || shouldReplace(old, k);
      });
      if (writes.length === 0) return { etag: String(current.etag), count: current.count };
      await store.putKeys(tx, userId, current.version, writes);
      const added = writes.filter((k) => !stored.has(keyOf(k))).length;
      const after = await store.recordChange(tx, userId, current.version, added);
      return { etag: String(after.etag), count: after.count };
    });
  }

  /** GET /room_keys/keys?version=: every key of the backup, by room. */
  async getAllKeys(userId: string, version: string): Promise<{ rooms: Record<string, { sessions: Record<string, KeyBackupData> }> }> {
    const keys = await this.readKeys(userId, version);
    const rooms: Record<string, { sessions: Record<string, KeyBackupData> }> = {};
    for (const k of keys) (rooms[k.roomId] ??= { sessions: {} }).sessions[k.sessionId] = toData(k);
    return { rooms };
  }

  /** GET /room_keys/keys/{roomId}?version=: `{sessions: {}}` when the room has none. */
  async getRoomKeys(userId: string, version: string, roomId: string): Promise<{ sessions: Record<string, KeyBackupData> }> {
    const sessions: Record<string, KeyBackupData> = {};
    for (const k of await this.readKeys(userId, version, roomId)) sessions[k.sessionId] = toData(k);
    return { sessions };
  }

  /** GET /room_keys/keys/{roomId}/{sessionId}?version=. */
  async getSessionKey(userId: string, version: string, roomId: string, sessionId: string): Promise<KeyBackupData> {
    const [key] = await this.readKeys(userId, version, roomId, sessionId);
    if (!key) throw notFound('Key not found');
    return toData(key);
  }

  /** DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version=: any existing backup, not only the current one. */
  async deleteKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<RoomKeysUpdate> {
    if (roomId !== undefined) checkRoomId(roomId);
    if (sessionId !== undefined) checkSessionId(sessionId);
    const n = parseVersion(version);
    if (n === undefined) throw unknownVersion();
    return this.deps.db.transaction(async (tx) => {
      const row = await store.getVersion(tx, userId, n, true);
      if (!row) throw unknownVersion();
      const removed = await store.deleteKeys(tx, userId, n, roomId, sessionId);
      if (removed === 0) return { etag: String(row.etag), count: row.count };
      const after = await store.recordChange(tx, userId, n, -removed);
      return { etag: String(after.etag), count: after.count };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Request bodies
  // -------------------------------------------------------------------------------------------

  /** The body of PUT /room_keys/keys: `{rooms: {roomId: {sessions: {sessionId: KeyBackupData}}}}`. */
  parseAllKeys(body: JsonObject): BackedUpKey[] {
    if (body.rooms === undefined || body.rooms === null) throw missingParam('rooms');
    if (!isObject(body.rooms)) throw badJson("'rooms' must be an object");
    const keys: BackedUpKey[] = [];
    for (const [roomId, room] of Object.entries(body.rooms)) {
      if (!isObject(room)) throw badJson(`rooms.${roomId}: must be an object`);
      this.collectRoom(checkRoomId(roomId), room, `rooms.${roomId}`, keys);
    }
    return keys;
  }

  /** The body of PUT /room_keys/keys/{roomId}: `{sessions: {sessionId: KeyBackupData}}`. */
  parseRoomKeys(roomId: string, body: JsonObject): BackedUpKey[] {
    const keys: BackedUpKey[] = [];
    this.collectRoom(checkRoomId(roomId), body, '', keys);
    return keys;
  }

  /** The body of PUT /room_keys/keys/{roomId}/{sessionId}: one KeyBackupData. */
  parseSessionKey(roomId: string, sessionId: string, body: JsonObject): BackedUpKey[] {
    return [this.parseKeyData(checkRoomId(roomId), checkSessionId(sessionId), body, '')];
  }

  private collectRoom(roomId: string, room: JsonObject, at: string, into: BackedUpKey[]): void {
    const where = at ? `${at}.sessions` : 'sessions';
    if (room.sessions === undefined || room.sessions === null) {
      if (at) throw badJson(`${where}: missing`);
      throw missingParam('sessions');
    }
    if (!isObject(room.sessions)) throw badJson(`'${where}' must be an object`);
    for (const [sessionId, data] of Object.entries(room.sessions)) {
      if (into.length >= this.deps.limits.maxKeysPerRequest) throw tooLarge(`At most ${this.deps.limits.maxKeysPerRequest} keys per request`);
      if (!isObject(data)) throw badJson(`${where}.${sessionId}: must be an object`);
      into.push(this.parseKeyData(roomId, checkSessionId(sessionId), data, `${where}.${sessionId}.`));
    }
  }

  private parseKeyData(roomId: string, sessionId: string, data: JsonObject, at: string): BackedUpKey {
    const count = (name: string): number => {
      const v = data[name];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw badJson(`'${at}${name}' must be a non-negative integer`);
      return v;
    };
    const firstMessageIndex = count('first_message_index');
    const forwardedCount = count('forwarded_count');
    if (typeof data.is_verified !== 'boolean') throw badJson(`'${at}is_verified' must be a boolean`);
    if (!isObject(data.session_data)) throw badJson(`'${at}session_data' must be an object`);
    const sessionData = JSON.stringify(data.session_data);
    if (Buffer.byteLength(sessionData) > this.deps.limits.maxSessionDataBytes) {
      throw tooLarge(`'${at}session_data' exceeds ${this.deps.limits.maxSessionDataBytes} bytes`);
    }
    return { roomId, sessionId, firstMessageIndex, forwardedCount, isVerified: data.is_verified, sessionData };
  }

  /** `algorithm` and `auth_data` of a version's create or update body. */
  private parseVersionBody(body: JsonObject): { algorithm: string; authData: JsonObject } {
    if (body.algorithm === undefined || body.algorithm === null) throw missingParam('algorithm');
    if (typeof body.algorithm !== 'string') throw badJson("'algorithm' must be a string");
    if (body.auth_data === undefined || body.auth_data === null) throw missingParam('auth_data');
    const authData = body.auth_data;
    if (!isObject(authData)) throw badJson("'auth_data' must be an object");
    if (body.algorithm === MEGOLM_BACKUP_ALGORITHM) {
      if (typeof authData.public_key !== 'string' || authData.public_key === '') throw badJson("'auth_data.public_key' must be a string");
      if (authData.signatures !== undefined && !isObject(authData.signatures)) throw badJson("'auth_data.signatures' must be an object");
    }
    if (Buffer.byteLength(JSON.stringify(authData)) > this.deps.limits.maxAuthDataBytes) {
      throw tooLarge(`'auth_data' exceeds ${this.deps.limits.maxAuthDataBytes} bytes`);
    }
    return { algorithm: body.algorithm, authData };
  }

  private async readKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<BackedUpKey[]> {
    if (roomId !== undefined) checkRoomId(roomId);
    if (sessionId !== undefined) checkSessionId(sessionId);
    const n = parseVersion(version);
    if (n === undefined) throw unknownVersion();
    // One snapshot: the version check and the keys agree even if the backup is deleted meanwhile.
    return this.deps.db.transaction(async (tx) => {
      await tx.query('set transaction isolation level repeatable read, read only');
      if (!(await store.getVersion(tx, userId, n))) throw unknownVersion();
      return store.getKeys(tx, userId, n, roomId, sessionId);
    });
  }
}

const keyOf = (k: { roomId: string; sessionId: string }) => `${k.roomId}\u0000${k.sessionId}`;

function toData(k: BackedUpKey): KeyBackupData {
  return {
    first_message_index: k.firstMessageIndex,
    forwarded_count: k.forwardedCount,
    is_verified: k.isVerified,
    session_data: JSON.parse(k.sessionData) as JsonObject,
  };
}
