import type { Sql } from './db.js';
import type { RoomEvent } from '../services/rooms/pdu.js';
import { sha256Hex } from '../core/ids.js';

export interface EventRow {
  event_id: string;
  room_id: string;
  stream_ordering: string | null;
  depth: string;
  type: string;
  state_key: string | null;
  sender: string;
  origin_server_ts: string;
  json: string;
  state_after: string | null;
  outlier: boolean;
  rejected_reason: string | null;
  redacted_by: string | null;
  replaces_state: string | null;
}

/** A stored event: the PDU (with its id) plus where it sits in our streams. */
export interface StoredEvent {
  event: RoomEvent;
  streamOrdering: number | null;
  stateAfter: number | null;
  redactedBy: string | null;
  /** For state events: the event this one replaced in the room state (gives `prev_content`). */
  replacesState: string | null;
  rejected: boolean;
}

export function toStored(row: EventRow): StoredEvent {
  const pdu = JSON.parse(row.json) as Omit<RoomEvent, 'event_id' | 'room_id'> & { room_id?: string };
  return {
    // A room version 12 create event has no room_id in its JSON: the row's (its implied one) is used.
    event: { room_id: row.room_id, ...pdu, event_id: row.event_id } as RoomEvent,
    streamOrdering: row.stream_ordering === null ? null : Number(row.stream_ordering),
    stateAfter: row.state_after === null ? null : Number(row.state_after),
    redactedBy: row.redacted_by,
    replacesState: row.replaces_state,
    rejected: row.rejected_reason !== null,
  };
}

const COLUMNS =
  'event_id, room_id, stream_ordering, depth, type, state_key, sender, origin_server_ts, json, state_after, outlier, rejected_reason, redacted_by, replaces_state';
/** COLUMNS of the `events` table aliased as `e` in a join. */
export const E_COLUMNS = COLUMNS.split(', ').map((c) => `e.${c}`).join(', ');

export async function getEvents(sql: Sql, eventIds: string[]): Promise<Map<string, StoredEvent>> {
  const out = new Map<string, StoredEvent>();
  if (eventIds.length === 0) return out;
  const rows = await sql.query<EventRow>(`select ${COLUMNS} from events where event_id in (?)`, [eventIds]);
  for (const r of rows) out.set(r.event_id, toStored(r));
  return out;
}

export async function getEvent(sql: Sql, eventId: string): Promise<StoredEvent | undefined> {
  return (await getEvents(sql, [eventId])).get(eventId);
}

/** The room's current state events of the given types with one state key (by default ''), by type. */
export async function currentStateEvents(sql: Sql, roomId: string, types: string[], stateKey = ''): Promise<Map<string, StoredEvent>> {
  const out = new Map<string, StoredEvent>();
  if (types.length === 0) return out;
  const rows = await sql.query<EventRow>(
    `select ${E_COLUMNS} from current_state cs join events e on e.event_id = cs.event_id
     where cs.room_id = ? and cs.state_key = ? and cs.type in (?)`,
    [roomId, stateKey, types],
  );
  for (const r of rows) out.set(r.type, toStored(r));
  return out;
}

export interface NewEventRow {
  event: RoomEvent;
  json: string;
  streamOrdering: number;
  stateAfter: number | null;
  replacesState?: string | null;
}

