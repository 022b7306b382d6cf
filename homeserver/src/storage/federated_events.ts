/**
 * Queries for room events received over federation: the event graph beyond what local writes need
 * (outliers, rejected and soft-failed events, the DAG state of remote events), backfill positions,
 * the transaction answers of /send, and the stripped state of remote invites. Migration 0015.
 */
import type { Sql } from './db.js';
import type { RoomEvent } from '../services/rooms/pdu.js';
import { E_COLUMNS, insertEventEdges, toStored, type EventRow, type StoredEvent } from './events.js';

export interface FederatedEventRow {
  event: RoomEvent;
  /** The exact canonical JSON to store and serve (the redacted form when the content hash failed). */
  json: string;
  /** Null for outliers, rejected and soft-failed events: they are not part of the timeline. */
  streamOrdering: number | null;
  stateAfter: number | null;
  replacesState: string | null;
  outlier: boolean;
  rejectedReason: string | null;
  softFailed: boolean;
}

/**
 * Stores an event, or — when it is already stored as an outlier and now gains its place in the
 * graph — fills in its position (an outlier becomes a timeline event: "de-outliering").
 */
export async function upsertFederatedEvent(sql: Sql, e: FederatedEventRow): Promise<void> {
  const ev = e.event;
  await sql.query(
    `insert into events (event_id, room_id, stream_ordering, depth, type, state_key, sender, origin_server_ts, json, state_after,
       outlier, rejected_reason, soft_failed, replaces_state, created_ts)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     on conflict (event_id) do update set stream_ordering = excluded.stream_ordering, state_after = excluded.state_after,
       outlier = excluded.outlier, rejected_reason = excluded.rejected_reason, soft_failed = excluded.soft_failed,
       replaces_state = excluded.replaces_state
     where events.outlier and not excluded.outlier`,
    [
      ev.event_id, ev.room_id, e.streamOrdering, ev.depth, ev.type, ev.state_key ?? null, ev.sender, ev.origin_server_ts, e.json,
      e.stateAfter, e.outlier, e.rejectedReason, e.softFailed, e.replacesState, Date.now(),
    ],
  );
  await insertEventEdges(sql, ev);
}

/** Which of these events are stored (in any form), with whether each is an outlier and its rejection. */
export async function knownEvents(sql: Sql, eventIds: string[]): Promise<Map<string, { outlier: boolean; rejected: boolean; softFailed: boolean; inTimeline: boolean }>> {
  const out = new Map<string, { outlier: boolean; rejected: boolean; softFailed: boolean; inTimeline: boolean }>();
  if (eventIds.length === 0) return out;
  const rows = await sql.query<{ event_id: string; outlier: boolean; rejected_reason: string | null; soft_failed: boolean; stream_ordering: string | null }>(
    'select event_id, outlier, rejected_reason, soft_failed, stream_ordering from events where event_id in (?)',
    [eventIds],
  );
  for (const r of rows) out.set(r.event_id, { outlier: r.outlier, rejected: r.rejected_reason !== null, softFailed: r.soft_failed, inTimeline: r.stream_ordering !== null });
  return out;
}

export async function setDagState(sql: Sql, eventId: string, roomId: string, before: number | null, after: number | null): Promise<void> {
  await sql.query(
    `insert into event_dag_state (event_id, room_id, state_before, state_after) values (?, ?, ?, ?)
     on conflict (event_id) do update set state_before = excluded.state_before, state_after = excluded.state_after`,
    [eventId, roomId, before, after],
  );
}

export interface DagState {
  before: number | null;
  after: number | null;
}

/**
 * The DAG state of these events: the row of remote events, and for local events (no row, not an
 * outlier) `events.state_after` — the state they were built on plus themselves. Events without a
 * known state (outliers, unknown ids) are absent.
 */
