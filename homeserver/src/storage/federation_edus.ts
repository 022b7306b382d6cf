import type { Sql } from './db.js';

/**
 * Reads of the local streams that become outgoing EDUs (typing, receipts, presence, device lists),
 * the device-list snapshots we last told other servers, remote device lists, and to-device
 * message ids received over federation.
 */

export async function maxTypingStream(sql: Sql): Promise<number> {
  return max(sql, 'select max(stream_id) as pos from typing');
}
export async function maxReceiptStream(sql: Sql): Promise<number> {
  return max(sql, 'select max(stream_id) as pos from receipts');
}
export async function maxPresenceStream(sql: Sql): Promise<number> {
  return max(sql, 'select max(stream_id) as pos from presence');
}
export async function maxDeviceListStream(sql: Sql): Promise<number> {
  return max(sql, 'select max(stream_id) as pos from device_list_changes');
}

async function max(sql: Sql, q: string): Promise<number> {
  const rows = await sql.query<{ pos: string | null }>(q);
  return Number(rows[0]?.pos ?? 0);
}

export async function typingAfter(sql: Sql, after: number, limit: number): Promise<{ roomId: string; userId: string; typing: boolean; streamId: number }[]> {
  const rows = await sql.query<{ room_id: string; user_id: string; typing: boolean; stream_id: string }>(
    'select room_id, user_id, typing, stream_id from typing where stream_id > ? order by stream_id limit ?',
    [after, limit],
  );
  return rows.map((r) => ({ roomId: r.room_id, userId: r.user_id, typing: r.typing, streamId: Number(r.stream_id) }));
}

/** Public read receipts only (`m.read`): `m.read.private` never leaves the server. */
export async function readReceiptsAfter(
  sql: Sql,
  after: number,
  limit: number,
): Promise<{ roomId: string; userId: string; threadId: string; eventId: string; data: Record<string, unknown>; streamId: number }[]> {
  const rows = await sql.query<{ room_id: string; user_id: string; thread_id: string; event_id: string; data: string; stream_id: string }>(
    `select room_id, user_id, thread_id, event_id, data, stream_id from receipts where stream_id > ? and receipt_type = 'm.read' order by stream_id limit ?`,
    [after, limit],
  );
  return rows.map((r) => ({ roomId: r.room_id, userId: r.user_id, threadId: r.thread_id, eventId: r.event_id, data: JSON.parse(r.data) as Record<string, unknown>, streamId: Number(r.stream_id) }));
}

export interface PresenceChange {
  userId: string;
  state: string;
  statusMsg: string | null;
  lastActiveTs: number;
  currentlyActive: boolean;
  streamId: number;
}

export async function presenceAfter(sql: Sql, after: number, limit: number): Promise<PresenceChange[]> {
  const rows = await sql.query<{ user_id: string; state: string; status_msg: string | null; last_active_ts: string; currently_active: boolean; stream_id: string }>(
    'select user_id, state, status_msg, last_active_ts, currently_active, stream_id from presence where stream_id > ? order by stream_id limit ?',
    [after, limit],
  );
  return rows.map((r) => ({ userId: r.user_id, state: r.state, statusMsg: r.status_msg, lastActiveTs: Number(r.last_active_ts), currentlyActive: r.currently_active, streamId: Number(r.stream_id) }));
}

/** Changes of users' own devices or keys (not membership copies, not private signatures). */
export async function deviceChangesAfter(sql: Sql, after: number, limit: number): Promise<{ userId: string; streamId: number }[]> {
  const rows = await sql.query<{ user_id: string; stream_id: string }>(
    'select user_id, stream_id from device_list_changes where stream_id > ? and room_id is null and visible_to is null order by stream_id limit ?',
    [after, limit],
  );
  return rows.map((r) => ({ userId: r.user_id, streamId: Number(r.stream_id) }));
}

// --- What we told other servers about our users' devices ---

export async function deviceSnapshot(sql: Sql, userId: string): Promise<Map<string, string>> {
  const rows = await sql.query<{ device_id: string; hash: string }>('select device_id, hash from federation_device_snapshots where user_id = ?', [userId]);
  return new Map(rows.map((r) => [r.device_id, r.hash]));
}

export async function putDeviceSnapshot(sql: Sql, userId: string, deviceId: string, hash: string | null): Promise<void> {
  if (hash === null) await sql.query('delete from federation_device_snapshots where user_id = ? and device_id = ?', [userId, deviceId]);
  else {
    await sql.query(
      'insert into federation_device_snapshots (user_id, device_id, hash) values (?, ?, ?) on conflict (user_id, device_id) do update set hash = excluded.hash',
      [userId, deviceId, hash],
    );
  }
}

