/**
 * Queries for room events received over federation: the event graph beyond what local writes need
 * (outliers, rejected and soft-failed events, the DAG state of remote events), backfill positions,
 * the transaction answers of /send, and the stripped state of remote invites. Migration 0015.
 */
import type { Sql } from './db.js';
import { stateKey, type RoomEvent, type StateKey, type StateMap } from '../services/rooms/pdu.js';
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
  /** The event's DAG state, written in the same statement (setDagState). */
  dag?: { before: number | null; after: number | null };
}

/**
 * Stores an event, or — when it is already stored as an outlier and now gains its place in the
 * graph — fills in its position (an outlier becomes a timeline event: "de-outliering").
 */
export async function upsertFederatedEvent(sql: Sql, e: FederatedEventRow): Promise<void> {
  const ev = e.event;
  // One statement for the row and its edges (the per-PDU path of /send counts round trips); ids
  // with a NUL take the separate inserts, whose parameter check refuses them as before.
  const oneStatement = ![...ev.prev_events, ...ev.auth_events].some((id) => id.includes('\u0000'));
  await sql.query(
    `with e as (
       insert into events (event_id, room_id, stream_ordering, depth, type, state_key, sender, origin_server_ts, json, state_after,
         outlier, rejected_reason, soft_failed, replaces_state, created_ts)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       on conflict (event_id) do update set stream_ordering = excluded.stream_ordering, state_after = excluded.state_after,
         outlier = excluded.outlier, rejected_reason = excluded.rejected_reason, soft_failed = excluded.soft_failed,
         replaces_state = excluded.replaces_state
       where events.outlier and not excluded.outlier
       returning 1
     )${oneStatement ? `, ed as (
       insert into event_edges (event_id, prev_event_id, room_id) select ?, p, ? from json_array_elements_text(?::json) p on conflict do nothing
     ), au as (
       insert into event_auth (event_id, auth_event_id) select ?, a from json_array_elements_text(?::json) a on conflict do nothing
     )` : ''}${e.dag ? `, dg as (
       insert into event_dag_state (event_id, room_id, state_before, state_after) values (?, ?, ?, ?)
       on conflict (event_id) do update set state_before = excluded.state_before, state_after = excluded.state_after
     )` : ''}
     select count(*) from e`,
    [
      ev.event_id, ev.room_id, e.streamOrdering, ev.depth, ev.type, ev.state_key ?? null, ev.sender, ev.origin_server_ts, e.json,
      e.stateAfter, e.outlier, e.rejectedReason, e.softFailed, e.replacesState, Date.now(),
      ...(oneStatement ? [ev.event_id, ev.room_id, JSON.stringify(ev.prev_events), ev.event_id, JSON.stringify(ev.auth_events)] : []),
      ...(e.dag ? [ev.event_id, ev.room_id, e.dag.before, e.dag.after] : []),
    ],
  );
  if (!oneStatement) await insertEventEdges(sql, ev);
}

/** Rows per statement of the batched inserts below (each row travels inside one JSON parameter). */
const OUTLIER_BATCH = 1000;
/** A NUL anywhere in the event shows in its canonical JSON as the escape `\u0000`. */
const mayHoldNul = (json: string) => json.includes('\\u0000');

/**
 * Stores many outliers (state and auth chains of a join, fetched auth events) with a few
 * statements instead of three per event: the rows travel as one JSON parameter per batch
 * (json_to_recordset), as push_actions.insertActions does. An event already stored keeps its row,
 * as upsertFederatedEvent does for an outlier. Events that may hold a NUL (PostgreSQL's json
 * cannot turn `\u0000` into text) take the single-row path, which stores or refuses them as before.
 */
