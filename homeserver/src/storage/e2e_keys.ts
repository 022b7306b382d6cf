import type { Sql } from './db.js';

/** Device keys, one-time and fallback keys, cross-signing keys and uploaded signatures (e2e_* tables). */

type Json = Record<string, unknown>;

export interface DeviceKeysRow {
  userId: string;
  deviceId: string;
  keys: Json;
  displayName: string | null;
}

export async function getDeviceKeys(sql: Sql, userId: string, deviceId: string): Promise<Json | undefined> {
  const rows = await sql.query<{ key_json: string }>('select key_json from e2e_device_keys where user_id = ? and device_id = ?', [userId, deviceId]);
  return rows[0] && (JSON.parse(rows[0].key_json) as Json);
}

export async function putDeviceKeys(sql: Sql, userId: string, deviceId: string, keys: Json): Promise<void> {
  await sql.query(
    `insert into e2e_device_keys (user_id, device_id, key_json) values (?, ?, ?)
     on conflict (user_id, device_id) do update set key_json = excluded.key_json`,
    [userId, deviceId, JSON.stringify(keys)],
  );
}

/** Device keys of these users' existing devices (all of a user's devices when their list is empty). */
export async function queryDeviceKeys(sql: Sql, wanted: Map<string, string[]>): Promise<DeviceKeysRow[]> {
  const out: DeviceKeysRow[] = [];
  const allOf = [...wanted].filter(([, d]) => d.length === 0).map(([u]) => u);
  type Raw = { user_id: string; device_id: string; key_json: string; display_name: string | null };
  const toRow = (r: Raw): DeviceKeysRow => ({ userId: r.user_id, deviceId: r.device_id, keys: JSON.parse(r.key_json) as Json, displayName: r.display_name });
  const base = `select k.user_id, k.device_id, k.key_json, d.display_name from e2e_device_keys k
    join devices d on d.user_id = k.user_id and d.device_id = k.device_id`;
  if (allOf.length > 0) out.push(...(await sql.query<Raw>(`${base} where k.user_id in (?) order by k.user_id, k.device_id`, [allOf])).map(toRow));
  for (const [userId, deviceIds] of wanted) {
    if (deviceIds.length === 0) continue;
    out.push(...(await sql.query<Raw>(`${base} where k.user_id = ? and k.device_id in (?) order by k.device_id`, [userId, deviceIds])).map(toRow));
  }
  return out;
}

/** Deletes every key of these devices (the devices are being deleted). */
export async function deleteDeviceKeys(sql: Sql, userId: string, deviceIds: string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  for (const table of ['e2e_device_keys', 'e2e_one_time_keys', 'e2e_fallback_keys']) {
    await sql.query(`delete from ${table} where user_id = ? and device_id in (?)`, [userId, deviceIds]);
  }
  await sql.query('delete from e2e_signatures where target_user_id = ? and target_key_id in (?)', [userId, deviceIds]);
}

// ---------------------------------------------------------------------------------------------
// One-time and fallback keys
// ---------------------------------------------------------------------------------------------

export interface KeyUpload {
  algorithm: string;
  keyId: string;
  /** Canonical JSON of the key (a string, or a signed key object). */
  json: string;
}

/**
 * Stores one-time keys; a key id already held keeps its key. Returns the ids held with a
 * different key (the caller refuses the upload, inside the same transaction).
 */
export async function addOneTimeKeys(sql: Sql, userId: string, deviceId: string, keys: KeyUpload[]): Promise<string[]> {
  const conflicts: string[] = [];
  for (const k of keys) {
    const rows = await sql.query<{ key_json: string }>(
      `insert into e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json) values (?, ?, ?, ?, ?)
       on conflict (user_id, device_id, algorithm, key_id) do update set key_id = e2e_one_time_keys.key_id
       returning key_json`,
      [userId, deviceId, k.algorithm, k.keyId, k.json],
    );
    if (rows[0]!.key_json !== k.json) conflicts.push(`${k.algorithm}:${k.keyId}`);
  }
  return conflicts;
}

export async function oneTimeKeyCounts(sql: Sql, userId: string, deviceId: string): Promise<Record<string, number>> {
  const rows = await sql.query<{ algorithm: string; n: string }>(
    'select algorithm, count(*) as n from e2e_one_time_keys where user_id = ? and device_id = ? group by algorithm',
    [userId, deviceId],
  );
  return Object.fromEntries(rows.map((r) => [r.algorithm, Number(r.n)]));
}

/**
 * Removes and returns the device's oldest one-time key of the algorithm. `skip locked` lets
 * concurrent claims each take a different key instead of waiting for (and then missing) the same row.
 */
export async function claimOneTimeKey(sql: Sql, userId: string, deviceId: string, algorithm: string): Promise<{ keyId: string; json: string } | undefined> {
  const rows = await sql.query<{ key_id: string; key_json: string }>(
    `delete from e2e_one_time_keys where id = (
       select id from e2e_one_time_keys where user_id = ? and device_id = ? and algorithm = ?
       order by id limit 1 for update skip locked)
     returning key_id, key_json`,
    [userId, deviceId, algorithm],
  );
  return rows[0] && { keyId: rows[0].key_id, json: rows[0].key_json };
}

