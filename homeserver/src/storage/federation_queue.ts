import type { Sql } from './db.js';

/** The outgoing federation queue: destinations (cursor, back-off, lease), the outbox, stream cursors. */

export interface DestinationRow {
  destination: string;
  streamCursor: number;
  catchUpTarget: number | null;
  retryCount: number;
  retryUntilTs: number;
  txnSeq: number;
  leaseOwner: string | null;
  leaseUntilTs: number;
}

type RawDestination = {
  destination: string;
  stream_cursor: string;
  catch_up_target: string | null;
  retry_count: number;
  retry_until_ts: string;
  txn_seq: string;
  lease_owner: string | null;
  lease_until_ts: string;
};

const toDestination = (r: RawDestination): DestinationRow => ({
  destination: r.destination,
  streamCursor: Number(r.stream_cursor),
  catchUpTarget: r.catch_up_target === null ? null : Number(r.catch_up_target),
  retryCount: Number(r.retry_count),
  retryUntilTs: Number(r.retry_until_ts),
  txnSeq: Number(r.txn_seq),
  leaseOwner: r.lease_owner,
  leaseUntilTs: Number(r.lease_until_ts),
});

/** Creates the destination's row with its cursor at `cursor` unless it exists. */
export async function ensureDestinations(sql: Sql, destinations: string[], cursor: number): Promise<void> {
  if (destinations.length === 0) return;
  await sql.query(
    `insert into federation_destinations (destination, stream_cursor) values ${destinations.map(() => '(?, ?)').join(', ')} on conflict do nothing`,
    destinations.flatMap((d) => [d, cursor]),
  );
}

export async function getDestination(sql: Sql, destination: string): Promise<DestinationRow | undefined> {
  const rows = await sql.query<RawDestination>('select * from federation_destinations where destination = ?', [destination]);
  return rows[0] ? toDestination(rows[0]) : undefined;
}

export async function allDestinations(sql: Sql): Promise<string[]> {
  const rows = await sql.query<{ destination: string }>('select destination from federation_destinations');
  return rows.map((r) => r.destination);
}

/**
 * Takes (or renews) the destination's lease for `owner` until `until`, unless another live owner
 * holds it. Returns the row when the lease is ours, else undefined.
 */
export async function claimLease(sql: Sql, destination: string, owner: string, now: number, until: number): Promise<DestinationRow | undefined> {
  const rows = await sql.query<RawDestination>(
    `update federation_destinations set lease_owner = ?, lease_until_ts = ?
     where destination = ? and (lease_owner is null or lease_owner = ? or lease_until_ts < ?) returning *`,
    [owner, until, destination, owner, now],
  );
  return rows[0] ? toDestination(rows[0]) : undefined;
}

export async function releaseLease(sql: Sql, destination: string, owner: string): Promise<void> {
  await sql.query('update federation_destinations set lease_owner = null, lease_until_ts = 0 where destination = ? and lease_owner = ?', [destination, owner]);
}

/** Every lease of `owner` (a process shutting down). */
export async function releaseAllLeases(sql: Sql, owner: string): Promise<void> {
  await sql.query('update federation_destinations set lease_owner = null, lease_until_ts = 0 where lease_owner = ?', [owner]);
}

/** Every lease, whoever holds it (a process that alone uses its database, starting: any lease is a dead predecessor's). */
export async function clearLeases(sql: Sql): Promise<void> {
  await sql.query('update federation_destinations set lease_owner = null, lease_until_ts = 0 where lease_owner is not null');
}

/** The next transaction number of the destination (unique over restarts: it is stored). */
export async function nextTxnSeq(sql: Sql, destination: string): Promise<number> {
  const rows = await sql.query<{ txn_seq: string }>('update federation_destinations set txn_seq = txn_seq + 1 where destination = ? returning txn_seq', [destination]);
  return Number(rows[0]!.txn_seq);
}

export async function setCatchUpTarget(sql: Sql, destination: string, target: number | null): Promise<void> {
  await sql.query('update federation_destinations set catch_up_target = ? where destination = ?', [target, destination]);
}

