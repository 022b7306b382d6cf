import type { Sql } from './db.js';

/** OpenID tokens: stored by hash; expired rows are swept when a new token is issued. */
export async function insertOpenidToken(sql: Sql, tokenHash: string, userId: string, expiresTs: number): Promise<void> {
  await sql.query('insert into openid_tokens (token_hash, user_id, expires_ts) values (?, ?, ?)', [tokenHash, userId, expiresTs]);
}

export async function deleteExpiredOpenidTokens(sql: Sql, now: number): Promise<void> {
  await sql.query('delete from openid_tokens where expires_ts <= ?', [now]);
}

/** The user a live (unexpired) token was issued to. */
export async function openidTokenOwner(sql: Sql, tokenHash: string, now: number): Promise<string | undefined> {
  const rows = await sql.query<{ user_id: string }>('select user_id from openid_tokens where token_hash = ? and expires_ts > ?', [tokenHash, now]);
  return rows[0]?.user_id;
}

export async function deleteOpenidTokensOf(sql: Sql, userId: string): Promise<void> {
  await sql.query('delete from openid_tokens where user_id = ?', [userId]);
}

export async function markErased(sql: Sql, userId: string, now: number): Promise<void> {
  await sql.query('insert into erased_users (user_id, erased_ts) values (?, ?) on conflict do nothing', [userId, now]);
}

/** Which of these users were erased (one indexed query; usually an empty answer). */
export async function erasedAmong(sql: Sql, userIds: string[]): Promise<Set<string>> {
  if (userIds.length === 0) return new Set();
  const rows = await sql.query<{ user_id: string }>('select user_id from erased_users where user_id in (?)', [userIds]);
  return new Set(rows.map((r) => r.user_id));
}

/** An erased user's account data (global and per room) goes with them. */
export async function deleteAccountDataOf(sql: Sql, userId: string): Promise<void> {
  await sql.query('delete from account_data where user_id = ?', [userId]);
}

/** `erase: true` on deactivation: marks the user erased and removes their account data. */
export async function eraseUser(sql: Sql, userId: string, now: number): Promise<void> {
  await markErased(sql, userId, now);
  await deleteAccountDataOf(sql, userId);
}
