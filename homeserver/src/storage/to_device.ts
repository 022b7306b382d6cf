import type { Sql } from './db.js';

/** Send-to-device messages waiting for their device (to_device_inbox) and applied transaction ids. */

export interface ToDeviceMessage {
  userId: string;
  deviceId: string;
  sender: string;
  type: string;
  /** Serialized content. */
  content: string;
}

export interface InboxRow {
  streamId: number;
  sender: string;
  type: string;
  content: string;
}

/** Records the transaction id; false when it was applied before (the request is a retry). */
export async function claimTxn(sql: Sql, userId: string, deviceId: string, txnId: string, now: number): Promise<boolean> {
  const rows = await sql.query(
    `insert into to_device_txns (user_id, device_id, txn_id, created_ts) values (?, ?, ?, ?)
     on conflict do nothing returning txn_id`,
    [userId, deviceId, txnId, now],
  );
  return rows.length === 1;
}

/** Forgets transaction ids older than `before` (a retry that late is a new request). */
export async function pruneTxns(sql: Sql, before: number): Promise<void> {
  await sql.query('delete from to_device_txns where created_ts < ?', [before]);
}

/** Existing devices among these (user, device) pairs: a message to any other device is dropped. */
export async function existingDevices(sql: Sql, userIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (userIds.length === 0) return out;
  const rows = await sql.query<{ user_id: string; device_id: string }>('select user_id, device_id from devices where user_id in (?) order by device_id', [userIds]);
  for (const r of rows) {
    let list = out.get(r.user_id);
    if (!list) out.set(r.user_id, (list = []));
    list.push(r.device_id);
  }
  return out;
}

/** Rows per multi-row insert (bounded to keep the statement's parameter count small). */
const INSERT_CHUNK = 500;

/**
 * Appends the messages in order, each at the next to-device stream position (call under the
 * to-device lock), and raises each target device's newest position. Returns the last position.
 */
export async function insertMessages(sql: Sql, messages: ToDeviceMessage[]): Promise<number> {
  if (messages.length === 0) return 0;
  const ids = (await sql.query<{ id: string }>("select nextval('to_device_stream') as id from generate_series(1, ?)", [messages.length]))
    .map((r) => Number(r.id))
    .sort((a, b) => a - b);
  const newest = new Map<string, { userId: string; deviceId: string; id: number }>();
  for (let i = 0; i < messages.length; i += INSERT_CHUNK) {
    const chunk = messages.slice(i, i + INSERT_CHUNK);
    const params: unknown[] = [];
    chunk.forEach((m, j) => {
      const id = ids[i + j]!;
      params.push(m.userId, m.deviceId, id, m.sender, m.type, m.content);
      newest.set(JSON.stringify([m.userId, m.deviceId]), { userId: m.userId, deviceId: m.deviceId, id });
    });
    await sql.query(`insert into to_device_inbox (user_id, device_id, stream_id, sender, type, content) values ${chunk.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`, params);
  }
  const devices = [...newest.values()];
  for (let i = 0; i < devices.length; i += INSERT_CHUNK) {
    const chunk = devices.slice(i, i + INSERT_CHUNK);
    await sql.query(
      `insert into to_device_positions (user_id, device_id, stream_id) values ${chunk.map(() => '(?, ?, ?)').join(', ')}
       on conflict (user_id, device_id) do update set stream_id = excluded.stream_id`,
      chunk.flatMap((d) => [d.userId, d.deviceId, d.id]),
    );
  }
  return ids[ids.length - 1]!;
}

/** The device's newest to-device position (0 when it never had a message). */
export async function position(sql: Sql, userId: string, deviceId: string): Promise<number> {
  const rows = await sql.query<{ stream_id: string }>('select stream_id from to_device_positions where user_id = ? and device_id = ?', [userId, deviceId]);
  return rows[0] ? Number(rows[0].stream_id) : 0;
}

/** The device's messages with positions in (after, upTo], oldest first, at most `limit`. */
export async function pending(sql: Sql, userId: string, deviceId: string, after: number, upTo: number, limit: number): Promise<InboxRow[]> {
  const rows = await sql.query<{ stream_id: string; sender: string; type: string; content: string }>(
    `select stream_id, sender, type, content from to_device_inbox
     where user_id = ? and device_id = ? and stream_id > ? and stream_id <= ? order by stream_id limit ?`,
    [userId, deviceId, after, upTo, limit],
  );
  return rows.map((r) => ({ streamId: Number(r.stream_id), sender: r.sender, type: r.type, content: r.content }));
}

/** Deletes the device's messages at or below `upTo` (delivered and acknowledged). */
export async function deleteDelivered(sql: Sql, userId: string, deviceId: string, upTo: number): Promise<void> {
  await sql.query('delete from to_device_inbox where user_id = ? and device_id = ? and stream_id <= ?', [userId, deviceId, upTo]);
}

/**
 * Forgets what waits for these devices (they are being deleted). Their positions stay: a device id
 * logged in again must not see its stream position go back.
 */
export async function deleteDevices(sql: Sql, userId: string, deviceIds: string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  await sql.query('delete from to_device_inbox where user_id = ? and device_id in (?)', [userId, deviceIds]);
  await sql.query('delete from to_device_txns where user_id = ? and device_id in (?)', [userId, deviceIds]);
}
