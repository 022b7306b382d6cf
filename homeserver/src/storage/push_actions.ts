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

/** One local user's rules version and whether the account is active (an invite's target). */
export async function localUserRuleVersion(sql: Sql, userId: string): Promise<number | undefined> {
  const rows = await sql.query<{ version: string | null }>(
    `select v.version from users u left join push_rules_versions v on v.user_id = u.user_id where u.user_id = ? and not u.deactivated`,
    [userId],
  );
  return rows[0] ? (rows[0].version == null ? 0 : Number(rows[0].version)) : undefined;
}

// ---- the push evaluator's per-room member cache (services/push/evaluator.ts) ----

/**
 * The room's joined members as push evaluation needs them: how many, and those with an account
 * here (deactivated or not: `activeLocalsNow` tells) with their member event.
 */
export async function joinedMembersForPush(sql: Sql, roomId: string): Promise<{ count: number; locals: { userId: string; memberEventId: string }[] }> {
  const countRows = await sql.query<{ n: string }>(`select count(*) as n from current_state where room_id = ? and type = 'm.room.member' and membership = 'join'`, [roomId]);
  const rows = await sql.query<{ user_id: string; event_id: string }>(
    `select cs.state_key as user_id, cs.event_id from current_state cs join users u on u.user_id = cs.state_key
     where cs.room_id = ? and cs.type = 'm.room.member' and cs.membership = 'join'`,
    [roomId],
  );
  return { count: Number(countRows[0]?.n ?? 0), locals: rows.map((r) => ({ userId: r.user_id, memberEventId: r.event_id })) };
}

/**
 * In one round trip (the append hook runs for every event of the room): the room's create and
 * power levels events' JSON per current state, the room's membership version — the stream position of its latest
 * membership change (0: none); every writer of a membership in `current_state` records one in
 * the same transaction, under the stream lock — and, of `candidates`, the active accounts with
 * their push rules version and whether they ignore `sender` (as account_data.usersIgnoring).
 */
export async function activeLocalsNow(
  sql: Sql,
  roomId: string,
  candidates: readonly string[],
  sender: string,
): Promise<{ membershipVersion: number; versions: Map<string, number>; ignoring: Set<string>; createJson?: string; powerLevelsJson?: string }> {
  const rows = await sql.query<{ pos: string; user_id: string | null; version: string | null; ignores: boolean | null; create_json: string | null; pl_json: string | null }>(
    `select m.pos, m.create_json, m.pl_json, x.user_id, x.version, x.ignores
     from (select coalesce(max(stream_ordering), 0) as pos,
       (select e.json from current_state cs join events e on e.event_id = cs.event_id where cs.room_id = ? and cs.type = 'm.room.create' and cs.state_key = '') as create_json,
       (select e.json from current_state cs join events e on e.event_id = cs.event_id where cs.room_id = ? and cs.type = 'm.room.power_levels' and cs.state_key = '') as pl_json
       from membership_changes where room_id = ?) m
     left join lateral (
       select u.user_id, coalesce(v.version, 0) as version, exists (
         select 1 from account_data d where d.user_id = u.user_id and d.type = 'm.ignored_user_list' and d.room_id = ''
           and jsonb_typeof(d.content::jsonb -> 'ignored_users') = 'object' and jsonb_exists(d.content::jsonb -> 'ignored_users', ?)
       ) as ignores
       from users u left join push_rules_versions v on v.user_id = u.user_id
       where u.user_id in (?) and not u.deactivated
     ) x on true`,
    [roomId, roomId, roomId, sender, candidates.length > 0 ? candidates : ['']],
  );
  const versions = new Map<string, number>();
  const ignoring = new Set<string>();
  for (const r of rows) {
    if (r.user_id === null) continue;
    versions.set(r.user_id, Number(r.version));
    if (r.ignores) ignoring.add(r.user_id);
  }
  return { membershipVersion: Number(rows[0]?.pos ?? 0), versions, ignoring, createJson: rows[0]?.create_json ?? undefined, powerLevelsJson: rows[0]?.pl_json ?? undefined };
}

/** One membership change of a room as the push member cache applies it. */
export interface MemberDelta {
  streamOrdering: number;
  userId: string;
  membership: string;
  eventId: string;
  /** The user's membership in the room before this change (their previous change's), if any. */
  before: string | null;
  /** The user has an account here. */
  local: boolean;
}

/**
 * The room's membership changes after `since`, oldest first (at most `limit`), and whether the
 * change at `since` itself exists: the cache built at that version is only a sound basis if it
 * does (a version read from a transaction that rolled back names no row). `since` 0: no change.
 */
export async function memberDeltasSince(sql: Sql, roomId: string, since: number, limit: number): Promise<{ basis: boolean; changes: MemberDelta[] }> {
  const rows = await sql.query<{ stream_ordering: string; user_id: string; membership: string; event_id: string; before: string | null; local: boolean; basis: boolean }>(
    `select c.stream_ordering, c.user_id, c.membership, c.event_id,
       (select p.membership from membership_changes p where p.user_id = c.user_id and p.room_id = c.room_id and p.stream_ordering < c.stream_ordering
        order by p.stream_ordering desc limit 1) as before,
       exists (select 1 from users u where u.user_id = c.user_id) as local,
       (? = 0 or exists (select 1 from membership_changes b where b.stream_ordering = ? and b.room_id = ?)) as basis
     from membership_changes c where c.room_id = ? and c.stream_ordering > ? order by c.stream_ordering limit ?`,
    [since, since, roomId, roomId, since, limit],
  );
  return {
    basis: rows.length > 0 && rows[0]!.basis,
    changes: rows.map((r) => ({ streamOrdering: Number(r.stream_ordering), userId: r.user_id, membership: r.membership, eventId: r.event_id, before: r.before, local: r.local })),
  };
}