/** A transaction was answered 200: the cursor moves (never back), the back-off resets. */
export async function markSent(sql: Sql, destination: string, cursor: number, clearCatchUp: boolean, now: number): Promise<void> {
  await sql.query(
    `update federation_destinations set stream_cursor = greatest(stream_cursor, ?), retry_count = 0, retry_until_ts = 0, last_success_ts = ?,
       catch_up_target = case when ? then null else catch_up_target end
     where destination = ?`,
    [cursor, now, clearCatchUp, destination],
  );
}

/** Moves the cursor over a range that held nothing for the destination. */
export async function advanceCursor(sql: Sql, destination: string, cursor: number, clearCatchUp: boolean): Promise<void> {
  await sql.query(
    `update federation_destinations set stream_cursor = greatest(stream_cursor, ?), catch_up_target = case when ? then null else catch_up_target end where destination = ?`,
    [cursor, clearCatchUp, destination],
  );
}

/** A transaction failed: back off; a catch-up restarts from the newest events at the next attempt. */
export async function markFailed(sql: Sql, destination: string, retryCount: number, retryUntil: number): Promise<void> {
  await sql.query('update federation_destinations set retry_count = ?, retry_until_ts = ?, catch_up_target = null where destination = ?', [retryCount, retryUntil, destination]);
}

// --- PDUs from the events table ---

export interface PduRow {
  streamOrdering: number;
  roomId: string;
  eventId: string;
  json: string;
}

type RawPdu = { stream_ordering: string; room_id: string; event_id: string; json: string };
const toPdu = (r: RawPdu): PduRow => ({ streamOrdering: Number(r.stream_ordering), roomId: r.room_id, eventId: r.event_id, json: r.json });

/** `%` and `_` are LIKE wildcards; a server name never holds them, but escape anyway. */
const likeSuffix = (serverName: string) => `%:${serverName.replace(/[\\%_]/g, (c) => `\\${c}`)}`;

/** The newest committed events position. */
export async function maxStreamOrdering(sql: Sql): Promise<number> {
  const rows = await sql.query<{ pos: string | null }>('select max(stream_ordering) as pos from events');
  return Number(rows[0]?.pos ?? 0);
}

/** Our own events in these rooms with positions in (after, upTo], oldest first. */
export async function localEventsBetween(sql: Sql, serverName: string, roomIds: string[], after: number, upTo: number, limit: number): Promise<PduRow[]> {
  if (roomIds.length === 0 || after >= upTo) return [];
  const rows = await sql.query<RawPdu>(
    `select stream_ordering, room_id, event_id, json from events
     where room_id in (?) and stream_ordering > ? and stream_ordering <= ? and sender like ? and rejected_reason is null
     order by stream_ordering limit ?`,
    [roomIds, after, upTo, likeSuffix(serverName), limit],
  );
  return rows.map(toPdu);
}

/**
 * Catch-up: of our own events in these rooms with positions in (after, upTo], only the newest
 * `perRoom` of each room (as ranked over (after, upTo]), oldest first. The peer fetches the gaps.
 */
export async function newestLocalEventsPerRoom(sql: Sql, serverName: string, roomIds: string[], after: number, upTo: number, perRoom: number, limit: number): Promise<PduRow[]> {
  if (roomIds.length === 0 || after >= upTo) return [];
  const rows = await sql.query<RawPdu>(
    `select stream_ordering, room_id, event_id, json from (
       select stream_ordering, room_id, event_id, json, row_number() over (partition by room_id order by stream_ordering desc) as rank
       from events where room_id in (?) and stream_ordering > ? and stream_ordering <= ? and sender like ? and rejected_reason is null
     ) ranked where rank <= ? order by stream_ordering limit ?`,
    [roomIds, after, upTo, likeSuffix(serverName), perRoom, limit],
  );
  return rows.map(toPdu);
}

/** Per room, the first of our own events after `after` (which destinations have something new). */
export async function roomsWithLocalEvents(sql: Sql, serverName: string, after: number, upTo: number): Promise<{ roomId: string; first: number }[]> {
  if (after >= upTo) return [];
  const rows = await sql.query<{ room_id: string; first: string }>(
    `select room_id, min(stream_ordering) as first from events where stream_ordering > ? and stream_ordering <= ? and sender like ? group by room_id`,
    [after, upTo, likeSuffix(serverName)],
  );
  return rows.map((r) => ({ roomId: r.room_id, first: Number(r.first) }));
}