export async function insertEvent(sql: Sql, e: NewEventRow): Promise<void> {
  const ev = e.event;
  await sql.query(
    `insert into events (event_id, room_id, stream_ordering, depth, type, state_key, sender, origin_server_ts, json, state_after, replaces_state, created_ts)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [ev.event_id, ev.room_id, e.streamOrdering, ev.depth, ev.type, ev.state_key ?? null, ev.sender, ev.origin_server_ts, e.json, e.stateAfter, e.replacesState ?? null, Date.now()],
  );
  await insertEventEdges(sql, ev);
}

export async function nextStreamOrdering(sql: Sql): Promise<number> {
  const rows = await sql.query<{ pos: string }>(`select nextval('events_stream_seq') as pos`);
  return Number(rows[0]!.pos);
}

/** The highest committed stream position (callers read it outside the writers' lock). */
export async function maxStreamOrdering(sql: Sql): Promise<number> {
  const rows = await sql.query<{ pos: string | null }>('select max(stream_ordering) as pos from events');
  return Number(rows[0]?.pos ?? 0);
}

export async function getForwardExtremities(sql: Sql, roomId: string): Promise<{ event_id: string; depth: number; state_after: number | null }[]> {
  const rows = await sql.query<{ event_id: string; depth: string; state_after: string | null }>(
    `select f.event_id, e.depth, e.state_after from forward_extremities f join events e on e.event_id = f.event_id
     where f.room_id = ? order by e.depth desc, e.stream_ordering desc`,
    [roomId],
  );
  return rows.map((r) => ({ event_id: r.event_id, depth: Number(r.depth), state_after: r.state_after === null ? null : Number(r.state_after) }));
}

export async function replaceForwardExtremities(sql: Sql, roomId: string, removed: string[], added: string): Promise<void> {
  if (removed.length > 0) {
    await sql.query('delete from forward_extremities where room_id = ? and event_id in (?)', [roomId, removed]);
  }
  await sql.query('insert into forward_extremities (room_id, event_id) values (?, ?) on conflict do nothing', [roomId, added]);
}

/**
 * A transaction id is scoped to one device *and* one endpoint (spec: "Transaction identifiers"): the
 * same id sent to another room, event type or endpoint is a new request. The endpoint's scope is
 * folded into the stored key as a fixed-length hash prefix, and `txnIdsFor` hands clients back the
 * id they chose.
 */
export function scopedTxnId(scope: string, txnId: string): string {
  return `${sha256Hex(scope).slice(0, 32)}:${txnId}`;
}

const SCOPED_TXN = /^[0-9a-f]{32}:/;
const clientTxnId = (stored: string) => (SCOPED_TXN.test(stored) ? stored.slice(33) : stored);

export async function findTxn(sql: Sql, userId: string, deviceId: string, txnId: string): Promise<string | undefined> {
  const rows = await sql.query<{ event_id: string }>(
    'select event_id from event_txns where user_id = ? and device_id = ? and txn_id = ?',
    [userId, deviceId, txnId],
  );
  return rows[0]?.event_id;
}

export async function insertTxn(sql: Sql, userId: string, deviceId: string, txnId: string, eventId: string): Promise<void> {
  await sql.query('insert into event_txns (user_id, device_id, txn_id, event_id, created_ts) values (?, ?, ?, ?, ?)', [
    userId,
    deviceId,
    txnId,
    eventId,
    Date.now(),
  ]);
}

export async function insertMembershipChange(
  sql: Sql,
  c: { streamOrdering: number; roomId: string; userId: string; membership: string; eventId: string },
): Promise<void> {
  await sql.query(
    'insert into membership_changes (stream_ordering, room_id, user_id, membership, event_id) values (?, ?, ?, ?, ?)',
    [c.streamOrdering, c.roomId, c.userId, c.membership, c.eventId],
  );
}

/** Transaction ids of the given events that `userId` sent from `deviceId` (clients match their echo by it). */
export async function txnIdsFor(sql: Sql, userId: string, deviceId: string, eventIds: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (eventIds.length === 0) return out;
  const rows = await sql.query<{ event_id: string; txn_id: string }>(
    'select event_id, txn_id from event_txns where user_id = ? and device_id = ? and event_id in (?)',
    [userId, deviceId, eventIds],
  );
  for (const r of rows) out.set(r.event_id, clientTxnId(r.txn_id));
  return out;
}

/** Events of a room in stream order between two positions: (from, to], newest first or oldest first. */
export async function roomEventsBetween(
  sql: Sql,
  roomId: string,
  opts: { after: number; upTo: number; limit: number; newestFirst: boolean; types?: string[]; notTypes?: string[] },
): Promise<StoredEvent[]> {
  const params: unknown[] = [roomId, opts.after, opts.upTo];
  // Outliers with a position are out-of-band memberships of rooms we were not in (federation): never timeline.
  let where = 'room_id = ? and stream_ordering > ? and stream_ordering <= ? and rejected_reason is null and not outlier';
  if (opts.types && opts.types.length > 0 && !opts.types.some((t) => t.includes('*'))) {
    where += ' and type in (?)';
    params.push(opts.types);
  }
  if (opts.notTypes && opts.notTypes.length > 0 && !opts.notTypes.some((t) => t.includes('*'))) {
    where += ' and type not in (?)';
    params.push(opts.notTypes);
  }
  params.push(opts.limit);
  const rows = await sql.query<EventRow>(
    `select ${COLUMNS} from events where ${where} order by stream_ordering ${opts.newestFirst ? 'desc' : 'asc'} limit ?`,
    params,
  );
  return rows.map(toStored);
}

/** The state snapshot in force just before `position` in a room (after the last event at or before it). */
export async function stateSnapshotAt(sql: Sql, roomId: string, position: number): Promise<number | null> {
  const rows = await sql.query<{ state_after: string | null }>(
    `select state_after from events where room_id = ? and stream_ordering <= ? and stream_ordering is not null
     order by stream_ordering desc limit 1`,
    [roomId, position],
  );
  return rows[0]?.state_after == null ? null : Number(rows[0].state_after);
}

/** The event's graph edges: its prev_events and auth_events (idempotent). */
export async function insertEventEdges(sql: Sql, ev: { event_id: string; room_id: string; prev_events: string[]; auth_events: string[] }): Promise<void> {
  if (ev.prev_events.length > 0) {
    await sql.query(
      `insert into event_edges (event_id, prev_event_id, room_id) values ${ev.prev_events.map(() => '(?, ?, ?)').join(', ')} on conflict do nothing`,
      ev.prev_events.flatMap((p) => [ev.event_id, p, ev.room_id]),
    );
  }
  if (ev.auth_events.length > 0) {
    await sql.query(
      `insert into event_auth (event_id, auth_event_id) values ${ev.auth_events.map(() => '(?, ?)').join(', ')} on conflict do nothing`,
      ev.auth_events.flatMap((a) => [ev.event_id, a]),
    );
  }
}
