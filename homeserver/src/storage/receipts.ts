import type { Sql } from './db.js';

/**
 * Receipts (spec: "Receipts"): one row per (room, type, user, thread). `thread_id` is '' for an
 * unthreaded receipt, 'main' for the main timeline, else the thread root's event id.
 */

/** Receipt types that mark how far a user has read (unread counts follow them). */
const READ_TYPES = ['m.read', 'm.read.private'];

/**
 * The highest `event_stream_ordering` among the user's `m.read`/`m.read.private` receipts in the
 * room (0 when none). Without `threadId`: unthreaded receipts only. With `threadId` ('main' or a
 * thread root): unthreaded receipts and those of that thread, since an unthreaded receipt covers
 * every thread (spec: "Threaded read receipts").
 */
export async function latestReadPosition(sql: Sql, userId: string, roomId: string, threadId?: string): Promise<number> {
  const threads = threadId === undefined || threadId === '' ? [''] : ['', threadId];
  const rows = await sql.query<{ pos: string | null }>(
    `select max(event_stream_ordering) as pos from receipts
     where user_id = ? and room_id = ? and receipt_type in (?) and thread_id in (?)`,
    [userId, roomId, READ_TYPES, threads],
  );
  return rows[0]?.pos == null ? 0 : Number(rows[0].pos);
}

export interface ReceiptRow {
  roomId: string;
  receiptType: string;
  userId: string;
  /** '' for an unthreaded receipt. */
  threadId: string;
  eventId: string;
  eventStreamOrdering: number;
  /** The receipt's content as clients see it: `ts`, and `thread_id` when threaded. */
  data: Record<string, unknown>;
  streamId: number;
}

type Raw = {
  room_id: string;
  receipt_type: string;
  user_id: string;
  thread_id: string;
  event_id: string;
  event_stream_ordering: string;
  data: string;
  stream_id: string;
};
const COLUMNS = 'room_id, receipt_type, user_id, thread_id, event_id, event_stream_ordering, data, stream_id';
const toRow = (r: Raw): ReceiptRow => ({
  roomId: r.room_id,
  receiptType: r.receipt_type,
  userId: r.user_id,
  threadId: r.thread_id,
  eventId: r.event_id,
  eventStreamOrdering: Number(r.event_stream_ordering),
  data: JSON.parse(r.data) as Record<string, unknown>,
  streamId: Number(r.stream_id),
});

/** The user's receipt of this type and thread in the room, if any (for update: call under the lock). */
export async function get(sql: Sql, roomId: string, receiptType: string, userId: string, threadId: string): Promise<ReceiptRow | undefined> {
  const rows = await sql.query<Raw>(`select ${COLUMNS} from receipts where room_id = ? and receipt_type = ? and user_id = ? and thread_id = ?`, [
    roomId,
    receiptType,
    userId,
    threadId,
  ]);
  return rows[0] && toRow(rows[0]);
}

/** Takes the next receipts stream position (call under the receipts lock). */
export async function nextStreamId(sql: Sql): Promise<number> {
  const rows = await sql.query<{ id: string }>("select nextval('receipts_stream') as id");
  return Number(rows[0]!.id);
}

export async function upsert(sql: Sql, r: ReceiptRow): Promise<void> {
  await sql.query(
    `insert into receipts (${COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?)
     on conflict (room_id, receipt_type, user_id, thread_id) do update set
       event_id = excluded.event_id, event_stream_ordering = excluded.event_stream_ordering,
       data = excluded.data, stream_id = excluded.stream_id`,
    [r.roomId, r.receiptType, r.userId, r.threadId, r.eventId, r.eventStreamOrdering, JSON.stringify(r.data), r.streamId],
  );
}

/**
 * The newest committed receipts stream position (0 when none). Positions commit in order (the
 * receipts lock), so a snapshot that sees this one sees every receipt at or below it.
 */
export async function maxStreamId(sql: Sql): Promise<number> {
  const rows = await sql.query<{ pos: string | null }>('select max(stream_id) as pos from receipts');
  return rows[0]?.pos == null ? 0 : Number(rows[0].pos);
}

/** Receipts in these rooms changed in (after, upTo], oldest first. */
export async function changedBetween(sql: Sql, roomIds: readonly string[], after: number, upTo: number): Promise<ReceiptRow[]> {
  if (roomIds.length === 0 || after >= upTo) return [];
  const rows = await sql.query<Raw>(`select ${COLUMNS} from receipts where stream_id > ? and stream_id <= ? and room_id in (?) order by stream_id`, [
    after,
    upTo,
    [...roomIds],
  ]);
  return rows.map(toRow);
}

/** Every receipt in these rooms at or below `upTo`: public ones of everyone, private ones of `userId` only. */
export async function inRooms(sql: Sql, roomIds: readonly string[], userId: string, upTo: number): Promise<ReceiptRow[]> {
  if (roomIds.length === 0) return [];
  const rows = await sql.query<Raw>(
    `select ${COLUMNS} from receipts where room_id in (?) and stream_id <= ? and (receipt_type <> 'm.read.private' or user_id = ?)`,
    [[...roomIds], upTo, userId],
  );
  return rows.map(toRow);
}
