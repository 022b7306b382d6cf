import type { Sql } from './db.js';
import { stateKey, type StateKey, type StateMap } from '../services/rooms/pdu.js';

/** After this many deltas in a row, a snapshot is written in full so reads stay short. */
const MAX_CHAIN = 32;
/** A full chain is folded into one delta over its full snapshot while that delta stays below this share of it. */
const MAX_FOLDED_FRACTION = 0.25;

function splitKey(k: StateKey): [string, string] {
  const i = k.indexOf('\u0000');
  return [k.slice(0, i), k.slice(i + 1)];
}

/**
 * The delta chain of snapshot `?` (itself first, n = 0, then each prev_snapshot; at most MAX_CHAIN
 * rows). Each step is a `limit 1` primary-key lookup in a lateral, so it stays an index lookup
 * whatever the planner's statistics (a plain join may plan as a scan while the tables are young).
 */
const CHAIN_CTE = `chain(snapshot_id, prev_snapshot, n) as (
       select snapshot_id, prev_snapshot, 0 from state_snapshots where snapshot_id = ?
       union all
       select s.snapshot_id, s.prev_snapshot, c.n + 1 from chain c
       cross join lateral (select p.snapshot_id, p.prev_snapshot from state_snapshots p where p.snapshot_id = c.prev_snapshot limit 1) s
     )`;

/**
 * Reads a snapshot's whole state: the chain, then each link's own entries, the nearest entry for
 * each (type, state_key) winning. Cost: at most MAX_CHAIN primary-key lookups, one index range
 * scan per link (the entries' primary key starts with snapshot_id) reading exactly the full
 * snapshot plus the deltas, and a sort of those rows — independent of the table's size. The
 * `offset 0` keeps the lateral from being flattened into a join, which the planner may run as a
 * hash join over every entry of every snapshot (measured: a sequential scan of all entries at a
 * few thousand snapshots, with or without ANALYZE; 0.3 ms instead of 6 ms there, and growing
 * with the table).
 */
async function readSnapshot(sql: Sql, snapshotId: number): Promise<StateMap> {
  const rows = await sql.query<{ type: string; state_key: string; event_id: string }>(
    `with recursive ${CHAIN_CTE}
     select distinct on (e.type, e.state_key) e.type, e.state_key, e.event_id
     from chain c
     cross join lateral (select x.type, x.state_key, x.event_id from state_snapshot_entries x where x.snapshot_id = c.snapshot_id offset 0) e
     order by e.type, e.state_key, c.n asc`,
    [snapshotId],
  );
  const state: StateMap = new Map();
  for (const r of rows) state.set(stateKey(r.type, r.state_key), r.event_id);
  return state;
}

export function loadSnapshot(sql: Sql, snapshotId: number): Promise<StateMap> {
  return readSnapshot(sql, snapshotId);
}

/** Writes a snapshot equal to `prev` plus `delta` (as a delta when the chain is short enough). */
export async function writeSnapshot(
  sql: Sql,
  roomId: string,
  prev: number | null,
  delta: StateMap,
): Promise<number> {
  let chainLength = 0;
  let entries = delta;
  if (prev !== null) {
    const rows = await sql.query<{ chain_length: number }>('select chain_length from state_snapshots where snapshot_id = ?', [prev]);
    const prevChain = Number(rows[0]?.chain_length ?? MAX_CHAIN);
    if (prevChain + 1 < MAX_CHAIN) {
      chainLength = prevChain + 1;
    } else {
      // The chain is full. Rather than the whole state (every member of a big room, every
      // MAX_CHAIN state events), fold the chain's deltas into one delta over its full snapshot
      // while that stays small next to it; reads still walk at most MAX_CHAIN links.
      const folded = await foldChain(sql, prev);
      if (folded && folded.entries.size + delta.size <= folded.rootSize * MAX_FOLDED_FRACTION) {
        entries = new Map([...folded.entries, ...delta]);
        prev = folded.root;
        chainLength = 1;
      } else {
        entries = new Map([...(await loadSnapshot(sql, prev)), ...delta]);
        prev = null;
      }
    }
  }
  const inserted = await sql.query<{ snapshot_id: string }>(
    'insert into state_snapshots (room_id, prev_snapshot, chain_length) values (?, ?, ?) returning snapshot_id',
    [roomId, prev, chainLength],
  );
  const id = Number(inserted[0]!.snapshot_id);
  await insertEntries(sql, id, entries);
  return id;
}

