import type { Sql } from './db.js';

export interface RegistrationTokenRow {
  token: string;
  uses_allowed: number | null;
  pending: number;
  completed: number;
  expiry_ts: string | null;
  created_ts: string;
}

export async function insertRegistrationToken(
  sql: Sql,
  t: { token: string; usesAllowed: number | null; expiryTs: number | null },
): Promise<boolean> {
  const rows = await sql.query(
    `insert into registration_tokens (token, uses_allowed, expiry_ts, created_ts) values (?, ?, ?, ?)
     on conflict do nothing returning token`,
    [t.token, t.usesAllowed, t.expiryTs, Date.now()],
  );
  return rows.length === 1;
}

export async function getRegistrationToken(sql: Sql, token: string): Promise<RegistrationTokenRow | undefined> {
  const rows = await sql.query<RegistrationTokenRow>('select * from registration_tokens where token = ?', [token]);
  return rows[0];
}

/** Uses the token once if it still has a use left and has not expired; atomic against concurrent registrations. */
export async function consumeRegistrationToken(sql: Sql, token: string, now: number): Promise<boolean> {
  const rows = await sql.query(
    `update registration_tokens set completed = completed + 1
     where token = ? and (uses_allowed is null or completed < uses_allowed) and (expiry_ts is null or expiry_ts > ?)
     returning token`,
    [token, now],
  );
  return rows.length === 1;
}

export async function listRegistrationTokens(sql: Sql): Promise<RegistrationTokenRow[]> {
  return sql.query<RegistrationTokenRow>('select * from registration_tokens order by created_ts');
}