export async function dagStates(sql: Sql, eventIds: string[]): Promise<Map<string, DagState>> {
  const out = new Map<string, DagState>();
  if (eventIds.length === 0) return out;
  const rows = await sql.query<{ event_id: string; d_before: string | null; d_after: string | null; has_row: boolean; outlier: boolean; state_after: string | null }>(
    `select e.event_id, d.state_before as d_before, d.state_after as d_after, d.event_id is not null as has_row, e.outlier, e.state_after
     from events e left join event_dag_state d on d.event_id = e.event_id where e.event_id in (?)`,
    [eventIds],
  );
  const num = (v: string | null) => (v === null ? null : Number(v));
  for (const r of rows) {
    if (r.has_row) out.set(r.event_id, { before: num(r.d_before), after: num(r.d_after) });
    else if (!r.outlier && r.state_after !== null) out.set(r.event_id, { before: null, after: num(r.state_after) });
  }
  return out;
}

/** The state snapshot of the room's newest timeline event: what `current_state` holds (see 0015). */
export async function latestStateSnapshot(sql: Sql, roomId: string): Promise<number | null> {
  const rows = await sql.query<{ state_after: string | null }>(
    'select state_after from events where room_id = ? and stream_ordering > 0 order by stream_ordering desc limit 1',
    [roomId],
  );
  return rows[0]?.state_after == null ? null : Number(rows[0].state_after);
}

export async function deleteCurrentState(sql: Sql, roomId: string, type: string, key: string): Promise<void> {
  await sql.query('delete from current_state where room_id = ? and type = ? and state_key = ?', [roomId, type, key]);
}

/** `n` fresh stream positions, increasing (membership changes that resolution brought with one event). */
export async function nextStreamOrderings(sql: Sql, n: number): Promise<number[]> {
  if (n <= 0) return [];
  const rows = await sql.query<{ pos: string }>(`select nextval('events_stream_seq') as pos from generate_series(1, ?)`, [n]);
  return rows.map((r) => Number(r.pos)).sort((a, b) => a - b);
}

/** A position below every live one (and below earlier backfilled events): backfill goes back in time. */
export async function nextBackfillOrdering(sql: Sql): Promise<number> {
  const rows = await sql.query<{ pos: string }>(`select nextval('events_backfill_seq') as pos`);
  return Number(rows[0]!.pos);
}

export async function setForwardExtremities(sql: Sql, roomId: string, removed: string[], added: string[]): Promise<void> {
  if (removed.length > 0) await sql.query('delete from forward_extremities where room_id = ? and event_id in (?)', [roomId, removed]);
  for (const id of added) await sql.query('insert into forward_extremities (room_id, event_id) values (?, ?) on conflict do nothing', [roomId, id]);
}

export async function forwardExtremityIds(sql: Sql, roomId: string): Promise<string[]> {
  const rows = await sql.query<{ event_id: string }>('select event_id from forward_extremities where room_id = ?', [roomId]);
  return rows.map((r) => r.event_id);
}

/** Events that have these as prev_events (whether an event is still a forward extremity). */
export async function childrenOf(sql: Sql, eventIds: string[]): Promise<Set<string>> {
  if (eventIds.length === 0) return new Set();
  const rows = await sql.query<{ prev_event_id: string }>(
    `select distinct ed.prev_event_id from event_edges ed join events e on e.event_id = ed.event_id
     where ed.prev_event_id in (?) and e.stream_ordering is not null`,
    [eventIds],
  );
  return new Set(rows.map((r) => r.prev_event_id));
}

/**
 * The auth chain of these events as (event, auth event) links: every event reachable through
 * `auth_events`, from the stored graph. Bounded by the room's size (auth chains share events).
 */
export async function authChainLinks(sql: Sql, eventIds: string[]): Promise<{ eventId: string; authEventId: string }[]> {
  if (eventIds.length === 0) return [];
  const rows = await sql.query<{ event_id: string; auth_event_id: string }>(
    `with recursive chain(event_id) as (
       select unnest(array[?]::text[])
       union
       select a.auth_event_id from event_auth a join chain c on a.event_id = c.event_id
     )
     select a.event_id, a.auth_event_id from event_auth a join chain c on a.event_id = c.event_id`,
    [eventIds],
  );
  return rows.map((r) => ({ eventId: r.event_id, authEventId: r.auth_event_id }));
}

