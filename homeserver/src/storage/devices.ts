import type { Sql } from './db.js';

export interface DeviceRow {
  user_id: string;
  device_id: string;
  display_name: string | null;
  created_ts: string;
  last_seen_ts: string | null;
  last_seen_ip: string | null;
}

/** Creates the device, or keeps the existing one (and its name) when the client reuses a device id. */
export async function upsertDevice(sql: Sql, userId: string, deviceId: string, displayName: string | null): Promise<void> {
  await sql.query(
    `insert into devices (user_id, device_id, display_name, created_ts) values (?, ?, ?, ?)
     on conflict (user_id, device_id) do update set display_name = coalesce(excluded.display_name, devices.display_name)`,
    [userId, deviceId, displayName, Date.now()],
  );
}

export async function listDevices(sql: Sql, userId: string): Promise<DeviceRow[]> {
  return sql.query<DeviceRow>('select * from devices where user_id = ? order by device_id', [userId]);
}

export async function getDevice(sql: Sql, userId: string, deviceId: string): Promise<DeviceRow | undefined> {
  const rows = await sql.query<DeviceRow>('select * from devices where user_id = ? and device_id = ?', [
    userId,
    deviceId,
  ]);
  return rows[0];
}

export async function renameDevice(sql: Sql, userId: string, deviceId: string, name: string | null): Promise<boolean> {
  const rows = await sql.query(
    'update devices set display_name = ? where user_id = ? and device_id = ? returning device_id',
    [name, userId, deviceId],
  );
  return rows.length === 1;
}

export async function deleteDevices(sql: Sql, userId: string, deviceIds: string[] | 'all'): Promise<void> {
  if (deviceIds === 'all') {
    await sql.query('delete from devices where user_id = ?', [userId]);
  } else if (deviceIds.length > 0) {
    await sql.query('delete from devices where user_id = ? and device_id in (?)', [userId, deviceIds]);
  }
}

/** Records activity at most once a minute per device, so the hot path rarely writes. */
export async function touchDevice(sql: Sql, userId: string, deviceId: string, ip: string, now: number): Promise<void> {
  await sql.query(
    `update devices set last_seen_ts = ?, last_seen_ip = ?
     where user_id = ? and device_id = ? and (last_seen_ts is null or last_seen_ts < ? or last_seen_ip is distinct from ?)`,
    [now, ip, userId, deviceId, now - 60_000, ip],
  );
}
