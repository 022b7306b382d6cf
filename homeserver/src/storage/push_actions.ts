import type { Sql } from './db.js';

/**
 * Push actions (event_push_actions, migration 0011): what each user's rules decided for an event,
 * and the unread counts derived from them and the user's read receipts. A receipt's position is
 * the receipted event's stream position (storage/receipts.ts); `m.read` and `m.read.private`
 * both count, and an unthreaded receipt covers every thread (spec: "Threaded read receipts").
 */

/** One user's outcome for an event being written. */
export interface PushUserAction {
  userId: string;
  notify: boolean;
  highlight: boolean;
  /** JSON text of the rule's actions. */
  actions: string;
}

export interface PushActionRow {
  userId: string;
  eventId: string;
  roomId: string;
  streamOrdering: number;
  notify: boolean;
  highlight: boolean;
  threadId: string;
  /** JSON text of the rule's actions. */
  actions: string;
  ts: number;
}

/** Receipt types that mark how far a user has read (as storage/receipts.ts latestReadPosition). */
const READ_TYPES = `('m.read', 'm.read.private')`;

/** The read position of the action row `a` for its thread: its room's unthreaded receipt or its thread's, whichever is later. */
const READ_POS = `coalesce((select max(r.event_stream_ordering) from receipts r
  where r.user_id = a.user_id and r.room_id = a.room_id and r.receipt_type in ${READ_TYPES} and r.thread_id in ('', a.thread_id)), 0)`;

/**
 * Stores one event's actions for many users in one statement: the per-user fields travel as one
 * JSON parameter (binding thousands of placeholders costs more than the insert itself).
 */
export async function insertActions(tx: Sql, event: { eventId: string; roomId: string; streamOrdering: number; threadId: string; ts: number }, rows: PushUserAction[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `insert into event_push_actions (user_id, event_id, room_id, stream_ordering, notify, highlight, thread_id, actions, ts)
     select x.user_id, ?, ?, ?, x.notify, x.highlight, ?, x.actions, ?
     from json_to_recordset(?::json) as x(user_id text, notify boolean, highlight boolean, actions text)
     on conflict do nothing`,
    [event.eventId, event.roomId, event.streamOrdering, event.threadId, event.ts, JSON.stringify(rows.map((r) => ({ user_id: r.userId, notify: r.notify, highlight: r.highlight, actions: r.actions })))],
  );
}

export interface ThreadCounts {
  roomId: string;
  threadId: string;
  notifications: number;
  highlights: number;
}

/**
 * Unread notification and highlight counts of the user in these rooms, per thread ('main' or a
 * root id). Only rows after the room's unthreaded receipt are read from the index; each is then
 * compared with its thread's receipt too.
 */
export async function unreadCounts(sql: Sql, userId: string, roomIds: readonly string[]): Promise<ThreadCounts[]> {
  if (roomIds.length === 0) return [];
  const rows = await sql.query<{ room_id: string; thread_id: string; n: string; h: string }>(
    `select a.room_id, a.thread_id, count(*) filter (where a.notify) as n, count(*) filter (where a.highlight) as h
     from (values ${roomIds.map(() => '(?)').join(', ')}) as q(room_id)
     cross join lateral (select coalesce(max(event_stream_ordering), 0) as pos from receipts
       where user_id = ? and room_id = q.room_id and receipt_type in ${READ_TYPES} and thread_id = '') u
     join event_push_actions a on a.user_id = ? and a.room_id = q.room_id and a.stream_ordering > u.pos
     where a.stream_ordering > ${READ_POS}
     group by a.room_id, a.thread_id`,
    [...roomIds, userId, userId],
  );
  return rows.map((r) => ({ roomId: r.room_id, threadId: r.thread_id, notifications: Number(r.n), highlights: Number(r.h) }));
}

/** Rooms where the user has push actions at all (for a gateway's total badge count). */
export async function roomsWithActions(sql: Sql, userId: string): Promise<string[]> {
  const rows = await sql.query<{ room_id: string }>('select distinct room_id from event_push_actions where user_id = ?', [userId]);
  return rows.map((r) => r.room_id);
}

