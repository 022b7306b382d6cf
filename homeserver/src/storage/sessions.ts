import type { Sql } from './db.js';

export interface SessionRow {
  session_id: string;
  user_id: string;
  device_id: string;
  refreshable: boolean;
  latest_refresh_id: string | null;
  confirmed_refresh_id: string | null;
  deactivated: boolean;
  is_admin: boolean;
}

/** The one query every authenticated request makes (primary-key lookup joined to its user). */
export async function getSession(sql: Sql, sessionId: string, forUpdate = false): Promise<SessionRow | undefined> {
  const rows = await sql.query<SessionRow>(
    `select s.session_id, s.user_id, s.device_id, s.refreshable, s.latest_refresh_id, s.confirmed_refresh_id,
            u.deactivated, u.is_admin
     from access_sessions s join users u on u.user_id = s.user_id
     where s.session_id = ?${forUpdate ? ' for update of s' : ''}`,
    [sessionId],
  );
  return rows[0];
}

export async function insertSession(
  sql: Sql,
  s: { sessionId: string; userId: string; deviceId: string; refreshable: boolean },
): Promise<void> {
  // A device has one live session: logging in again with its id replaces the old one.
  await sql.query('delete from access_sessions where user_id = ? and device_id = ?', [s.userId, s.deviceId]);
  await sql.query(
    `insert into access_sessions (session_id, user_id, device_id, refreshable, created_ts) values (?, ?, ?, ?, ?)`,
    [s.sessionId, s.userId, s.deviceId, s.refreshable, Date.now()],
  );
}

export async function insertRefreshToken(sql: Sql, sessionId: string, tokenHash: string): Promise<number> {
  const rows = await sql.query<{ refresh_id: string }>(
    'insert into refresh_tokens (session_id, token_hash, created_ts) values (?, ?, ?) returning refresh_id',
    [sessionId, tokenHash, Date.now()],
  );
  return Number(rows[0]!.refresh_id);
}

export async function findRefreshToken(
  sql: Sql,
  tokenHash: string,
): Promise<{ refresh_id: string; session_id: string } | undefined> {
  const rows = await sql.query<{ refresh_id: string; session_id: string }>(
    'select refresh_id, session_id from refresh_tokens where token_hash = ?',
    [tokenHash],
  );
  return rows[0];
}

export async function deleteRefreshToken(sql: Sql, refreshId: number): Promise<void> {
  await sql.query('delete from refresh_tokens where refresh_id = ?', [refreshId]);
}

export async function setRefreshIds(
  sql: Sql,
  sessionId: string,
  latest: number,
  confirmed: number | null,
): Promise<void> {
  await sql.query('update access_sessions set latest_refresh_id = ?, confirmed_refresh_id = ? where session_id = ?', [
    latest,
    confirmed,
    sessionId,
  ]);
}

/** First use of a new generation's access token: older generations are now rotated out. */
export async function confirmRefreshId(sql: Sql, sessionId: string, refreshId: number): Promise<void> {
  await sql.query(
    `update access_sessions set confirmed_refresh_id = ?
     where session_id = ? and (confirmed_refresh_id is null or confirmed_refresh_id < ?)`,
    [refreshId, sessionId, refreshId],
  );
}

export async function deleteSessions(
  sql: Sql,
  userId: string,
  which: { deviceIds: string[] } | { allExceptDevice: string | null },
): Promise<void> {
  if ('deviceIds' in which) {
    if (which.deviceIds.length === 0) return;
    await sql.query('delete from access_sessions where user_id = ? and device_id in (?)', [userId, which.deviceIds]);
  } else {
    await sql.query('delete from access_sessions where user_id = ? and device_id is distinct from ?', [
      userId,
      which.allExceptDevice,
    ]);
  }
}
