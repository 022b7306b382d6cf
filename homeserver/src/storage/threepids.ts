import type { Sql } from './db.js';

export interface ThreepidRow {
  medium: string;
  address: string;
  user_id: string;
  validated_ts: string;
  added_ts: string;
}

export async function findThreepidOwner(sql: Sql, medium: string, address: string): Promise<string | undefined> {
  const rows = await sql.query<{ user_id: string }>(
    'select user_id from user_threepids where medium = ? and address = ?',
    [medium, address],
  );
  return rows[0]?.user_id;
}

export async function listThreepids(sql: Sql, userId: string): Promise<ThreepidRow[]> {
  return sql.query<ThreepidRow>('select * from user_threepids where user_id = ? order by added_ts', [userId]);
}

/** Binds a 3pid to a user; false if someone already holds it. */
export async function addThreepid(
  sql: Sql,
  t: { medium: string; address: string; userId: string; validatedTs: number },
): Promise<boolean> {
  const rows = await sql.query(
    `insert into user_threepids (medium, address, user_id, validated_ts, added_ts) values (?, ?, ?, ?, ?)
     on conflict do nothing returning address`,
    [t.medium, t.address, t.userId, t.validatedTs, Date.now()],
  );
  return rows.length === 1;
}

export async function deleteThreepid(sql: Sql, userId: string, medium: string, address: string): Promise<boolean> {
  const rows = await sql.query(
    'delete from user_threepids where user_id = ? and medium = ? and address = ? returning address',
    [userId, medium, address],
  );
  return rows.length === 1;
}

export async function deleteAllForUser(sql: Sql, userId: string): Promise<void> {
  await sql.query('delete from user_threepids where user_id = ?', [userId]);
}
