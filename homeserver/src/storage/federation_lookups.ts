/**
 * Queries for federation's room look-ups (space hierarchy and timestamp_to_event): which rooms a
 * server has members in, and whether an event sits next to a gap in the history we hold.
 */
import type { Sql } from './db.js';

/**
 * For each of these rooms, the memberships ('join', 'invite') that users of `serverName` hold in
 * current state (one query; rooms without any are left out).
 */
export async function serverMemberships(sql: Sql, roomIds: string[], serverName: string): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  if (roomIds.length === 0) return out;
  const suffix = `:${serverName}`;
  const rows = await sql.query<{ room_id: string; membership: string }>(
    `select distinct room_id, membership from current_state
     where room_id in (?) and type = 'm.room.member' and membership in ('join', 'invite') and right(state_key, ?) = ?`,
    [roomIds, suffix.length, suffix],
  );
  for (const r of rows) {
    let set = out.get(r.room_id);
    if (!set) out.set(r.room_id, (set = new Set()));
    set.add(r.membership);
  }
  return out;
}

/**
 * Whether some prev_event of the event is missing from our timeline (not held, or held only as an
 * outlier): older history may be hiding right before it.
 */
export async function nextToBackwardGap(sql: Sql, eventId: string): Promise<boolean> {
  const rows = await sql.query<{ n: string }>(
    `select count(*) as n from event_edges ed left join events p on p.event_id = ed.prev_event_id
     where ed.event_id = ? and (p.event_id is null or p.stream_ordering is null or p.outlier)`,
    [eventId],
  );
  return Number(rows[0]?.n ?? 0) > 0;
}

/**
 * Whether the event is followed by a gap: it is not one of the room's newest events (a forward
 * extremity) and no event of our timeline (not rejected) names it as a prev_event.
 */
export async function nextToForwardGap(sql: Sql, roomId: string, eventId: string): Promise<boolean> {
  const rows = await sql.query<{ extremity: boolean; followed: boolean }>(
    `select exists (select 1 from forward_extremities where room_id = ? and event_id = ?) as extremity,
            exists (select 1 from event_edges ed join events e on e.event_id = ed.event_id
                    where ed.prev_event_id = ? and e.stream_ordering is not null and not e.outlier and e.rejected_reason is null) as followed`,
    [roomId, eventId, eventId],
  );
  const r = rows[0];
  return !!r && !r.extremity && !r.followed;
}
