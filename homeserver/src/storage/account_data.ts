import type { Sql } from './db.js';

/** Account data rows (global ones have room_id ''). */

export interface AccountDataRow {
  roomId: string;
  type: string;
  content: Record<string, unknown>;
  streamId: number;
}

type Raw = { room_id: string; type: string; content: string; stream_id: string };
const toRow = (r: Raw): AccountDataRow => ({ roomId: r.room_id, type: r.type, content: JSON.parse(r.content) as Record<string, unknown>, streamId: Number(r.stream_id) });

export async function get(sql: Sql, userId: string, roomId: string, type: string): Promise<AccountDataRow | undefined> {
  const rows = await sql.query<Raw>('select room_id, type, content, stream_id from account_data where user_id = ? and room_id = ? and type = ?', [userId, roomId, type]);
  return rows[0] && toRow(rows[0]);
}

/** Takes the next account-data stream position (call under the account-data lock). */
export async function nextStreamId(sql: Sql): Promise<number> {
  const rows = await sql.query<{ id: string }>("select nextval('account_data_stream') as id");
  return Number(rows[0]!.id);
}

export async function upsert(sql: Sql, userId: string, roomId: string, type: string, content: Record<string, unknown>, streamId: number): Promise<void> {
  await sql.query(
    `insert into account_data (user_id, room_id, type, content, stream_id) values (?, ?, ?, ?, ?)
     on conflict (user_id, room_id, type) do update set content = excluded.content, stream_id = excluded.stream_id`,
    [userId, roomId, type, JSON.stringify(content), streamId],
  );
}

/**
 * The newest committed account-data stream position of the user's rows (0 when there is none): a
 * sync token's account-data part. Positions commit in order (the account-data lock), so a snapshot
 * that sees this one sees every row of the user at or below it.
 */
export async function maxStreamId(sql: Sql, userId: string): Promise<number> {
  const rows = await sql.query<{ pos: string | null }>('select max(stream_id) as pos from account_data where user_id = ?', [userId]);
  return rows[0]?.pos == null ? 0 : Number(rows[0].pos);
}

/** The user's rows with stream_id in (after, upTo], oldest first. */
export async function changedBetween(sql: Sql, userId: string, after: number, upTo: number): Promise<AccountDataRow[]> {
  if (after >= upTo) return [];
  const rows = await sql.query<Raw>(
    'select room_id, type, content, stream_id from account_data where user_id = ? and stream_id > ? and stream_id <= ? order by stream_id',
    [userId, after, upTo],
  );
  return rows.map(toRow);
}

/**
 * Which of `userIds` have `sender` in their `m.ignored_user_list` (one query, for push evaluation).
 * `jsonb_exists` is the `?` operator, which the `?` placeholders would swallow.
 */
export async function usersIgnoring(sql: Sql, userIds: readonly string[], sender: string): Promise<Set<string>> {
  if (userIds.length === 0) return new Set();
  const rows = await sql.query<{ user_id: string }>(
    `select user_id from account_data
     where type = 'm.ignored_user_list' and room_id = '' and user_id in (?)
       and jsonb_typeof(content::jsonb -> 'ignored_users') = 'object' and jsonb_exists(content::jsonb -> 'ignored_users', ?)`,
    [userIds, sender],
  );
  return new Set(rows.map((r) => r.user_id));
}
