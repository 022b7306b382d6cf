import type { Sql } from './db.js';
import type { RoomVersionId } from '../services/rooms/pdu.js';

/** Queries behind /sync: a user's memberships at a stream position and what changed between two. */

export async function roomVersions(sql: Sql, roomIds: string[]): Promise<Map<string, RoomVersionId>> {
  const out = new Map<string, RoomVersionId>();
  if (roomIds.length === 0) return out;
  const rows = await sql.query<{ room_id: string; room_version: string }>('select room_id, room_version from rooms where room_id in (?)', [roomIds]);
  for (const r of rows) out.set(r.room_id, r.room_version as RoomVersionId);
  return out;
}

export interface MembershipAt {
  membership: string;
  /** Stream position of the membership event. */
  stream: number;
  eventId: string;
}

/**
 * The user's membership in each room as of stream position `at` (the last membership change at or
 * before it), optionally only for `roomIds`. Reading it from the change log instead of current state
 * keeps a sync response consistent with its own `next_batch`.
 */
export async function membershipsAt(sql: Sql, userId: string, at: number, roomIds?: string[]): Promise<Map<string, MembershipAt>> {
  const out = new Map<string, MembershipAt>();
  if (roomIds && roomIds.length === 0) return out;
  const rows = await sql.query<{ room_id: string; membership: string; stream_ordering: string; event_id: string }>(
    `select distinct on (room_id) room_id, membership, stream_ordering, event_id from membership_changes
     where user_id = ? and stream_ordering <= ?${roomIds ? ' and room_id in (?)' : ''}
     order by room_id, stream_ordering desc`,
    roomIds ? [userId, at, roomIds] : [userId, at],
  );
  for (const r of rows) out.set(r.room_id, { membership: r.membership, stream: Number(r.stream_ordering), eventId: r.event_id });
  return out;
}

/** The user's membership changes in (after, upTo], oldest first. */
export async function membershipChanges(sql: Sql, userId: string, after: number, upTo: number): Promise<(MembershipAt & { roomId: string })[]> {
  const rows = await sql.query<{ room_id: string; membership: string; stream_ordering: string; event_id: string }>(
    `select room_id, membership, stream_ordering, event_id from membership_changes
     where user_id = ? and stream_ordering > ? and stream_ordering <= ? order by stream_ordering`,
    [userId, after, upTo],
  );
  return rows.map((r) => ({ roomId: r.room_id, membership: r.membership, stream: Number(r.stream_ordering), eventId: r.event_id }));
}

/** Which of these rooms have events in (after, upTo]. */
export async function roomsWithEventsBetween(sql: Sql, roomIds: string[], after: number, upTo: number): Promise<Set<string>> {
  if (roomIds.length === 0 || after >= upTo) return new Set();
  const rows = await sql.query<{ room_id: string }>(
    'select distinct room_id from events where room_id in (?) and stream_ordering > ? and stream_ordering <= ?',
    [roomIds, after, upTo],
  );
  return new Set(rows.map((r) => r.room_id));
}

/**
 * The lowest stream position, in (after, upTo], of an event that is the `n + 1`th after `after` in
 * its room, among these rooms: up to just before it, no room has more than `n` events.
 * Undefined when no room has that many. One index range per room.
 */
export async function firstOverflow(sql: Sql, roomIds: string[], after: number, upTo: number, n: number): Promise<number | undefined> {
  if (roomIds.length === 0) return undefined;
  const rows = await sql.query<{ pos: string | null }>(
    `select min(x.stream_ordering) as pos from unnest(array[?]::text[]) as r(room_id)
     cross join lateral (
       select e.stream_ordering from events e where e.room_id = r.room_id and e.stream_ordering > ? and e.stream_ordering <= ?
       order by e.stream_ordering offset ? limit 1
     ) x`,
    [roomIds, after, upTo, n],
  );
  return rows[0]?.pos == null ? undefined : Number(rows[0].pos);
}

/** Rooms the user has forgotten (left rooms that no longer appear in their syncs). */
export async function forgottenRooms(sql: Sql, userId: string): Promise<Set<string>> {
  const rows = await sql.query<{ room_id: string }>('select room_id from room_forgotten where user_id = ?', [userId]);
  return new Set(rows.map((r) => r.room_id));
}

/** Joined and invited member counts of a room, per current state. */
export async function memberCounts(sql: Sql, roomId: string): Promise<{ joined: number; invited: number }> {
  const rows = await sql.query<{ membership: string; n: string }>(
    `select membership, count(*) as n from current_state
     where room_id = ? and type = 'm.room.member' and membership in ('join', 'invite') group by membership`,
    [roomId],
  );
  const count = (m: string) => Number(rows.find((r) => r.membership === m)?.n ?? 0);
  return { joined: count('join'), invited: count('invite') };
}

/**
 * Up to `limit` members other than `userId` with one of these memberships, in the order their
 * membership events arrived. The room's members are selected first (materialized): otherwise the
 * planner may walk `events` in stream order hoping to meet members early, which in a room joined
 * over federation (its member events are outliers, without a position) reads every later event,
 * a cost that grew with each message (measured: +20 ms per 50 events at 10,000 members).
 */
export async function firstMembers(sql: Sql, roomId: string, userId: string, memberships: string[], limit: number): Promise<string[]> {
  const rows = await sql.query<{ state_key: string }>(
    `with m as materialized (
       select state_key, event_id from current_state
       where room_id = ? and type = 'm.room.member' and membership in (?) and state_key <> ?
     )
     select m.state_key from m join events e on e.event_id = m.event_id
     order by e.stream_ordering, m.state_key limit ?`,
    [roomId, memberships, userId, limit],
  );
  return rows.map((r) => r.state_key);
}
