import type { Sql } from './db.js';

export interface UiaSessionRow {
  session_id: string;
  endpoint: string;
  user_id: string | null;
  completed: string[];
  threepid: { medium: string; address: string; validated_ts: number; sid: string } | null;
  registration_token: string | null;
  expires_ts: string;
}

export async function insertUiaSession(
  sql: Sql,
  s: { sessionId: string; endpoint: string; userId: string | null; expiresTs: number },
): Promise<void> {
  await sql.query(
    'insert into uia_sessions (session_id, endpoint, user_id, created_ts, expires_ts) values (?, ?, ?, ?, ?)',
    [s.sessionId, s.endpoint, s.userId, Date.now(), s.expiresTs],
  );
}

export async function getUiaSession(sql: Sql, sessionId: string): Promise<UiaSessionRow | undefined> {
  const rows = await sql.query<UiaSessionRow>(
    'select session_id, endpoint, user_id, completed, threepid, registration_token, expires_ts from uia_sessions where session_id = ?',
    [sessionId],
  );
  return rows[0];
}

export async function updateUiaSession(
  sql: Sql,
  sessionId: string,
  completed: string[],
  threepid: UiaSessionRow['threepid'],
  registrationToken: string | null,
): Promise<void> {
  await sql.query('update uia_sessions set completed = ?::jsonb, threepid = ?::jsonb, registration_token = ? where session_id = ?', [
    JSON.stringify(completed),
    threepid === null ? null : JSON.stringify(threepid),
    registrationToken,
    sessionId,
  ]);
}

export async function deleteUiaSession(sql: Sql, sessionId: string): Promise<void> {
  await sql.query('delete from uia_sessions where session_id = ?', [sessionId]);
}

export async function deleteExpiredUiaSessions(sql: Sql, now: number): Promise<void> {
  await sql.query('delete from uia_sessions where expires_ts < ?', [now]);
}