export async function insertOutliers(sql: Sql, list: { event: RoomEvent; json: string; rejectedReason: string | null }[]): Promise<void> {
  const batchable = list.filter((o) => !mayHoldNul(o.json));
  for (const o of list) {
    if (!mayHoldNul(o.json)) continue;
    await upsertFederatedEvent(sql, { event: o.event, json: o.json, streamOrdering: null, stateAfter: null, replacesState: null, outlier: true, rejectedReason: o.rejectedReason, softFailed: false });
  }
  const now = Date.now();
  for (let i = 0; i < batchable.length; i += OUTLIER_BATCH) {
    const batch = batchable.slice(i, i + OUTLIER_BATCH);
    await sql.query(
      `insert into events (event_id, room_id, stream_ordering, depth, type, state_key, sender, origin_server_ts, json, state_after,
         outlier, rejected_reason, soft_failed, replaces_state, created_ts)
       select x.event_id, x.room_id, null, x.depth, x.type, x.state_key, x.sender, x.ts, x.json, null, true, x.rejected_reason, false, null, ?
       from json_to_recordset(?::json) as x(event_id text, room_id text, depth bigint, type text, state_key text, sender text, ts bigint, json text, rejected_reason text)
       on conflict (event_id) do nothing`,
      [
        now,
        JSON.stringify(
          batch.map(({ event: e, json, rejectedReason }) => ({
            event_id: e.event_id, room_id: e.room_id, depth: e.depth, type: e.type, state_key: e.state_key ?? null, sender: e.sender,
            ts: e.origin_server_ts, json, rejected_reason: rejectedReason,
          })),
        ),
      ],
    );
    const edges = batch.flatMap(({ event: e }) => e.prev_events.map((p) => ({ e: e.event_id, p, r: e.room_id })));
    if (edges.length > 0) {
      await sql.query(
        `insert into event_edges (event_id, prev_event_id, room_id) select x.e, x.p, x.r from json_to_recordset(?::json) as x(e text, p text, r text) on conflict do nothing`,
        [JSON.stringify(edges)],
      );
    }
    const auth = batch.flatMap(({ event: e }) => e.auth_events.map((a) => ({ e: e.event_id, a })));
    if (auth.length > 0) {
      await sql.query(`insert into event_auth (event_id, auth_event_id) select x.e, x.a from json_to_recordset(?::json) as x(e text, a text) on conflict do nothing`, [
        JSON.stringify(auth),
      ]);
    }
  }
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

/**
 * What persisting an event reads first, in one query: whether the event is stored (and as an
 * outlier), the room's forward extremities, its newest timeline event's state snapshot and the
 * given entries of its current state (knownEvents, forwardExtremityIds, latestStateSnapshot and
 * state.getCurrentStateEntries together); with `withPosition`, a fresh stream position too (the
 * caller holds the stream lock).
 */
export async function persistContext(
  sql: Sql,
  eventId: string,
  roomId: string,
  keys: StateKey[],
  withPosition = false,
): Promise<{ known?: { outlier: boolean }; extremities: string[]; latestSnapshot: number | null; current: StateMap; position?: number }> {
  const pairs = keys.map((k) => [k.slice(0, k.indexOf('\u0000')), k.slice(k.indexOf('\u0000') + 1)]);
  const rows = await sql.query<{ outlier: boolean | null; extremities: string[] | null; latest: string | null; current: [string, string, string][] | null; pos: string | null }>(
    `select (select outlier from events where event_id = ?) as outlier, ${withPosition ? `nextval('events_stream_seq')` : 'null'} as pos,
       (select array_agg(event_id) from forward_extremities where room_id = ?) as extremities,
       (select state_after from events where room_id = ? and stream_ordering > 0 order by stream_ordering desc limit 1) as latest,
       ${pairs.length === 0 ? 'null' : `(select json_agg(json_build_array(k.type, k.state_key, x.event_id)) from (values ${pairs.map(() => '(?::text, ?::text)').join(', ')}) k(type, state_key)
         cross join lateral (select cs.event_id from current_state cs where cs.room_id = ? and cs.type = k.type and cs.state_key = k.state_key limit 1) x)`} as current`,
    [eventId, roomId, roomId, ...(pairs.length === 0 ? [] : [...pairs.flat(), roomId])],
  );
  const r = rows[0]!;
  const current: StateMap = new Map();
  for (const [type, key, id] of r.current ?? []) current.set(stateKey(type, key), id);
  return {
    known: r.outlier === null ? undefined : { outlier: r.outlier },
    extremities: r.extremities ?? [],
    latestSnapshot: r.latest === null ? null : Number(r.latest),
    current,
    position: r.pos === null ? undefined : Number(r.pos),
  };
}

/**
 * The stored events of a snapshot's given entries (the few the auth rules read), in one query:
 * the delta chain is walked by primary key (laterals with `limit 1`, as state.loadSnapshotEntries)
 * and the entries found are joined to their events. Rejected ones included (`rejected`).
 */
export async function snapshotEntryEvents(sql: Sql, snapshotId: number, keys: [string, string][]): Promise<Map<string, StoredEvent>> {
  const out = new Map<string, StoredEvent>();
  if (keys.length === 0) return out;
  const rows = await sql.query<EventRow>(
    `with recursive chain(snapshot_id, prev_snapshot, n) as (
       select snapshot_id, prev_snapshot, 0 from state_snapshots where snapshot_id = ?
       union all
       select s.snapshot_id, s.prev_snapshot, c.n + 1 from chain c
       cross join lateral (select p.snapshot_id, p.prev_snapshot from state_snapshots p where p.snapshot_id = c.prev_snapshot limit 1) s
     ), k(type, state_key) as (values ${keys.map(() => '(?::text, ?::text)').join(', ')}),
     found as (
       select distinct on (k.type, k.state_key) x.event_id
       from chain c cross join k
       cross join lateral (select y.event_id from state_snapshot_entries y
         where y.snapshot_id = c.snapshot_id and y.type = k.type and y.state_key = k.state_key limit 1) x
       order by k.type, k.state_key, c.n asc
     )
     select ${E_COLUMNS} from found f join events e on e.event_id = f.event_id`,
    [snapshotId, ...keys.flat()],
  );
  for (const r of rows) out.set(r.event_id, toStored(r));
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

/**
 * Applies many current-state changes of one room at once (a join brings the whole state): upserts,
 * the membership changes sync reads, and un-forgetting the rooms users are back in. Each list
 * travels as one JSON parameter.
 */
export async function applyCurrentStateChanges(
  sql: Sql,
  roomId: string,
  set: { type: string; stateKey: string; eventId: string; membership: string | null }[],
  memberships: { streamOrdering: number; userId: string; membership: string; eventId: string }[],
): Promise<void> {
  for (let i = 0; i < set.length; i += OUTLIER_BATCH) {
    const batch = set.slice(i, i + OUTLIER_BATCH);
    await sql.query(
      `insert into current_state (room_id, type, state_key, event_id, membership)
       select ?, x.t, x.k, x.e, x.m from json_to_recordset(?::json) as x(t text, k text, e text, m text)
       on conflict (room_id, type, state_key) do update set event_id = excluded.event_id, membership = excluded.membership`,
      [roomId, JSON.stringify(batch.map((c) => ({ t: c.type, k: c.stateKey, e: c.eventId, m: c.membership })))],
    );
  }
  for (let i = 0; i < memberships.length; i += OUTLIER_BATCH) {
    const batch = memberships.slice(i, i + OUTLIER_BATCH);
    const json = JSON.stringify(batch.map((c) => ({ p: c.streamOrdering, u: c.userId, m: c.membership, e: c.eventId })));
    await sql.query(
      `insert into membership_changes (stream_ordering, room_id, user_id, membership, event_id)
       select x.p, ?, x.u, x.m, x.e from json_to_recordset(?::json) as x(p bigint, u text, m text, e text)`,
      [roomId, json],
    );
    const back = batch.filter((c) => c.membership === 'join' || c.membership === 'invite' || c.membership === 'knock').map((c) => c.userId);
    if (back.length > 0) await sql.query('delete from room_forgotten where room_id = ? and user_id in (?)', [roomId, back]);
  }
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
  if (removed.length === 0 || added.length === 0 || [...removed, ...added].some((id) => id.includes('\u0000'))) {
    if (removed.length > 0) await sql.query('delete from forward_extremities where room_id = ? and event_id in (?)', [roomId, removed]);
    for (const id of added) await sql.query('insert into forward_extremities (room_id, event_id) values (?, ?) on conflict do nothing', [roomId, id]);
    return;
  }
  // The usual case (an event replacing its prev events) in one statement; `added` never
  // intersects `removed` (an event is not its own prev event).
  await sql.query(
    `with d as (delete from forward_extremities where room_id = ? and event_id in (select json_array_elements_text(?::json)))
     insert into forward_extremities (room_id, event_id) select ?, a from json_array_elements_text(?::json) a on conflict do nothing`,
    [roomId, JSON.stringify(removed), roomId, JSON.stringify(added)],
  );
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

/** The stored PDUs' exact JSON, as received or sent (a redaction is applied on read: see `redactedBy`). */
export async function getEventJson(sql: Sql, eventIds: string[]): Promise<Map<string, { roomId: string; json: string; rejected: boolean; redactedBy: string | null }>> {
  const out = new Map<string, { roomId: string; json: string; rejected: boolean; redactedBy: string | null }>();
  if (eventIds.length === 0) return out;
  const rows = await sql.query<{ event_id: string; room_id: string; json: string; rejected_reason: string | null; redacted_by: string | null }>(
    'select event_id, room_id, json, rejected_reason, redacted_by from events where event_id in (?)',
    [eventIds],
  );
  for (const r of rows) out.set(r.event_id, { roomId: r.room_id, json: r.json, rejected: r.rejected_reason !== null, redactedBy: r.redacted_by });
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

/**
 * The lowest depth among a room's events that have a place in our graph (not outliers): for a
 * server that joined late, about its join. Gap-filling (`get_missing_events`) asks for nothing
 * older; history before that comes by backfill. Walks `events_room_depth` from the bottom.
 */
export async function minTimelineDepth(sql: Sql, roomId: string): Promise<number | undefined> {
  const rows = await sql.query<{ depth: string }>('select depth from events where room_id = ? and not outlier order by depth limit 1', [roomId]);
  return rows[0] ? Number(rows[0].depth) : undefined;
}