/** Stored events with their rows (rejected ones included), by id. */
export async function getEventsWithRejected(sql: Sql, eventIds: string[]): Promise<Map<string, StoredEvent & { softFailed: boolean; outlier: boolean }>> {
  const out = new Map<string, StoredEvent & { softFailed: boolean; outlier: boolean }>();
  if (eventIds.length === 0) return out;
  const rows = await sql.query<EventRow & { soft_failed: boolean }>(`select ${E_COLUMNS}, e.soft_failed from events e where e.event_id in (?)`, [eventIds]);
  for (const r of rows) out.set(r.event_id, { ...toStored(r), softFailed: r.soft_failed, outlier: r.outlier });
  return out;
}

export async function getEventJson(sql: Sql, eventIds: string[]): Promise<Map<string, { roomId: string; json: string; rejected: boolean }>> {
  const out = new Map<string, { roomId: string; json: string; rejected: boolean }>();
  if (eventIds.length === 0) return out;
  const rows = await sql.query<{ event_id: string; room_id: string; json: string; rejected_reason: string | null }>(
    'select event_id, room_id, json, rejected_reason from events where event_id in (?)',
    [eventIds],
  );
  for (const r of rows) out.set(r.event_id, { roomId: r.room_id, json: r.json, rejected: r.rejected_reason !== null });
  return out;
}

/**
 * `get_missing_events`: walking back over prev_events from `latest`, stopping at `earliest`, the
 * events (not rejected, at or above `minDepth`) in breadth-first order, at most `limit`.
 */
export async function missingEventIds(sql: Sql, roomId: string, latest: string[], earliest: string[], limit: number, minDepth: number): Promise<string[]> {
  const rows = await sql.query<{ event_id: string }>(
    `with recursive walk(event_id, n) as (
       select ed.prev_event_id, 1 from event_edges ed where ed.event_id in (?) and ed.room_id = ?
       union
       select ed.prev_event_id, w.n + 1 from walk w join event_edges ed on ed.event_id = w.event_id
       where w.n < ? and not (w.event_id = any(array[?]::text[]))
     )
     select e.event_id from (select event_id, min(n) as n from walk group by event_id) w join events e on e.event_id = w.event_id
     where e.room_id = ? and e.rejected_reason is null and e.depth >= ? and not (e.event_id = any(array[?]::text[])) and not (e.event_id = any(array[?]::text[]))
     order by w.n, e.depth desc limit ?`,
    [latest, roomId, limit + 1, earliest.length ? earliest : [''], roomId, minDepth, earliest.length ? earliest : [''], latest, limit],
  );
  return rows.map((r) => r.event_id);
}

/** Backfill: walking back from `from` over prev_events, at most `limit` events (the given ones included), newest first. */
export async function backfillIds(sql: Sql, roomId: string, from: string[], limit: number): Promise<string[]> {
  const rows = await sql.query<{ event_id: string }>(
    `with recursive walk(event_id, n) as (
       select unnest(array[?]::text[]), 0
       union
       select ed.prev_event_id, w.n + 1 from walk w join event_edges ed on ed.event_id = w.event_id where w.n < ?
     )
     select e.event_id from (select event_id, min(n) as n from walk group by event_id) w join events e on e.event_id = w.event_id
     where e.room_id = ? and e.rejected_reason is null order by e.depth desc, w.n limit ?`,
    [from, limit, roomId, limit],
  );
  return rows.map((r) => r.event_id);
}

/**
 * The room's oldest events in our stream (those whose prev_events we do not have, or hold only as
 * outliers — an out-of-band invite has a position but is not in the timeline): where backfill starts.
 */
export async function backwardExtremities(sql: Sql, roomId: string, limit: number): Promise<string[]> {
  const rows = await sql.query<{ prev_event_id: string }>(
    `select distinct ed.prev_event_id, e.depth from event_edges ed join events e on e.event_id = ed.event_id
     left join events p on p.event_id = ed.prev_event_id
     where ed.room_id = ? and e.stream_ordering is not null and (p.event_id is null or p.stream_ordering is null or p.outlier)
     order by e.depth desc limit ?`,
    [roomId, limit],
  );
  return rows.map((r) => r.prev_event_id);
}

// --- /send transactions ---