/**
 * The chain below `snapshotId` folded: the entries of every delta above its full snapshot (the
 * nearest winning), that full snapshot and its size. Undefined when the chain has no full
 * snapshot at its end (not expected).
 */
async function foldChain(sql: Sql, snapshotId: number): Promise<{ root: number; rootSize: number; entries: StateMap } | undefined> {
  const chain = `chain(snapshot_id, prev_snapshot, n) as (
       select snapshot_id, prev_snapshot, 0 from state_snapshots where snapshot_id = ?
       union all
       select s.snapshot_id, s.prev_snapshot, c.n + 1 from chain c
       cross join lateral (select p.snapshot_id, p.prev_snapshot from state_snapshots p where p.snapshot_id = c.prev_snapshot limit 1) s
     )`;
  const roots = await sql.query<{ snapshot_id: string; size: string }>(
    `with recursive ${chain}
     select c.snapshot_id, (select count(*) from state_snapshot_entries x where x.snapshot_id = c.snapshot_id) as size
     from chain c where c.prev_snapshot is null`,
    [snapshotId],
  );
  if (!roots[0]) return undefined;
  const rows = await sql.query<{ type: string; state_key: string; event_id: string }>(
    `with recursive ${chain}
     select distinct on (e.type, e.state_key) e.type, e.state_key, e.event_id
     from chain c
     cross join lateral (select x.type, x.state_key, x.event_id from state_snapshot_entries x where x.snapshot_id = c.snapshot_id offset 0) e
     where c.prev_snapshot is not null
     order by e.type, e.state_key, c.n asc`,
    [snapshotId],
  );
  const entries: StateMap = new Map();
  for (const r of rows) entries.set(stateKey(r.type, r.state_key), r.event_id);
  return { root: Number(roots[0].snapshot_id), rootSize: Number(roots[0].size), entries };
}

async function insertEntries(sql: Sql, snapshotId: number, entries: StateMap): Promise<void> {
  const all = [...entries];
  if (all.length > 500 && !all.some(([k, id]) => k.includes('\u0000', k.indexOf('\u0000') + 1) || id.includes('\u0000'))) {
    // A full snapshot of a big room: the rows travel as one JSON parameter per statement (binding
    // thousands of placeholders costs more than the insert).
    for (let i = 0; i < all.length; i += 5000) {
      const rows = all.slice(i, i + 5000).map(([k, eventId]) => {
        const [type, key] = splitKey(k);
        return { t: type, k: key, e: eventId };
      });
      await sql.query(
        `insert into state_snapshot_entries (snapshot_id, type, state_key, event_id)
         select ?, x.t, x.k, x.e from json_to_recordset(?::json) as x(t text, k text, e text)`,
        [snapshotId, JSON.stringify(rows)],
      );
    }
    return;
  }
  // Batches keep each statement's parameter count well under PostgreSQL's limit.
  for (let i = 0; i < all.length; i += 500) {
    const batch = all.slice(i, i + 500);
    const params: unknown[] = [];
    for (const [k, eventId] of batch) {
      const [type, key] = splitKey(k);
      params.push(snapshotId, type, key, eventId);
    }
    await sql.query(
      `insert into state_snapshot_entries (snapshot_id, type, state_key, event_id) values ${batch.map(() => '(?, ?, ?, ?)').join(', ')}`,
      params,
    );
  }
}

export interface CurrentStateRow {
  type: string;
  state_key: string;
  event_id: string;
  membership: string | null;
}

export async function getCurrentState(sql: Sql, roomId: string): Promise<CurrentStateRow[]> {
  return sql.query<CurrentStateRow>('select type, state_key, event_id, membership from current_state where room_id = ?', [roomId]);
}

export async function getCurrentStateEventId(sql: Sql, roomId: string, type: string, key: string): Promise<string | undefined> {
  const rows = await sql.query<{ event_id: string }>(
    'select event_id from current_state where room_id = ? and type = ? and state_key = ?',
    [roomId, type, key],
  );
  return rows[0]?.event_id;
}

