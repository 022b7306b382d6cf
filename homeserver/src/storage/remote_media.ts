import type { Sql } from './db.js';

/** Remote media cached in the local media store (table `remote_media`, migration 0016). */
export interface RemoteMediaRow {
  server_name: string;
  media_id: string;
  content_type: string | null;
  upload_name: string | null;
  size: string;
  sha256: string;
  fetched_ts: string;
}

export async function getRemoteMedia(sql: Sql, serverName: string, mediaId: string): Promise<RemoteMediaRow | undefined> {
  const rows = await sql.query<RemoteMediaRow>('select * from remote_media where server_name = ? and media_id = ?', [serverName, mediaId]);
  return rows[0];
}

/** Records a fetched file (already in the store). A row another process wrote meanwhile is replaced: both name whole files. */
export async function upsertRemoteMedia(
  sql: Sql,
  m: { serverName: string; mediaId: string; contentType: string; uploadName: string | null; size: number; sha256: string; now: number },
): Promise<void> {
  await sql.query(
    `insert into remote_media (server_name, media_id, content_type, upload_name, size, sha256, fetched_ts) values (?, ?, ?, ?, ?, ?, ?)
     on conflict (server_name, media_id) do update set content_type = excluded.content_type, upload_name = excluded.upload_name,
       size = excluded.size, sha256 = excluded.sha256, fetched_ts = excluded.fetched_ts`,
    [m.serverName, m.mediaId, m.contentType, m.uploadName, m.size, m.sha256, m.now],
  );
}
