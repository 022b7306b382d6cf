import type { Sql } from './db.js';
import { DIRECTORY_STATE_TYPES } from './aliases.js';

/** The state a space hierarchy entry is made of: a directory entry's (state key ''), plus every m.space.child. */
const SUMMARY_TYPES = DIRECTORY_STATE_TYPES;

export interface SummaryStateRow {
  type: string;
  state_key: string;
  event_id: string;
}

/** A room's summary state and its m.space.child events, with its version and joined member count, in one query. */
export async function summaryState(sql: Sql, roomId: string): Promise<{ version: string; joined: number; rows: SummaryStateRow[] } | undefined> {
  const rows = await sql.query<{ room_version: string; joined: string; type: string | null; state_key: string | null; event_id: string | null }>(
    `select r.room_version,
            (select count(*) from current_state j where j.room_id = r.room_id and j.type = 'm.room.member' and j.membership = 'join') as joined,
            cs.type, cs.state_key, cs.event_id
     from rooms r
     left join current_state cs on cs.room_id = r.room_id
       and ((cs.state_key = '' and cs.type in (?)) or cs.type = 'm.space.child')
     where r.room_id = ?`,
    [SUMMARY_TYPES, roomId],
  );
  if (rows.length === 0) return undefined;
  return {
    version: rows[0]!.room_version,
    joined: Number(rows[0]!.joined),
    rows: rows.filter((r) => r.event_id !== null).map((r) => ({ type: r.type!, state_key: r.state_key!, event_id: r.event_id! })),
  };
}

/** The rooms where the user is joined or invited (one query per hierarchy walk). */
export async function membershipsOf(sql: Sql, userId: string): Promise<Map<string, string>> {
  const rows = await sql.query<{ room_id: string; membership: string }>(
    `select room_id, membership from current_state where type = 'm.room.member' and state_key = ? and membership in ('join', 'invite')`,
    [userId],
  );
  return new Map(rows.map((r) => [r.room_id, r.membership]));
}
