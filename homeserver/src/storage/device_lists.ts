import type { Sql } from './db.js';

/** The device-lists stream (device_list_changes) and the room-sharing queries it is read with. */

export interface DeviceListChange {
  streamId: number;
  userId: string;
  /** Set for a copied membership change; null for a change of the user's devices or keys. */
  roomId: string | null;
  membership: string | null;
  visibleTo: string | null;
}

/** Appends changes of these users' devices/keys, each at the next position (call under the device-lists lock). */
export async function appendChanges(sql: Sql, changes: { userId: string; visibleTo?: string }[]): Promise<number> {
  let last = 0;
  for (const c of changes) {
    const rows = await sql.query<{ id: string }>(
      "insert into device_list_changes (stream_id, user_id, visible_to) values (nextval('device_list_stream'), ?, ?) returning stream_id as id",
      [c.userId, c.visibleTo ?? null],
    );
    last = Number(rows[0]!.id);
  }
  return last;
}

/** The newest committed device-lists position (positions commit in order under the lock). */
export async function maxStreamId(sql: Sql): Promise<number> {
  const rows = await sql.query<{ pos: string | null }>('select max(stream_id) as pos from device_list_changes');
  return rows[0]?.pos == null ? 0 : Number(rows[0].pos);
}

/** Whether membership changes exist that are not yet copied into the stream (one cheap check per sync). */
export async function membershipsBehind(sql: Sql): Promise<boolean> {
  const rows = await sql.query<{ behind: boolean }>(
    `select coalesce((select max(stream_ordering) from membership_changes), 0) > (select stream_ordering from device_list_membership_cursor where id = 1) as behind`,
  );
  return rows[0]?.behind === true;
}

/**
 * Copies membership changes committed since the cursor into the stream (joins, leaves and bans;
 * under the device-lists lock) in one statement, so the copied rows and the new cursor come from
 * one snapshot. Room events commit in stream order, so no earlier change can commit later.
 * Returns the newest position written (0 when nothing was copied).
 */
export async function copyMembershipChanges(sql: Sql): Promise<number> {
  const rows = await sql.query<{ upto: string | null; last: string | null }>(
    `with cursor as (select stream_ordering from device_list_membership_cursor where id = 1),
     src as (select m.stream_ordering, m.room_id, m.user_id, m.membership from membership_changes m, cursor c
             where m.stream_ordering > c.stream_ordering),
     ins as (insert into device_list_changes (stream_id, user_id, room_id, membership)
             select nextval('device_list_stream'), user_id, room_id, membership from
               (select * from src where membership in ('join', 'leave', 'ban') order by stream_ordering) s
             returning stream_id)
     select (select max(stream_ordering) from src) as upto, (select max(stream_id) from ins) as last`,
  );
  const upto = rows[0]?.upto;
  if (upto != null) await sql.query('update device_list_membership_cursor set stream_ordering = ? where id = 1', [upto]);
  return rows[0]?.last == null ? 0 : Number(rows[0].last);
}

/** Stream rows with positions in (after, upTo], oldest first. */
export async function changesBetween(sql: Sql, after: number, upTo: number): Promise<DeviceListChange[]> {
  if (after >= upTo) return [];
  const rows = await sql.query<{ stream_id: string; user_id: string; room_id: string | null; membership: string | null; visible_to: string | null }>(
    'select stream_id, user_id, room_id, membership, visible_to from device_list_changes where stream_id > ? and stream_id <= ? order by stream_id',
    [after, upTo],
  );
  return rows.map((r) => ({ streamId: Number(r.stream_id), userId: r.user_id, roomId: r.room_id, membership: r.membership, visibleTo: r.visible_to }));
}

/** Users joined to at least one room `userId` is joined to (the user included when joined anywhere). */
export async function usersSharingRooms(sql: Sql, userId: string): Promise<Set<string>> {
  const rows = await sql.query<{ user_id: string }>(
    `select distinct other.state_key as user_id from current_state mine
     join current_state other on other.room_id = mine.room_id and other.type = 'm.room.member' and other.membership = 'join'
     where mine.type = 'm.room.member' and mine.state_key = ? and mine.membership = 'join'`,
    [userId],
  );
  return new Set(rows.map((r) => r.user_id));
}

/** Joined members of these rooms. */
export async function joinedMembers(sql: Sql, roomIds: string[]): Promise<Set<string>> {
  if (roomIds.length === 0) return new Set();
  const rows = await sql.query<{ user_id: string }>(
    `select distinct state_key as user_id from current_state where room_id in (?) and type = 'm.room.member' and membership = 'join'`,
    [roomIds],
  );
  return new Set(rows.map((r) => r.user_id));
}

/** Rooms the user is joined to now. */
export async function joinedRooms(sql: Sql, userId: string): Promise<string[]> {
  const rows = await sql.query<{ room_id: string }>(
    `select room_id from current_state where type = 'm.room.member' and state_key = ? and membership = 'join'`,
    [userId],
  );
  return rows.map((r) => r.room_id);
}
