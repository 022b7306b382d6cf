import type { Sql } from './db.js';

/** One email validation: requestToken → link or code → used once (table `threepid_validations`). */
export interface ValidationRow {
  sid: string;
  client_secret: string;
  medium: string;
  address: string;
  purpose: string;
  /** HMAC of the token; the token itself is only ever in the email. */
  token_hash: string;
  send_attempt: string;
  created_ts: string;
  expires_ts: string;
  validated_ts: string | null;
  consumed_ts: string | null;
  failed_attempts: number;
  next_link: string | null;
}

/** The newest validation a client started for this address and purpose with this client secret. */
export async function findLatestValidation(
  sql: Sql,
  k: { clientSecret: string; medium: string; address: string; purpose: string },
): Promise<ValidationRow | undefined> {
  const rows = await sql.query<ValidationRow>(
    `select * from threepid_validations where client_secret = ? and medium = ? and address = ? and purpose = ?
     order by created_ts desc limit 1`,
    [k.clientSecret, k.medium, k.address, k.purpose],
  );
  return rows[0];
}

/** `forUpdate` locks the row until the caller's transaction ends (token checks count attempts). */
export async function getValidation(sql: Sql, sid: string, forUpdate = false): Promise<ValidationRow | undefined> {
  const rows = await sql.query<ValidationRow>(
    `select * from threepid_validations where sid = ?${forUpdate ? ' for update' : ''}`,
    [sid],
  );
  return rows[0];
}

export async function insertValidation(
  sql: Sql,
  v: {
    sid: string;
    clientSecret: string;
    medium: string;
    address: string;
    purpose: string;
    tokenHash: string;
    sendAttempt: number;
    expiresTs: number;
    nextLink: string | null;
  },
): Promise<void> {
  await sql.query(
    `insert into threepid_validations
       (sid, client_secret, medium, address, purpose, token_hash, send_attempt, created_ts, expires_ts, next_link)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [v.sid, v.clientSecret, v.medium, v.address, v.purpose, v.tokenHash, v.sendAttempt, Date.now(), v.expiresTs, v.nextLink],
  );
}

/** A new email for the same session (higher send_attempt): a fresh token replaces the old one. */
export async function replaceToken(
  sql: Sql,
  sid: string,
  v: { tokenHash: string; sendAttempt: number; expiresTs: number; nextLink: string | null },
): Promise<void> {
  await sql.query(
    `update threepid_validations set token_hash = ?, send_attempt = ?, expires_ts = ?, next_link = ?, failed_attempts = 0
     where sid = ?`,
    [v.tokenHash, v.sendAttempt, v.expiresTs, v.nextLink, sid],
  );
}

/** The token was right: the address is proven, and the session lives on for another lifetime. */
export async function markValidated(sql: Sql, sid: string, now: number, expiresTs: number): Promise<void> {
  await sql.query('update threepid_validations set validated_ts = ?, expires_ts = ? where sid = ?', [now, expiresTs, sid]);
}

/** Counts a wrong token; returns the new count. */
export async function recordFailedAttempt(sql: Sql, sid: string): Promise<number> {
  const rows = await sql.query<{ failed_attempts: number }>(
    'update threepid_validations set failed_attempts = failed_attempts + 1 where sid = ? returning failed_attempts',
    [sid],
  );
  return Number(rows[0]?.failed_attempts ?? 0);
}

/** Uses a validated, unexpired session once; false if it is not (or no longer) usable. */
export async function consumeValidation(sql: Sql, sid: string, now: number): Promise<boolean> {
  const rows = await sql.query(
    `update threepid_validations set consumed_ts = ?
     where sid = ? and consumed_ts is null and validated_ts is not null and expires_ts > ?
     returning sid`,
    [now, sid, now],
  );
  return rows.length === 1;
}

/** Forgets sessions that expired before `before`. */
export async function deleteExpiredValidations(sql: Sql, before: number): Promise<void> {
  await sql.query('delete from threepid_validations where expires_ts < ?', [before]);
}
