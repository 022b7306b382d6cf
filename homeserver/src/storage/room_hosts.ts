/** The federation sender's room-hosts cache (services/federation/sender/room_hosts.ts): its two reads. */
import type { Sql } from './db.js';

/**
 * Every joined member of every room and the newest membership change's position, from ONE
 * statement (one snapshot): the changes after that position are exactly those the members do not
 * include yet, so applying them as deltas never counts a change twice.
 */
export async function joinedMembersAt(sql: Sql): Promise<{ position: number; members: { roomId: string; userId: string }[] }> {
  const rows = await sql.query<{ pos: string; room_id: string | null; state_key: string | null }>(
    `select m.pos, c.room_id, c.state_key
     from (select coalesce(max(stream_ordering), 0) as pos from membership_changes) m
     left join current_state c on c.type = 'm.room.member' and c.membership = 'join'`,
  );
  const members: { roomId: string; userId: string }[] = [];
  for (const r of rows) if (r.room_id !== null && r.state_key !== null) members.push({ roomId: r.room_id, userId: r.state_key });
  return { position: Number(rows[0]?.pos ?? 0), members };
}

/** One membership change with the user's membership in the room before it (their previous change's; null: none). */
export interface MembershipDelta {
  position: number;
  roomId: string;
  userId: string;
  membership: string;
  before: string | null;
}

/** The membership changes after `after`, oldest first (the user's previous one by index membership_changes_user). */
export async function membershipDeltasSince(sql: Sql, after: number): Promise<MembershipDelta[]> {
  const rows = await sql.query<{ stream_ordering: string; room_id: string; user_id: string; membership: string; before: string | null }>(
    `select c.stream_ordering, c.room_id, c.user_id, c.membership,
       (select p.membership from membership_changes p where p.user_id = c.user_id and p.room_id = c.room_id and p.stream_ordering < c.stream_ordering
        order by p.stream_ordering desc limit 1) as before
     from membership_changes c where c.stream_ordering > ? order by c.stream_ordering`,
    [after],
  );
  return rows.map((r) => ({ position: Number(r.stream_ordering), roomId: r.room_id, userId: r.user_id, membership: r.membership, before: r.before }));
}