export interface NotificationRow extends PushActionRow {
  read: boolean;
}

type Raw = {
  user_id: string;
  event_id: string;
  room_id: string;
  stream_ordering: string;
  notify: boolean;
  highlight: boolean;
  thread_id: string;
  actions: string;
  ts: string;
  read?: boolean;
};
const toRow = (r: Raw): NotificationRow => ({
  userId: r.user_id,
  eventId: r.event_id,
  roomId: r.room_id,
  streamOrdering: Number(r.stream_ordering),
  notify: r.notify,
  highlight: r.highlight,
  threadId: r.thread_id,
  actions: r.actions,
  ts: Number(r.ts),
  read: r.read ?? false,
});

/** A page of the user's notifications before `before` (exclusive), newest first, with whether each is read. */
export async function notificationsPage(sql: Sql, userId: string, opts: { before?: number; limit: number; onlyHighlight: boolean }): Promise<NotificationRow[]> {
  const rows = await sql.query<Raw>(
    `select a.*, a.stream_ordering <= ${READ_POS} as read from event_push_actions a
     where a.user_id = ? and (a.notify or a.highlight)${opts.before !== undefined ? ' and a.stream_ordering < ?' : ''}${opts.onlyHighlight ? ' and a.highlight' : ''}
     order by a.stream_ordering desc limit ?`,
    [userId, ...(opts.before !== undefined ? [opts.before] : []), opts.limit],
  );
  return rows.map(toRow);
}

/** The user's notifying actions after `after`, oldest first (a pusher's backlog). */
export async function notifyingAfter(sql: Sql, userId: string, after: number, limit: number): Promise<PushActionRow[]> {
  const rows = await sql.query<Raw>('select * from event_push_actions where user_id = ? and notify and stream_ordering > ? order by stream_ordering limit ?', [
    userId,
    after,
    limit,
  ]);
  return rows.map(toRow);
}

/** Deletes actions older than `beforeTs` (the /notifications history kept). */
export async function deleteOlderThan(sql: Sql, beforeTs: number): Promise<number> {
  const rows = await sql.query('delete from event_push_actions where ts < ? returning 1', [beforeTs]);
  return rows.length;
}

// ---- rule versions: each process's rule cache compares these ----

/** Records that the user's push rules changed (call in the changing transaction, after the change). */
export async function bumpRulesVersion(sql: Sql, userId: string): Promise<void> {
  await sql.query(
    `insert into push_rules_versions (user_id, version) values (?, 1)
     on conflict (user_id) do update set version = push_rules_versions.version + 1`,
    [userId],
  );
}

/** The joined members of a room per current state, whether each is a local active account, and its rules version. */
export async function joinedMembersWithRuleVersions(sql: Sql, roomId: string): Promise<{ userId: string; local: boolean; version: number; memberEventId: string }[]> {
  const rows = await sql.query<{ user_id: string; local: boolean; version: string | null; event_id: string }>(
    `select cs.state_key as user_id, (u.user_id is not null and not u.deactivated) as local, v.version, cs.event_id
     from current_state cs
     left join users u on u.user_id = cs.state_key
     left join push_rules_versions v on v.user_id = cs.state_key
     where cs.room_id = ? and cs.type = 'm.room.member' and cs.membership = 'join'`,
    [roomId],
  );
  return rows.map((r) => ({ userId: r.user_id, local: r.local, version: r.version == null ? 0 : Number(r.version), memberEventId: r.event_id }));
}

/** One local user's rules version and whether the account is active (an invite's target). */
export async function localUserRuleVersion(sql: Sql, userId: string): Promise<number | undefined> {
  const rows = await sql.query<{ version: string | null }>(
    `select v.version from users u left join push_rules_versions v on v.user_id = u.user_id where u.user_id = ? and not u.deactivated`,
    [userId],
  );
  return rows[0] ? (rows[0].version == null ? 0 : Number(rows[0].version)) : undefined;
}
