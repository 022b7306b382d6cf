import type { Sql } from './db.js';

/** Server-side room key backups: key_backup_versions and key_backup_keys. Versions are numbers here. */

export interface BackupVersionRow {
  version: number;
  algorithm: string;
  authData: Record<string, unknown>;
  etag: number;
  count: number;
}

export interface BackedUpKey {
  roomId: string;
  sessionId: string;
  firstMessageIndex: number;
  forwardedCount: number;
  isVerified: boolean;
  /** The client's encrypted session data, as JSON text. */
  sessionData: string;
}

type RawVersion = { version: string; algorithm: string; auth_data: string; etag: string; key_count: string };
const toVersion = (r: RawVersion): BackupVersionRow => ({
  version: Number(r.version),
  algorithm: r.algorithm,
  authData: JSON.parse(r.auth_data) as Record<string, unknown>,
  etag: Number(r.etag),
  count: Number(r.key_count),
});

type RawKey = {
  room_id: string;
  session_id: string;
  first_message_index: string;
  forwarded_count: string;
  is_verified: boolean;
  session_data: string;
};
const toKey = (r: RawKey): BackedUpKey => ({
  roomId: r.room_id,
  sessionId: r.session_id,
  firstMessageIndex: Number(r.first_message_index),
  forwardedCount: Number(r.forwarded_count),
  isVerified: r.is_verified,
  sessionData: r.session_data,
});

const VERSION_COLUMNS = 'version, algorithm, auth_data, etag, key_count';
const KEY_COLUMNS = 'room_id, session_id, first_message_index, forwarded_count, is_verified, session_data';

/** Serializes version creation per user (two-key advisory lock: a class number and the user's hash). */
export async function lockUserVersions(sql: Sql, userId: string): Promise<void> {
  await sql.query('select pg_advisory_xact_lock(?, hashtext(?))', [0x6b6276, userId]);
}

/** The next version number of the user: one above every version ever created, deleted ones included. */
export async function nextVersion(sql: Sql, userId: string): Promise<number> {
  const rows = await sql.query<{ v: string }>('select coalesce(max(version), 0) + 1 as v from key_backup_versions where user_id = ?', [userId]);
  return Number(rows[0]!.v);
}

export async function insertVersion(sql: Sql, userId: string, version: number, algorithm: string, authData: Record<string, unknown>): Promise<void> {
  await sql.query('insert into key_backup_versions (user_id, version, algorithm, auth_data) values (?, ?, ?, ?)', [
    userId,
    version,
    algorithm,
    JSON.stringify(authData),
  ]);
}

/** The user's newest backup that is not deleted. `forUpdate` locks its row until the transaction ends. */
export async function currentVersion(sql: Sql, userId: string, forUpdate = false): Promise<BackupVersionRow | undefined> {
  const rows = await sql.query<RawVersion>(
    `select ${VERSION_COLUMNS} from key_backup_versions where user_id = ? and not deleted order by version desc limit 1${forUpdate ? ' for update' : ''}`,
    [userId],
  );
  return rows[0] && toVersion(rows[0]);
}

/** One backup of the user that is not deleted. `forUpdate` locks its row until the transaction ends. */
export async function getVersion(sql: Sql, userId: string, version: number, forUpdate = false): Promise<BackupVersionRow | undefined> {
  const rows = await sql.query<RawVersion>(
    `select ${VERSION_COLUMNS} from key_backup_versions where user_id = ? and version = ? and not deleted${forUpdate ? ' for update' : ''}`,
    [userId, version],
  );
  return rows[0] && toVersion(rows[0]);
}

export async function updateAuthData(sql: Sql, userId: string, version: number, authData: Record<string, unknown>): Promise<void> {
  await sql.query('update key_backup_versions set auth_data = ? where user_id = ? and version = ?', [JSON.stringify(authData), userId, version]);
}

/**
 * Marks a backup deleted (taking its row lock, so it waits for uploads in flight) and then deletes
 * its keys. Returns whether the version was ever created (deleted before or now).
 */