export async function getTxnResponse(sql: Sql, origin: string, txnId: string): Promise<string | undefined> {
  const rows = await sql.query<{ response: string }>('select response from federation_txns where origin = ? and txn_id = ?', [origin, txnId]);
  return rows[0]?.response;
}

export async function putTxnResponse(sql: Sql, origin: string, txnId: string, response: string): Promise<void> {
  await sql.query(
    'insert into federation_txns (origin, txn_id, response, created_ts) values (?, ?, ?, ?) on conflict (origin, txn_id) do nothing',
    [origin, txnId, response, Date.now()],
  );
}

export async function pruneTxns(sql: Sql, olderThanTs: number): Promise<void> {
  await sql.query('delete from federation_txns where created_ts < ?', [olderThanTs]);
}

// --- Remote invites ---

export async function putInviteState(sql: Sql, roomId: string, userId: string, eventId: string, strippedJson: string): Promise<void> {
  await sql.query(
    `insert into remote_invite_state (room_id, user_id, event_id, stripped_json) values (?, ?, ?, ?)
     on conflict (room_id, user_id) do update set event_id = excluded.event_id, stripped_json = excluded.stripped_json`,
    [roomId, userId, eventId, strippedJson],
  );
}

export async function getInviteState(sql: Sql, roomId: string, userId: string): Promise<{ eventId: string; stripped: unknown[] } | undefined> {
  const rows = await sql.query<{ event_id: string; stripped_json: string }>('select event_id, stripped_json from remote_invite_state where room_id = ? and user_id = ?', [roomId, userId]);
  if (!rows[0]) return undefined;
  return { eventId: rows[0].event_id, stripped: JSON.parse(rows[0].stripped_json) as unknown[] };
}

/** Servers with a joined member in the room, per current state. */
export async function joinedServers(sql: Sql, roomId: string): Promise<string[]> {
  const rows = await sql.query<{ state_key: string }>(
    `select state_key from current_state where room_id = ? and type = 'm.room.member' and membership = 'join'`,
    [roomId],
  );
  const out = new Set<string>();
  for (const r of rows) {
    const i = r.state_key.indexOf(':');
    if (i > 0) out.add(r.state_key.slice(i + 1));
  }
  return [...out];
}

export async function roomExists(sql: Sql, roomId: string): Promise<string | undefined> {
  const rows = await sql.query<{ room_version: string }>('select room_version from rooms where room_id = ?', [roomId]);
  return rows[0]?.room_version;
}

export async function insertRemoteRoom(sql: Sql, roomId: string, version: string, creator: string): Promise<void> {
  await sql.query('insert into rooms (room_id, room_version, creator, created_ts) values (?, ?, ?, ?) on conflict (room_id) do nothing', [roomId, version, creator, Date.now()]);
}

/** Redaction applied to a stored event (a remote redaction whose target we hold). */
export async function markRedacted(sql: Sql, targetId: string, redactionId: string): Promise<boolean> {
  const rows = await sql.query<{ event_id: string }>('update events set redacted_by = ? where event_id = ? and redacted_by is null returning event_id', [redactionId, targetId]);
  return rows.length > 0;
}


/** The DAG state before the room's first event in our live stream (our join, for rooms joined over federation). */
export async function earliestStateBefore(sql: Sql, roomId: string): Promise<number | null> {
  const rows = await sql.query<{ state_before: string | null }>(
    `select d.state_before from events e join event_dag_state d on d.event_id = e.event_id
     where e.room_id = ? and e.stream_ordering > 0 order by e.stream_ordering asc limit 1`,
    [roomId],
  );
  return rows[0]?.state_before == null ? null : Number(rows[0].state_before);
}

/**
 * After joining a room we held only out-of-band memberships of (an invite, a knock): those rows
 * are in the stream but had no state; they get the state before the join, so the positions just
 * before the join read the room's state as it was when we joined.
 */
export async function adoptOutOfBand(sql: Sql, roomId: string, joinEventId: string): Promise<void> {
  await sql.query(
    `update events set state_after = (select state_before from event_dag_state where event_id = ?)
     where room_id = ? and outlier and stream_ordering is not null and state_after is null`,
    [joinEventId, roomId],
  );
}
