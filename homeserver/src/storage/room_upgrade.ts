import type { Sql } from './db.js';

/** Current state events of these types in a room, whatever their state key (e.g. m.space.child, bans). */
export async function currentStateOfTypes(sql: Sql, roomId: string, types: string[]): Promise<{ type: string; state_key: string; event_id: string; membership: string | null }[]> {
  if (types.length === 0) return [];
  return sql.query(
    'select type, state_key, event_id, membership from current_state where room_id = ? and type in (?) order by type, state_key',
    [roomId, types],
  );
}

/** Points every local alias of `from` at `to` (a room upgrade moves them); returns the aliases moved. */
export async function moveAliases(sql: Sql, from: string, to: string): Promise<string[]> {
  const rows = await sql.query<{ alias: string }>('update room_aliases set room_id = ? where room_id = ? returning alias', [to, from]);
  return rows.map((r) => r.alias);
}

/** The id of the newest event of a room's timeline (a new room's `predecessor.event_id`). */
export async function lastEventId(sql: Sql, roomId: string): Promise<string | undefined> {
  const rows = await sql.query<{ event_id: string }>(
    'select event_id from events where room_id = ? and stream_ordering is not null order by stream_ordering desc limit 1',
    [roomId],
  );
  return rows[0]?.event_id;
}

/** The ban events of a room's current state, oldest user id first, at most `limit`. */
export async function banEventIds(sql: Sql, roomId: string, limit: number): Promise<string[]> {
  const rows = await sql.query<{ event_id: string }>(
    `select event_id from current_state where room_id = ? and type = 'm.room.member' and membership = 'ban' order by state_key limit ?`,
    [roomId, limit],
  );
  return rows.map((r) => r.event_id);
}