/** Replaces the device's fallback key of the algorithm; the same key again keeps its `used` flag. */
export async function putFallbackKey(sql: Sql, userId: string, deviceId: string, k: KeyUpload): Promise<void> {
  await sql.query(
    `insert into e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) values (?, ?, ?, ?, ?, false)
     on conflict (user_id, device_id, algorithm) do update set key_id = excluded.key_id, key_json = excluded.key_json,
       used = e2e_fallback_keys.used and e2e_fallback_keys.key_id = excluded.key_id and e2e_fallback_keys.key_json = excluded.key_json`,
    [userId, deviceId, k.algorithm, k.keyId, k.json],
  );
}

/** Hands out the fallback key (it stays, marked used). */
export async function claimFallbackKey(sql: Sql, userId: string, deviceId: string, algorithm: string): Promise<{ keyId: string; json: string } | undefined> {
  const rows = await sql.query<{ key_id: string; key_json: string }>(
    'update e2e_fallback_keys set used = true where user_id = ? and device_id = ? and algorithm = ? returning key_id, key_json',
    [userId, deviceId, algorithm],
  );
  return rows[0] && { keyId: rows[0].key_id, json: rows[0].key_json };
}

/** Algorithms of the device's fallback keys not yet handed out. */
export async function unusedFallbackKeyTypes(sql: Sql, userId: string, deviceId: string): Promise<string[]> {
  const rows = await sql.query<{ algorithm: string }>(
    'select algorithm from e2e_fallback_keys where user_id = ? and device_id = ? and not used order by algorithm',
    [userId, deviceId],
  );
  return rows.map((r) => r.algorithm);
}

// ---------------------------------------------------------------------------------------------
// Cross-signing keys and signatures
// ---------------------------------------------------------------------------------------------

export type CrossSigningType = 'master' | 'self_signing' | 'user_signing';

export interface CrossSigningKey {
  publicKey: string;
  key: Json;
}

export async function getCrossSigningKeys(sql: Sql, userIds: string[]): Promise<Map<string, Partial<Record<CrossSigningType, CrossSigningKey>>>> {
  const out = new Map<string, Partial<Record<CrossSigningType, CrossSigningKey>>>();
  if (userIds.length === 0) return out;
  const rows = await sql.query<{ user_id: string; key_type: CrossSigningType; public_key: string; key_json: string }>(
    'select user_id, key_type, public_key, key_json from e2e_cross_signing_keys where user_id in (?)',
    [userIds],
  );
  for (const r of rows) {
    let keys = out.get(r.user_id);
    if (!keys) out.set(r.user_id, (keys = {}));
    keys[r.key_type] = { publicKey: r.public_key, key: JSON.parse(r.key_json) as Json };
  }
  return out;
}

export async function putCrossSigningKey(sql: Sql, userId: string, type: CrossSigningType, publicKey: string, key: Json): Promise<void> {
  await sql.query(
    `insert into e2e_cross_signing_keys (user_id, key_type, public_key, key_json) values (?, ?, ?, ?)
     on conflict (user_id, key_type) do update set public_key = excluded.public_key, key_json = excluded.key_json`,
    [userId, type, publicKey, JSON.stringify(key)],
  );
}

export interface SignatureRow {
  signerUserId: string;
  signerKeyId: string;
  targetUserId: string;
  targetKeyId: string;
  signature: string;
}

export async function putSignature(sql: Sql, s: SignatureRow): Promise<void> {
  await sql.query(
    `insert into e2e_signatures (signer_user_id, signer_key_id, target_user_id, target_key_id, signature) values (?, ?, ?, ?, ?)
     on conflict (target_user_id, target_key_id, signer_user_id, signer_key_id) do update set signature = excluded.signature`,
    [s.signerUserId, s.signerKeyId, s.targetUserId, s.targetKeyId, s.signature],
  );
}

/** Signatures of these users' keys made by the owner themselves or by `viewer` (what `viewer` may see). */
export async function signaturesFor(sql: Sql, targetUserIds: string[], viewer: string): Promise<SignatureRow[]> {
  if (targetUserIds.length === 0) return [];
  const rows = await sql.query<{ signer_user_id: string; signer_key_id: string; target_user_id: string; target_key_id: string; signature: string }>(
    `select signer_user_id, signer_key_id, target_user_id, target_key_id, signature from e2e_signatures
     where target_user_id in (?) and (signer_user_id = target_user_id or signer_user_id = ?)`,
    [targetUserIds, viewer],
  );
  return rows.map((r) => ({ signerUserId: r.signer_user_id, signerKeyId: r.signer_key_id, targetUserId: r.target_user_id, targetKeyId: r.target_key_id, signature: r.signature }));
}
