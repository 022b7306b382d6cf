import type { Sql } from './db.js';

export interface UserRow {
  user_id: string;
  localpart: string;
  password_hash: string | null;
  displayname: string | null;
  avatar_url: string | null;
  is_admin: boolean;
  deactivated: boolean;
  created_ts: string;
}

export async function getUser(sql: Sql, userId: string): Promise<UserRow | undefined> {
  const rows = await sql.query<UserRow>('select * from users where user_id = ?', [userId]);
  return rows[0];
}

/** Inserts a user; returns false when the id is taken (so callers can answer M_USER_IN_USE). */
export async function insertUser(
  sql: Sql,
  u: { userId: string; localpart: string; passwordHash: string | null; displayname: string | null; isAdmin?: boolean },
): Promise<boolean> {
  const rows = await sql.query(
    `insert into users (user_id, localpart, password_hash, displayname, is_admin, created_ts)
     values (?, ?, ?, ?, ?, ?) on conflict do nothing returning user_id`,
    [u.userId, u.localpart, u.passwordHash, u.displayname, u.isAdmin ?? false, Date.now()],
  );
  return rows.length === 1;
}

export async function setPasswordHash(sql: Sql, userId: string, hash: string | null): Promise<void> {
  await sql.query('update users set password_hash = ? where user_id = ?', [hash, userId]);
}

export async function setAdmin(sql: Sql, userId: string, isAdmin: boolean): Promise<boolean> {
  const rows = await sql.query('update users set is_admin = ? where user_id = ? returning user_id', [isAdmin, userId]);
  return rows.length === 1;
}

export async function setProfileField(
  sql: Sql,
  userId: string,
  field: 'displayname' | 'avatar_url',
  value: string | null,
): Promise<void> {
  // `field` is one of two literal column names, never user input.
  await sql.query(`update users set ${field} = ? where user_id = ?`, [value, userId]);
}

export async function markDeactivated(sql: Sql, userId: string): Promise<void> {
  await sql.query(
    'update users set deactivated = true, password_hash = null, displayname = null, avatar_url = null where user_id = ?',
    [userId],
  );
}

export async function listUsers(sql: Sql, limit: number, from: string): Promise<UserRow[]> {
  return sql.query<UserRow>('select * from users where user_id > ? order by user_id limit ?', [from, limit]);
}
