import type { Sql } from './db.js';

export async function getAlias(sql: Sql, alias: string): Promise<{ room_id: string; creator: string } | undefined> {
  const rows = await sql.query<{ room_id: string; creator: string }>('select room_id, creator from room_aliases where alias = ?', [alias]);
  return rows[0];
}

export async function insertAlias(sql: Sql, alias: string, roomId: string, creator: string): Promise<boolean> {
  const rows = await sql.query(
    'insert into room_aliases (alias, room_id, creator, created_ts) values (?, ?, ?, ?) on conflict do nothing returning alias',
    [alias, roomId, creator, Date.now()],
  );
  return rows.length === 1;
}

export async function deleteAlias(sql: Sql, alias: string): Promise<boolean> {
  const rows = await sql.query('delete from room_aliases where alias = ? returning alias', [alias]);
  return rows.length === 1;
}

export async function aliasesOfRoom(sql: Sql, roomId: string): Promise<string[]> {
  const rows = await sql.query<{ alias: string }>('select alias from room_aliases where room_id = ? order by alias', [roomId]);
  return rows.map((r) => r.alias);
}

export type DirectoryVisibility = 'public' | 'private';

export interface RoomRow {
  room_id: string;
  room_version: string;
  creator: string;
  visibility: DirectoryVisibility;
}

export async function getRoom(sql: Sql, roomId: string): Promise<RoomRow | undefined> {
  const rows = await sql.query<RoomRow>('select room_id, room_version, creator, visibility from rooms where room_id = ?', [roomId]);
  return rows[0];
}

export async function setVisibility(sql: Sql, roomId: string, visibility: DirectoryVisibility): Promise<void> {
  await sql.query('update rooms set visibility = ? where room_id = ?', [visibility, roomId]);
}

/** The state a published room's directory entry is made of (all with an empty state key). */
export const DIRECTORY_STATE_TYPES = [
  'm.room.create',
  'm.room.name',
  'm.room.topic',
  'm.room.canonical_alias',
  'm.room.avatar',
  'm.room.join_rules',
  'm.room.history_visibility',
  'm.room.guest_access',
];

export interface PublishedRoomRow {
  roomId: string;
  roomVersion: string;
  joinedMembers: number;
  /** Event id of each of DIRECTORY_STATE_TYPES the room has, by type. */
  stateIds: Map<string, string>;
}

/** Every room published in the directory, with its joined member count and directory state, in one query. */
export async function publishedRooms(sql: Sql): Promise<PublishedRoomRow[]> {
  const rows = await sql.query<{ room_id: string; room_version: string; joined: string; type: string | null; event_id: string | null }>(
    `with pub as (select room_id, room_version from rooms where visibility = 'public'),
     joined as (
       select room_id, count(*) as n from current_state
       where room_id in (select room_id from pub) and type = 'm.room.member' and membership = 'join'
       group by room_id
     )
     select p.room_id, p.room_version, coalesce(j.n, 0) as joined, cs.type, cs.event_id
     from pub p
     left join joined j on j.room_id = p.room_id
     left join current_state cs on cs.room_id = p.room_id and cs.state_key = '' and cs.type in (?)`,
    [DIRECTORY_STATE_TYPES],
  );
  const byRoom = new Map<string, PublishedRoomRow>();
  for (const r of rows) {
    let room = byRoom.get(r.room_id);
    if (!room) {
      room = { roomId: r.room_id, roomVersion: r.room_version, joinedMembers: Number(r.joined), stateIds: new Map() };
      byRoom.set(r.room_id, room);
    }
    if (r.type !== null && r.event_id !== null) room.stateIds.set(r.type, r.event_id);
  }
  return [...byRoom.values()];
}
