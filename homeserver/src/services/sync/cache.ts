import type { Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as stateStore from '../../storage/state.js';
import * as syncStore from '../../storage/sync.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateMap } from '../rooms/pdu.js';

/** A map that keeps at most `max` entries, dropping the least recently used. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly max: number) {}

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    this.map.delete(key); // re-inserted last: the map is oldest-first
    this.map.set(key, v);
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * Entry caps of the sync caches (one SyncService each). Measured: a snapshot entry ~0.45 KiB (so
 * ~9 MiB when full); roughly, a (room, position) pair ~0.3 KiB, a PDU 1-2 KiB, an atPosition answer
 * up to a timeline page (~50 events). Those answers are only reused while their position is the
 * newest, so few are kept.
 */
export const SYNC_CACHE_LIMITS = {
  roomVersions: 10_000,
  /** (snapshot, type, state_key) → event id or none. */
  snapshotEntries: 20_000,
  /** (room, position) → the state snapshot in force there. */
  snapshotAt: 10_000,
  /** Parsed PDUs by event id. */
  pdus: 5_000,
  /** Per-room answers as of one newest stream position (timelines, member counts, names). */
  atPosition: 128,
};

const NONE = '';

/**
 * Per-process memory of lookups whose answer cannot change, so the syncs woken by one commit share
 * them instead of each asking the database (concurrent askers share the pending query too):
 *
 * - a room's version;
 * - the entries of a state snapshot (snapshots are written once and never modified);
 * - the snapshot in force at a position of a room, for positions a reader's snapshot has committed
 *   up to: writers take stream positions and commit under one lock, so nothing is inserted later at
 *   or below a committed position;
 * - parsed PDUs by event id. Only the PDU is kept: an event's `redacted_by` (its one mutable column)
 *   is never cached here, so a redaction needs no invalidation; callers that need it read the row;
 * - `atPosition`: reads of a room (its timeline rows, with `redacted_by`; its current state) keyed by
 *   the newest stream position of the reader's database snapshot. Every write to events, current
 *   state and membership changes (redactions included) happens in a writer transaction that appends
 *   an event under the stream lock, so a snapshot's newest position determines what those reads
 *   return.
 *
 * All bounded LRUs (SYNC_CACHE_LIMITS). Everything is keyed by ids of one database: one instance per
 * homeserver. A failed query is not remembered.
 */
export class SyncCache {
  private readonly versions: Lru<string, Promise<RoomVersionId | undefined>>;
  private readonly entries: Lru<string, Promise<string>>;
  private readonly snapshotAtPos: Lru<string, Promise<number | null>>;
  private readonly pdus: Lru<string, Promise<RoomEvent | undefined>>;
  private readonly atPos: Lru<string, Promise<unknown>>;

  constructor(limits: typeof SYNC_CACHE_LIMITS = SYNC_CACHE_LIMITS) {
    this.versions = new Lru(limits.roomVersions);
    this.entries = new Lru(limits.snapshotEntries);
    this.snapshotAtPos = new Lru(limits.snapshotAt);
    this.pdus = new Lru(limits.pdus);
    this.atPos = new Lru(limits.atPosition);
  }

  async roomVersions(sql: Sql, roomIds: string[]): Promise<Map<string, RoomVersionId>> {
    const got = await batched(this.versions, roomIds, (r) => r, async (missing) => {
      const m = await syncStore.roomVersions(sql, missing);
      return missing.map((r) => m.get(r));
    });
    const out = new Map<string, RoomVersionId>();
    roomIds.forEach((r, i) => got[i] !== undefined && out.set(r, got[i]!));
    return out;
  }

  /** Like stateStore.loadSnapshotKeys: only the given entries of a snapshot. */
  async snapshotKeys(sql: Sql, snapshotId: number, keys: [string, string][]): Promise<StateMap> {
    const got = await batched(this.entries, keys, ([type, key]) => `${snapshotId}\u0000${type}\u0000${key}`, async (missing) => {
      const m = await stateStore.loadSnapshotKeys(sql, snapshotId, missing);
      return missing.map(([type, key]) => m.get(stateKey(type, key)) ?? NONE);
    });
    const out: StateMap = new Map();
    keys.forEach(([type, key], i) => got[i] !== NONE && out.set(stateKey(type, key), got[i]!));
    return out;
  }

  /** Like events.stateSnapshotAt, for a position at or below what the caller's snapshot has committed. */
  stateSnapshotAt(sql: Sql, roomId: string, position: number): Promise<number | null> {
    return shared(this.snapshotAtPos, `${roomId}\u0000${position}`, () => events.stateSnapshotAt(sql, roomId, position));
  }

  /** The PDUs of these events (without `redacted_by`: only for what redaction does not change here). */
  async pdusOf(sql: Sql, eventIds: string[]): Promise<Map<string, RoomEvent>> {
    const got = await batched(this.pdus, eventIds, (id) => id, async (missing) => {
      const m = await events.getEvents(sql, missing);
      return missing.map((id) => m.get(id)?.event);
    });
    const out = new Map<string, RoomEvent>();
    eventIds.forEach((id, i) => got[i] !== undefined && out.set(id, got[i]!));
    return out;
  }

  /**
   * `read()` once per key and newest position of the caller's snapshot (see the class comment: only
   * for reads of events, current state and membership changes). The answer is shared: callers must
   * not modify it.
   */
  atPosition<T>(newest: number, key: string, read: () => Promise<T>): Promise<T> {
    return shared(this.atPos, `${newest}\u0000${key}`, read) as Promise<T>;
  }
}

/** The cached promise for `key`, or a new one from `load` (forgotten if it fails). */
function shared<V>(lru: Lru<string, Promise<V>>, key: string, load: () => Promise<V>): Promise<V> {
  const hit = lru.get(key);
  if (hit) return hit;
  const p = load();
  lru.set(key, p);
  p.catch(() => {
    if (lru.get(key) === p) lru.delete(key);
  });
  return p;
}

/** Values for `items`: cached ones, and the others with one call of `load` (in their order). */
async function batched<I, V>(lru: Lru<string, Promise<V>>, items: I[], keyOf: (i: I) => string, load: (missing: I[]) => Promise<V[]>): Promise<V[]> {
  // An undefined answer (nothing found) is not remembered: it may exist later.
  const forget = (key: string, p: Promise<V>) => {
    if (lru.get(key) === p) lru.delete(key);
  };
  const out: Promise<V>[] = [];
  const missing: I[] = [];
  const missingAt: number[] = [];
  items.forEach((item, i) => {
    const hit = lru.get(keyOf(item));
    if (hit) out[i] = hit;
    else {
      missing.push(item);
      missingAt.push(i);
    }
  });
  if (missing.length > 0) {
    const all = load(missing);
    missing.forEach((item, j) => {
      const p = all.then((vs) => vs[j]!);
      const key = keyOf(item);
      lru.set(key, p);
      p.then(
        (v) => v === undefined && forget(key, p),
        () => forget(key, p),
      );
      out[missingAt[j]!] = p;
    });
  }
  return Promise.all(out);
}