export async function getPduJson(sql: Sql, eventIds: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (eventIds.length === 0) return out;
  for (const r of await sql.query<{ event_id: string; json: string }>('select event_id, json from events where event_id in (?)', [eventIds])) out.set(r.event_id, r.json);
  return out;
}

// --- Room hosts ---

export async function joinedRoomsOf(sql: Sql, userId: string): Promise<string[]> {
  const rows = await sql.query<{ room_id: string }>(
    `select room_id from current_state where type = 'm.room.member' and state_key = ? and membership = 'join'`,
    [userId],
  );
  return rows.map((r) => r.room_id);
}

// --- Outbox ---

export interface OutboxEdu {
  destination: string;
  eduType: string;
  content: string;
  /** Replaces the queued EDU with the same key for that destination (only the newest matters). */
  coalesceKey?: string;
}

export async function enqueueEdus(sql: Sql, edus: OutboxEdu[], now: number): Promise<void> {
  for (let i = 0; i < edus.length; i += 200) {
    const chunk = edus.slice(i, i + 200);
    await sql.query(
      `insert into federation_outbox (destination, edu_type, content, coalesce_key, created_ts) values ${chunk.map(() => '(?, ?, ?, ?, ?)').join(', ')}
       on conflict (destination, coalesce_key) where coalesce_key is not null
       do update set content = excluded.content, created_ts = excluded.created_ts, id = nextval('federation_outbox_seq')`,
      chunk.flatMap((e) => [e.destination, e.eduType, e.content, e.coalesceKey ?? null, now]),
    );
  }
}

export async function enqueuePdus(sql: Sql, destinations: string[], eventId: string, now: number): Promise<void> {
  if (destinations.length === 0) return;
  await sql.query(
    `insert into federation_outbox (destination, event_id, created_ts) values ${destinations.map(() => '(?, ?, ?)').join(', ')}`,
    destinations.flatMap((d) => [d, eventId, now]),
  );
}

export interface OutboxRow {
  id: number;
  eventId: string | null;
  eduType: string | null;
  content: string | null;
  createdTs: number;
}

/** The destination's oldest queued forwarded PDUs (`pdus`) or EDUs. */
export async function peekOutbox(sql: Sql, destination: string, kind: 'pdus' | 'edus', limit: number): Promise<OutboxRow[]> {
  const rows = await sql.query<{ id: string; event_id: string | null; edu_type: string | null; content: string | null; created_ts: string }>(
    `select id, event_id, edu_type, content, created_ts from federation_outbox
     where destination = ? and ${kind === 'pdus' ? 'event_id is not null' : 'edu_type is not null'} order by id limit ?`,
    [destination, limit],
  );
  return rows.map((r) => ({ id: Number(r.id), eventId: r.event_id, eduType: r.edu_type, content: r.content, createdTs: Number(r.created_ts) }));
}

export async function deleteOutbox(sql: Sql, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await sql.query('delete from federation_outbox where id in (?)', [ids]);
}

export async function hasOutbox(sql: Sql, destination: string): Promise<boolean> {
  const rows = await sql.query('select 1 from federation_outbox where destination = ? limit 1', [destination]);
  return rows.length > 0;
}

// --- Stream cursors (local streams turned into EDUs) ---

/** Locks the stream's cursor row for this transaction (created at `initial` if missing) and reads it. */
export async function lockStreamCursor(sql: Sql, stream: string, initial: number): Promise<number> {
  await sql.query('insert into federation_stream_cursors (stream, position) values (?, ?) on conflict do nothing', [stream, initial]);
  const rows = await sql.query<{ position: string }>('select position from federation_stream_cursors where stream = ? for update', [stream]);
  return Number(rows[0]!.position);
}

export async function setStreamCursor(sql: Sql, stream: string, position: number): Promise<void> {
  await sql.query('update federation_stream_cursors set position = ? where stream = ?', [position, stream]);
}

export async function readStreamCursor(sql: Sql, stream: string): Promise<number> {
  const rows = await sql.query<{ position: string }>('select position from federation_stream_cursors where stream = ?', [stream]);
  return Number(rows[0]?.position ?? 0);
}