/** The user's current `m.device_list_update` stream id (0: none sent yet). */
export async function deviceStreamId(sql: Sql, userId: string): Promise<number> {
  const rows = await sql.query<{ stream_id: string }>('select stream_id from federation_device_streams where user_id = ?', [userId]);
  return rows[0] ? Number(rows[0].stream_id) : 0;
}

export async function setDeviceStreamId(sql: Sql, userId: string, streamId: number): Promise<void> {
  await sql.query(
    'insert into federation_device_streams (user_id, stream_id) values (?, ?) on conflict (user_id) do update set stream_id = excluded.stream_id',
    [userId, streamId],
  );
}

// --- Remote device lists ---

export interface RemoteDeviceList {
  userId: string;
  streamId: number;
  stale: boolean;
  /** device id → device keys (with `unsigned.device_display_name` when known). */
  devices: Record<string, Record<string, unknown>>;
  masterKey: Record<string, unknown> | null;
  selfSigningKey: Record<string, unknown> | null;
}

type RawRemote = { user_id: string; stream_id: string; stale: boolean; devices: string; master_key: string | null; self_signing_key: string | null };

export async function remoteDeviceLists(sql: Sql, userIds: string[], forUpdate = false): Promise<Map<string, RemoteDeviceList>> {
  const out = new Map<string, RemoteDeviceList>();
  if (userIds.length === 0) return out;
  const rows = await sql.query<RawRemote>(`select * from remote_device_lists where user_id in (?)${forUpdate ? ' for update' : ''}`, [userIds]);
  for (const r of rows) {
    out.set(r.user_id, {
      userId: r.user_id,
      streamId: Number(r.stream_id),
      stale: r.stale,
      devices: JSON.parse(r.devices) as RemoteDeviceList['devices'],
      masterKey: r.master_key === null ? null : (JSON.parse(r.master_key) as Record<string, unknown>),
      selfSigningKey: r.self_signing_key === null ? null : (JSON.parse(r.self_signing_key) as Record<string, unknown>),
    });
  }
  return out;
}

export async function putRemoteDeviceList(sql: Sql, l: RemoteDeviceList, now: number): Promise<void> {
  await sql.query(
    `insert into remote_device_lists (user_id, stream_id, stale, devices, master_key, self_signing_key, updated_ts) values (?, ?, ?, ?, ?, ?, ?)
     on conflict (user_id) do update set stream_id = excluded.stream_id, stale = excluded.stale, devices = excluded.devices,
       master_key = excluded.master_key, self_signing_key = excluded.self_signing_key, updated_ts = excluded.updated_ts`,
    [l.userId, l.streamId, l.stale, JSON.stringify(l.devices), l.masterKey && JSON.stringify(l.masterKey), l.selfSigningKey && JSON.stringify(l.selfSigningKey), now],
  );
}

export async function markRemoteDeviceListStale(sql: Sql, userId: string): Promise<void> {
  await sql.query('update remote_device_lists set stale = true where user_id = ?', [userId]);
}

/** Whether any local user shares a joined room with `userId` (only then do we keep their list). */
export async function sharesRoomWithLocal(sql: Sql, userId: string, serverName: string): Promise<boolean> {
  const rows = await sql.query(
    `select 1 from current_state theirs join current_state ours on ours.room_id = theirs.room_id and ours.type = 'm.room.member' and ours.membership = 'join'
     where theirs.type = 'm.room.member' and theirs.state_key = ? and theirs.membership = 'join' and ours.state_key like ? limit 1`,
    [userId, `%:${serverName.replace(/[\\%_]/g, (c) => `\\${c}`)}`],
  );
  return rows.length > 0;
}

// --- To-device messages received over federation ---

/** Records the message id; false when that origin's message was delivered before (a retried transaction). */
export async function claimReceivedToDevice(sql: Sql, origin: string, messageId: string, now: number): Promise<boolean> {
  const rows = await sql.query('insert into federation_received_to_device (origin, message_id, received_ts) values (?, ?, ?) on conflict do nothing returning origin', [origin, messageId, now]);
  return rows.length === 1;
}

export async function pruneReceivedToDevice(sql: Sql, before: number): Promise<void> {
  await sql.query('delete from federation_received_to_device where received_ts < ?', [before]);
}