export async function setCurrentState(
  sql: Sql,
  roomId: string,
  type: string,
  key: string,
  eventId: string,
  membership: string | null,
): Promise<void> {
  await sql.query(
    `insert into current_state (room_id, type, state_key, event_id, membership) values (?, ?, ?, ?, ?)
     on conflict (room_id, type, state_key) do update set event_id = excluded.event_id, membership = excluded.membership`,
    [roomId, type, key, eventId, membership],
  );
}

/** The membership of a user in a room per current state ('join', 'invite', ...), if any. */
export async function getMembership(sql: Sql, roomId: string, userId: string): Promise<string | undefined> {
  const rows = await sql.query<{ membership: string }>(
    `select membership from current_state where room_id = ? and type = 'm.room.member' and state_key = ?`,
    [roomId, userId],
  );
  return rows[0]?.membership;
}

/** Rooms where the user currently has the given membership. */
export async function roomsWithMembership(sql: Sql, userId: string, membership: string): Promise<string[]> {
  const rows = await sql.query<{ room_id: string }>(
    `select room_id from current_state where type = 'm.room.member' and state_key = ? and membership = ?`,
    [userId, membership],
  );
  return rows.map((r) => r.room_id);
}

/** Only the given (type, state_key) entries of a snapshot (see loadSnapshotEntries). */
export async function loadSnapshotKeys(sql: Sql, snapshotId: number, keys: [string, string][]): Promise<StateMap> {
  return loadSnapshotEntries(sql, snapshotId, keys.map(([type, key]) => stateKey(type, key)));
}

/** The stream position of the user's most recent join to the room, if they ever joined. */
export async function lastJoinPosition(sql: Sql, roomId: string, userId: string): Promise<number | undefined> {
  const rows = await sql.query<{ pos: string | null }>(
    `select max(stream_ordering) as pos from membership_changes where user_id = ? and room_id = ? and membership = 'join'`,
    [userId, roomId],
  );
  return rows[0]?.pos == null ? undefined : Number(rows[0].pos);
}

/**
 * Only the given entries of a snapshot, by state key (the few an auth check needs): one indexed
 * lookup per (delta, key) instead of reading the whole state.
 */
export async function loadSnapshotEntries(sql: Sql, snapshotId: number, keys: StateKey[]): Promise<StateMap> {
  const state: StateMap = new Map();
  const unique = [...new Set(keys)];
  if (unique.length === 0) return state;
  // Laterals with `limit 1` keep every step an index lookup whatever the planner's statistics
  // (a join here can become a scan of every snapshot entry when the tables are young): at most
  // MAX_CHAIN × keys primary-key lookups.
  const rows = await sql.query<{ type: string; state_key: string; event_id: string }>(
    `with recursive ${CHAIN_CTE}, k(type, state_key) as (values ${unique.map(() => '(?::text, ?::text)').join(', ')})
     select distinct on (k.type, k.state_key) k.type, k.state_key, e.event_id
     from chain c cross join k
     cross join lateral (select x.event_id from state_snapshot_entries x
       where x.snapshot_id = c.snapshot_id and x.type = k.type and x.state_key = k.state_key limit 1) e
     order by k.type, k.state_key, c.n asc`,
    [snapshotId, ...unique.flatMap(splitKey)],
  );
  for (const r of rows) state.set(stateKey(r.type, r.state_key), r.event_id);
  return state;
}

/** Only the given entries of a room's current state, by state key. */
export async function getCurrentStateEntries(sql: Sql, roomId: string, keys: StateKey[]): Promise<StateMap> {
  const state: StateMap = new Map();
  const unique = [...new Set(keys)];
  if (unique.length === 0) return state;
  const rows = await sql.query<{ type: string; state_key: string; event_id: string }>(
    `select k.type, k.state_key, x.event_id from (values ${unique.map(() => '(?::text, ?::text)').join(', ')}) k(type, state_key)
     cross join lateral (select cs.event_id from current_state cs
       where cs.room_id = ? and cs.type = k.type and cs.state_key = k.state_key limit 1) x`,
    [...unique.flatMap(splitKey), roomId],
  );
  for (const r of rows) state.set(stateKey(r.type, r.state_key), r.event_id);
  return state;
}

/** Whether the room has any current state (none before we are in it). */
export async function hasCurrentState(sql: Sql, roomId: string): Promise<boolean> {
  const rows = await sql.query('select 1 from current_state where room_id = ? limit 1', [roomId]);
  return rows.length > 0;
}