export async function deleteVersion(sql: Sql, userId: string, version: number): Promise<boolean> {
  const rows = await sql.query<{ deleted: boolean }>(
    `update key_backup_versions set deleted = true, etag = etag + 1, key_count = 0
     where user_id = ? and version = ? returning deleted`,
    [userId, version],
  );
  if (rows.length === 0) return false;
  await sql.query('delete from key_backup_keys where user_id = ? and version = ?', [userId, version]);
  return true;
}

/** Adds `added` to the key count and bumps the etag (call with the version row locked). */
export async function recordChange(sql: Sql, userId: string, version: number, added: number): Promise<{ etag: number; count: number }> {
  const rows = await sql.query<{ etag: string; key_count: string }>(
    'update key_backup_versions set etag = etag + 1, key_count = key_count + ? where user_id = ? and version = ? returning etag, key_count',
    [added, userId, version],
  );
  return { etag: Number(rows[0]!.etag), count: Number(rows[0]!.key_count) };
}

/** The stored keys of these (room, session) pairs. */
export async function getKeysOf(sql: Sql, userId: string, version: number, ids: { roomId: string; sessionId: string }[]): Promise<BackedUpKey[]> {
  if (ids.length === 0) return [];
  const rows = await sql.query<RawKey>(
    `select ${KEY_COLUMNS} from key_backup_keys
     where user_id = ? and version = ? and (room_id, session_id) in (select * from unnest(array[?]::text[], array[?]::text[]))`,
    [userId, version, ids.map((k) => k.roomId), ids.map((k) => k.sessionId)],
  );
  return rows.map(toKey);
}

/** Inserts or overwrites these keys (the caller applied the replacement rule under the version lock). */
export async function putKeys(sql: Sql, userId: string, version: number, keys: BackedUpKey[]): Promise<void> {
  if (keys.length === 0) return;
  await sql.query(
    `insert into key_backup_keys (user_id, version, ${KEY_COLUMNS})
     select ?, ?, * from unnest(array[?]::text[], array[?]::text[], array[?]::bigint[], array[?]::bigint[], array[?]::boolean[], array[?]::text[])
     on conflict (user_id, version, room_id, session_id) do update set
       first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count,
       is_verified = excluded.is_verified, session_data = excluded.session_data`,
    [
      userId,
      version,
      keys.map((k) => k.roomId),
      keys.map((k) => k.sessionId),
      keys.map((k) => k.firstMessageIndex),
      keys.map((k) => k.forwardedCount),
      keys.map((k) => k.isVerified),
      keys.map((k) => k.sessionData),
    ],
  );
}

/** Keys of one backup: all of them, one room's, or one session's; ordered by room and session. */
export async function getKeys(sql: Sql, userId: string, version: number, roomId?: string, sessionId?: string): Promise<BackedUpKey[]> {
  const { where, params } = keyFilter(userId, version, roomId, sessionId);
  const rows = await sql.query<RawKey>(`select ${KEY_COLUMNS} from key_backup_keys where ${where} order by room_id, session_id`, params);
  return rows.map(toKey);
}

/** Deletes keys of one backup (all, one room's or one session's); returns how many went. */
export async function deleteKeys(sql: Sql, userId: string, version: number, roomId?: string, sessionId?: string): Promise<number> {
  const { where, params } = keyFilter(userId, version, roomId, sessionId);
  const rows = await sql.query<{ room_id: string }>(`delete from key_backup_keys where ${where} returning room_id`, params);
  return rows.length;
}

function keyFilter(userId: string, version: number, roomId?: string, sessionId?: string): { where: string; params: unknown[] } {
  let where = 'user_id = ? and version = ?';
  const params: unknown[] = [userId, version];
  if (roomId !== undefined) {
    where += ' and room_id = ?';
    params.push(roomId);
    if (sessionId !== undefined) {
      where += ' and session_id = ?';
      params.push(sessionId);
    }
  }
  return { where, params };
}
