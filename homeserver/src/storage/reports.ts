import type { Sql } from './db.js';

export interface NewReport {
  reporter: string;
  kind: 'event' | 'room' | 'user';
  roomId?: string;
  eventId?: string;
  targetUserId?: string;
  reason?: string;
}

/** Stores a content report for the server's administrators (report_content.yaml). */
export async function insertReport(sql: Sql, r: NewReport): Promise<void> {
  await sql.query(
    'insert into content_reports (reporter, kind, room_id, event_id, target_user_id, reason, received_ts) values (?, ?, ?, ?, ?, ?, ?)',
    [r.reporter, r.kind, r.roomId ?? null, r.eventId ?? null, r.targetUserId ?? null, r.reason ?? null, Date.now()],
  );
}

export async function listReports(sql: Sql): Promise<(NewReport & { receivedTs: number })[]> {
  const rows = await sql.query<Record<string, string | null>>('select * from content_reports order by report_id');
  return rows.map((r) => ({
    reporter: r.reporter!,
    kind: r.kind as NewReport['kind'],
    ...(r.room_id ? { roomId: r.room_id } : {}),
    ...(r.event_id ? { eventId: r.event_id } : {}),
    ...(r.target_user_id ? { targetUserId: r.target_user_id } : {}),
    ...(r.reason !== null ? { reason: r.reason! } : {}),
    receivedTs: Number(r.received_ts),
  }));
}
