import type { Sql } from './db.js';

export interface MediaRow {
  media_id: string;
  server_name: string;
  user_id: string;
  content_type: string | null;
  upload_name: string | null;
  size: string | null;
  sha256: string | null;
  created_ts: string;
  uploaded_ts: string | null;
  unused_expires_ts: string | null;
}

export interface UploadedContent {
  contentType: string;
  uploadName: string | null;
  size: number;
  sha256: string;
}

/** Records media whose file is already in place (the one-step upload). */
export async function insertUploadedMedia(
  sql: Sql,
  m: { mediaId: string; serverName: string; userId: string; now: number } & UploadedContent,
): Promise<void> {
  await sql.query(
    `insert into media (media_id, server_name, user_id, content_type, upload_name, size, sha256, created_ts, uploaded_ts)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [m.mediaId, m.serverName, m.userId, m.contentType, m.uploadName, m.size, m.sha256, m.now, m.now],
  );
}

/** Reserves a media id for a later upload (`create`). */
export async function insertPendingMedia(
  sql: Sql,
  m: { mediaId: string; serverName: string; userId: string; now: number; expiresTs: number },
): Promise<void> {
  await sql.query(
    `insert into media (media_id, server_name, user_id, created_ts, unused_expires_ts) values (?, ?, ?, ?, ?)`,
    [m.mediaId, m.serverName, m.userId, m.now, m.expiresTs],
  );
}

/** Fills a reserved id with its content; false when it was already filled (or is gone, or another user's). */
export async function completePendingMedia(
  sql: Sql,
  m: { mediaId: string; userId: string; now: number } & UploadedContent,
): Promise<boolean> {
  const rows = await sql.query(
    `update media set content_type = ?, upload_name = ?, size = ?, sha256 = ?, uploaded_ts = ?, unused_expires_ts = null
     where media_id = ? and user_id = ? and sha256 is null
     returning media_id`,
    [m.contentType, m.uploadName, m.size, m.sha256, m.now, m.mediaId, m.userId],
  );
  return rows.length === 1;
}

export async function getMedia(sql: Sql, mediaId: string): Promise<MediaRow | undefined> {
  const rows = await sql.query<MediaRow>('select * from media where media_id = ?', [mediaId]);
  return rows[0];
}

/** Reserved ids of the user still waiting for their upload. */
export async function countPendingMedia(sql: Sql, userId: string, now: number): Promise<number> {
  const rows = await sql.query<{ n: string }>(
    'select count(*) as n from media where user_id = ? and sha256 is null and unused_expires_ts > ?',
    [userId, now],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Forgets reserved ids whose upload never came in time; returns how many. */
export async function deleteExpiredPendingMedia(sql: Sql, now: number): Promise<number> {
  const rows = await sql.query('delete from media where sha256 is null and unused_expires_ts <= ? returning media_id', [now]);
  return rows.length;
}
