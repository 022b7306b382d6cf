import type { Sql } from './db.js';

/** Presence rows (migration 0010). Timestamps are milliseconds since the epoch. */

export type PresenceState = 'online' | 'unavailable' | 'offline';

export interface PresenceRow {
  userId: string;
  state: PresenceState;
  statusMsg: string | null;
  lastActiveTs: number;
  currentlyActive: boolean;
  syncUntilTs: number;
  streamId: number;
}

type Raw = {
  user_id: string;
  state: PresenceState;
  status_msg: string | null;
  last_active_ts: string;
  currently_active: boolean;
  sync_until_ts: string;
  stream_id: string;
};

const COLUMNS = 'user_id, state, status_msg, last_active_ts, currently_active, sync_until_ts, stream_id';

const toRow = (r: Raw): PresenceRow => ({
  userId: r.user_id,
  state: r.state,
  statusMsg: r.status_msg,
  lastActiveTs: Number(r.last_active_ts),
  currentlyActive: r.currently_active,
  syncUntilTs: Number(r.sync_until_ts),
  streamId: Number(r.stream_id),
});

export async function get(sql: Sql, userId: string): Promise<PresenceRow | undefined> {
  const rows = await sql.query<Raw>(`select ${COLUMNS} from presence where user_id = ?`, [userId]);
  return rows[0] && toRow(rows[0]);
}

/** The row locked until the transaction ends (call under the presence lock). */
export async function getForUpdate(sql: Sql, userId: string): Promise<PresenceRow | undefined> {
  const rows = await sql.query<Raw>(`select ${COLUMNS} from presence where user_id = ? for update`, [userId]);
  return rows[0] && toRow(rows[0]);
}

/** Takes the next presence stream position (call under the presence lock). */
export async function nextStreamId(sql: Sql): Promise<number> {
  const rows = await sql.query<{ id: string }>("select nextval('presence_stream') as id");
  return Number(rows[0]!.id);
}

export async function upsert(sql: Sql, row: PresenceRow): Promise<void> {
  await sql.query(
    `insert into presence (${COLUMNS}) values (?, ?, ?, ?, ?, ?, ?)
     on conflict (user_id) do update set state = excluded.state, status_msg = excluded.status_msg,
       last_active_ts = excluded.last_active_ts, currently_active = excluded.currently_active,
       sync_until_ts = excluded.sync_until_ts, stream_id = excluded.stream_id`,
    [row.userId, row.state, row.statusMsg, row.lastActiveTs, row.currentlyActive, row.syncUntilTs, row.streamId],
  );
}

/**
 * Extends the user's syncing window in place when they are not offline (no stream position: clients
 * do not see it). Returns false when there is no such row (offline or never seen).
 */
export async function extendSync(sql: Sql, userId: string, until: number): Promise<boolean> {
  const rows = await sql.query(
    `update presence set sync_until_ts = greatest(sync_until_ts, ?) where user_id = ? and state <> 'offline' returning user_id`,
    [until, userId],
  );
  return rows.length > 0;
}

/**
 * Bumps the last active time in place of a user who is online and currently active (the spec lets
 * the server send no update then). Returns false when the row is in another state.
 */
export async function bumpActive(sql: Sql, userId: string, now: number, syncUntil: number): Promise<boolean> {
  const rows = await sql.query(
    `update presence set last_active_ts = greatest(last_active_ts, ?), sync_until_ts = greatest(sync_until_ts, ?)
     where user_id = ? and state = 'online' and currently_active returning user_id`,
    [now, syncUntil, userId],
  );
  return rows.length > 0;
}

/**
 * Rows the sweeper must change at `now`, locked (rows another transaction holds are skipped: the
 * next sweep sees them). Call under the presence lock.
 */
export async function dueForSweep(sql: Sql, now: number, t: { idleMs: number; syncGraceMs: number; activeWindowMs: number }, limit: number): Promise<PresenceRow[]> {
  const rows = await sql.query<Raw>(
    `select ${COLUMNS} from presence
     where state <> 'offline' and (
       sync_until_ts < ?
       or (state = 'online' and last_active_ts < ?)
       or (state = 'online' and currently_active and last_active_ts < ?))
     order by user_id limit ? for update skip locked`,
    [now - t.syncGraceMs, now - t.idleMs, now - t.activeWindowMs, limit],
  );
  return rows.map(toRow);
}

/**
 * The newest committed presence stream position (0 when there is none). Positions commit in order
 * (the presence lock), so a snapshot that sees it sees every change at or below it.
 */
export async function maxStreamId(sql: Sql): Promise<number> {
  const rows = await sql.query<{ pos: string | null }>('select max(stream_id) as pos from presence');
  return rows[0]?.pos == null ? 0 : Number(rows[0].pos);
}

/** Users joined to at least one of `roomIds` (the presence audience of a syncing user). */
const CO_MEMBERS = `select state_key from current_state where room_id in (?) and type = 'm.room.member' and membership = 'join'`;

/**
 * Presence rows changed in (after, upTo] of `userId` and of the users joined to one of `roomIds`.
 * With `after` undefined: the current rows that are not offline (an initial sync).
 */
export async function visibleRows(sql: Sql, userId: string, roomIds: readonly string[], after: number | undefined, upTo: number): Promise<PresenceRow[]> {
  const range = after === undefined ? `state <> 'offline' and stream_id <= ?` : 'stream_id > ? and stream_id <= ?';
  const params: unknown[] = after === undefined ? [upTo] : [after, upTo];
  const audience = roomIds.length === 0 ? 'user_id = ?' : `(user_id = ? or user_id in (${CO_MEMBERS}))`;
  params.push(userId);
  if (roomIds.length > 0) params.push([...roomIds]);
  const rows = await sql.query<Raw>(`select ${COLUMNS} from presence where ${range} and ${audience} order by stream_id`, params);
  return rows.map(toRow);
}

/** Whether the two users are both joined to some room. */
export async function shareRoom(sql: Sql, a: string, b: string): Promise<boolean> {
  const rows = await sql.query(
    `select 1 from current_state x join current_state y on y.room_id = x.room_id and y.type = 'm.room.member' and y.state_key = ? and y.membership = 'join'
     where x.type = 'm.room.member' and x.state_key = ? and x.membership = 'join' limit 1`,
    [b, a],
  );
  return rows.length > 0;
}
