import type { Sql } from './db.js';

/** Typing notices (migration 0009): one row per (room, user) that has typed there. */

export interface TypingRow {
  roomId: string;
  userId: string;
  typing: boolean;
  expiresTs: number;
  streamId: number;
}

type Raw = { room_id: string; user_id: string; typing: boolean; expires_ts: string; stream_id: string };
const toRow = (r: Raw): TypingRow => ({ roomId: r.room_id, userId: r.user_id, typing: r.typing, expiresTs: Number(r.expires_ts), streamId: Number(r.stream_id) });

/** The row of (room, user), locked for the writer's transaction. */
export async function getForUpdate(sql: Sql, roomId: string, userId: string): Promise<TypingRow | undefined> {
  const rows = await sql.query<Raw>('select room_id, user_id, typing, expires_ts, stream_id from typing where room_id = ? and user_id = ? for update', [roomId, userId]);
  return rows[0] && toRow(rows[0]);
}

/** Takes the next typing stream position (call under the typing lock). */
export async function nextStreamId(sql: Sql): Promise<number> {
  const rows = await sql.query<{ id: string }>("select nextval('typing_stream') as id");
  return Number(rows[0]!.id);
}

export async function upsert(sql: Sql, r: TypingRow): Promise<void> {
  await sql.query(
    `insert into typing (room_id, user_id, typing, expires_ts, stream_id) values (?, ?, ?, ?, ?)
     on conflict (room_id, user_id) do update set typing = excluded.typing, expires_ts = excluded.expires_ts, stream_id = excluded.stream_id`,
    [r.roomId, r.userId, r.typing, r.expiresTs, r.streamId],
  );
}

/** Moves the expiry of a notice that is still running (no new stream position: nothing visible changes). */
export async function extend(sql: Sql, roomId: string, userId: string, expiresTs: number): Promise<void> {
  await sql.query('update typing set expires_ts = ? where room_id = ? and user_id = ? and typing', [expiresTs, roomId, userId]);
}

/**
 * Stops up to `limit` running notices due at `now`, each at a new stream position (call under the
 * typing lock). Returns the rows stopped.
 */
export async function stopDue(sql: Sql, now: number, limit: number): Promise<TypingRow[]> {
  const rows = await sql.query<Raw>(
    `update typing t set typing = false, stream_id = nextval('typing_stream')
     from (select room_id, user_id from typing where typing and expires_ts <= ? order by expires_ts limit ?) due
     where t.room_id = due.room_id and t.user_id = due.user_id
     returning t.room_id, t.user_id, t.typing, t.expires_ts, t.stream_id`,
    [now, limit],
  );
  return rows.map(toRow);
}

/** The running notices of these users in these rooms (to stop those whose user left). */
export async function running(sql: Sql, roomIds: readonly string[], userIds: readonly string[]): Promise<TypingRow[]> {
  if (roomIds.length === 0 || userIds.length === 0) return [];
  const rows = await sql.query<Raw>('select room_id, user_id, typing, expires_ts, stream_id from typing where typing and room_id in (?) and user_id in (?)', [
    [...roomIds],
    [...userIds],
  ]);
  return rows.map(toRow);
}

/** The earliest expiry among running notices (undefined when nobody types). */
export async function nextExpiry(sql: Sql): Promise<number | undefined> {
  const rows = await sql.query<{ ts: string | null }>('select min(expires_ts) as ts from typing where typing');
  return rows[0]?.ts == null ? undefined : Number(rows[0].ts);
}

/** The newest committed typing stream position (0 when none). */
export async function maxStreamId(sql: Sql): Promise<number> {
  const rows = await sql.query<{ pos: string | null }>('select max(stream_id) as pos from typing');
  return rows[0]?.pos == null ? 0 : Number(rows[0].pos);
}

/** Rooms among these whose typing list changed in (after, upTo]. */
export async function roomsChangedBetween(sql: Sql, roomIds: readonly string[], after: number, upTo: number): Promise<string[]> {
  if (roomIds.length === 0 || after >= upTo) return [];
  const rows = await sql.query<{ room_id: string }>('select distinct room_id from typing where stream_id > ? and stream_id <= ? and room_id in (?)', [
    after,
    upTo,
    [...roomIds],
  ]);
  return rows.map((r) => r.room_id);
}

/** Who is typing in these rooms (notices running and not yet due at `now`), per room. */
export async function typingIn(sql: Sql, roomIds: readonly string[], now: number): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (roomIds.length === 0) return out;
  const rows = await sql.query<{ room_id: string; user_id: string }>(
    'select room_id, user_id from typing where typing and expires_ts > ? and room_id in (?) order by room_id, user_id',
    [now, [...roomIds]],
  );
  for (const r of rows) {
    let list = out.get(r.room_id);
    if (!list) out.set(r.room_id, (list = []));
    list.push(r.user_id);
  }
  return out;
}
