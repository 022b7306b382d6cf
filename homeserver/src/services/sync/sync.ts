import type { Database, Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as stateStore from '../../storage/state.js';
import type { StoredEvent } from '../../storage/events.js';
import type { Notifier } from '../../bus/notifier.js';
import type { RoomVersionId, StateKey, StateMap } from '../rooms/pdu.js';
import { filterVisible, toClientEvents, type ClientEvent } from '../rooms/events_view.js';
import { DEFAULT_TIMELINE_LIMIT, eventPasses, roomPasses, type Filter } from './filter.js';
import { formatToken, type StreamToken } from './token.js';

export interface SyncRequest {
  userId: string;
  deviceId: string;
  since?: StreamToken;
  timeoutMs: number;
  fullState: boolean;
  filter: Filter;
}

type Json = Record<string, unknown>;

export interface SyncResult {
  response: Json;
  /** The position this response brings the client to. */
  position: number;
  /** Nothing for the client: a long-poll keeps waiting. */
  empty: boolean;
}

/** Stripped state shown with invites and knocks (spec: "Stripped state"). */
const STRIPPED_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

/**
 * `/sync` (and the WebSocket sync, which calls `compute` directly): what changed for a user between
 * two stream positions. A waiting sync sleeps on the notifier; it never polls the database.
 */
export class SyncService {
  constructor(private readonly deps: { db: Database; notifier: Notifier; maxTimeoutMs: number }) {}

  async sync(req: SyncRequest, signal?: AbortSignal): Promise<SyncResult> {
    const deadline = Date.now() + Math.min(Math.max(req.timeoutMs, 0), this.deps.maxTimeoutMs);
    for (;;) {
      const joined = await stateStore.roomsWithMembership(this.deps.db, req.userId, 'join');
      // Listen before computing, so a commit between the computation and the wait still wakes us.
      let cleanup: () => void = () => {};
      const changed = new Promise<void>((resolve) => {
        const stop = this.deps.notifier.listen({ userId: req.userId, roomIds: new Set(joined) }, () => {
          stop();
          resolve();
        });
        cleanup = stop;
      });
      try {
        const result = await this.compute(req, joined);
        const remaining = deadline - Date.now();
        if (!result.empty || !req.since || remaining <= 0 || signal?.aborted) return result;
        const woke = await Promise.race([
          changed.then(() => true),
          new Promise<boolean>((r) => {
            const t = setTimeout(() => r(false), remaining);
            signal?.addEventListener('abort', () => {
              clearTimeout(t);
              r(false);
            });
          }),
        ]);
        if (!woke) return result;
      } finally {
        cleanup();
      }
    }
  }

  /** One sync response from `req.since` up to the newest committed position. */
  async compute(req: SyncRequest, joinedRooms?: string[]): Promise<SyncResult> {
    const db = this.deps.db;
    const pos = await events.maxStreamOrdering(db);
    const since = req.since?.events;
    const f = req.filter;
    const joined = joinedRooms ?? (await stateStore.roomsWithMembership(db, req.userId, 'join'));
    const versions = await roomVersions(db, joined);
    const rooms: { join: Json; invite: Json; leave: Json; knock: Json } = { join: {}, invite: {}, leave: {}, knock: {} };

    // The user's own membership changes in the range decide newly joined, left, invited and knocked rooms.
    const myChanges = since === undefined ? [] : await membershipChanges(db, req.userId, since, pos);
    const latestChange = new Map<string, { membership: string; stream: number; eventId: string }>();
    for (const c of myChanges) latestChange.set(c.room_id, { membership: c.membership, stream: Number(c.stream_ordering), eventId: c.event_id });

    let active: string[];
    if (since === undefined) active = joined;
    else {
      const withEvents = await roomsWithEventsBetween(db, joined, since, pos);
      active = joined.filter((r) => withEvents.has(r) || latestChange.has(r));
    }
    const roomFilter = { rooms: f.room.rooms, notRooms: f.room.notRooms };
    for (const roomId of active) {
      if (!roomPasses(roomFilter, roomId)) continue;
      const newlyJoined = latestChange.get(roomId)?.membership === 'join';
      rooms.join[roomId] = await this.joinedRoom(db, req, roomId, versions, since === undefined || newlyJoined ? undefined : since, pos);
    }

    const invited = await stateStore.roomsWithMembership(db, req.userId, 'invite');
    for (const roomId of invited) {
      if (since !== undefined && latestChange.get(roomId)?.membership !== 'invite') continue;
      if (!roomPasses(roomFilter, roomId)) continue;
      rooms.invite[roomId] = { invite_state: { events: await strippedState(db, roomId, req.userId) } };
    }
    const knocked = await stateStore.roomsWithMembership(db, req.userId, 'knock');
    for (const roomId of knocked) {
      if (since !== undefined && latestChange.get(roomId)?.membership !== 'knock') continue;
      if (!roomPasses(roomFilter, roomId)) continue;
      rooms.knock[roomId] = { knock_state: { events: await strippedState(db, roomId, req.userId) } };
    }
    if (since !== undefined || f.room.includeLeave) {
      for (const [roomId, c] of latestChange) {
        if (c.membership !== 'leave' && c.membership !== 'ban') continue;
        if (!roomPasses(roomFilter, roomId)) continue;
        const v = await roomVersions(db, [roomId]);
        rooms.leave[roomId] = await this.leftRoom(db, req, roomId, v, since ?? 0, c.stream);
      }
    }

    const empty = since !== undefined && Object.values(rooms).every((r) => Object.keys(r).length === 0);
    return {
      position: pos,
      empty,
      response: {
        next_batch: formatToken({ events: pos }),
        rooms,
        presence: { events: [] },
        account_data: { events: [] },
        to_device: { events: [] },
        device_lists: { changed: [], left: [] },
        device_one_time_keys_count: {},
        device_unused_fallback_key_types: [],
      },
    };
  }

  private async timeline(
    sql: Sql,
    req: SyncRequest,
    roomId: string,
    after: number,
    upTo: number,
  ): Promise<{ events: StoredEvent[]; limited: boolean }> {
    const tf = req.filter.room.timeline;
    const limit = tf.limit ?? DEFAULT_TIMELINE_LIMIT;
    const rows = await events.roomEventsBetween(sql, roomId, { after, upTo, limit: limit + 1, newestFirst: true, types: tf.types, notTypes: tf.notTypes });
    const limited = rows.length > limit;
    const page = rows.slice(0, limit).reverse();
    const visible = (await filterVisible(sql, req.userId, page)).filter((s) => eventPasses(tf, s.event));
    return { events: visible, limited };
  }

  private async joinedRoom(sql: Sql, req: SyncRequest, roomId: string, versions: Map<string, RoomVersionId>, since: number | undefined, pos: number): Promise<Json> {
    const { events: tl, limited } = await this.timeline(sql, req, roomId, since ?? 0, pos);
    const startPos = tl[0]?.streamOrdering != null ? tl[0].streamOrdering - 1 : pos;
    let stateIds: StateMap = new Map();
    const full = since === undefined || req.fullState;
    if (full || limited) {
      const atStart = await events.stateSnapshotAt(sql, roomId, startPos);
      const startState = atStart === null ? new Map() : await stateStore.loadSnapshot(sql, atStart);
      if (full) stateIds = startState;
      else {
        const atSince = await events.stateSnapshotAt(sql, roomId, since!);
        const sinceState = atSince === null ? new Map<StateKey, string>() : await stateStore.loadSnapshot(sql, atSince);
        for (const [k, id] of startState) if (sinceState.get(k) !== id) stateIds.set(k, id);
      }
    }
    stateIds = this.applyStateFilter(req, stateIds, tl);
    const stateEvents = [...(await events.getEvents(sql, [...stateIds.values()])).values()].filter((s) => eventPasses(req.filter.room.state, s.event));
    const viewer = { userId: req.userId, deviceId: req.deviceId };
    return {
      timeline: {
        events: await toClientEvents(sql, tl, versions, { viewer, omitRoomId: true }),
        limited,
        prev_batch: formatToken({ events: startPos }),
      },
      state: { events: await toClientEvents(sql, stateEvents, versions, { viewer, omitRoomId: true }) },
      summary: await roomSummary(sql, roomId, req.userId),
      ephemeral: { events: [] },
      account_data: { events: [] },
      unread_notifications: { notification_count: 0, highlight_count: 0 },
    };
  }

  /** Lazy-loading members: only the member events of timeline senders (and the user) go in `state`. */
  private applyStateFilter(req: SyncRequest, ids: StateMap, timeline: StoredEvent[]): StateMap {
    if (!req.filter.room.state.lazyLoadMembers) return ids;
    const wanted = new Set(timeline.map((s) => s.event.sender));
    wanted.add(req.userId);
    const inTimeline = new Set(timeline.map((s) => s.event.event_id));
    const out: StateMap = new Map();
    for (const [k, id] of ids) {
      const isMember = k.startsWith('m.room.member\u0000');
      if (!isMember || (wanted.has(k.slice('m.room.member\u0000'.length)) && !inTimeline.has(id))) out.set(k, id);
    }
    return out;
  }

  private async leftRoom(sql: Sql, req: SyncRequest, roomId: string, versions: Map<string, RoomVersionId>, since: number, leftAt: number): Promise<Json> {
    const { events: tl, limited } = await this.timeline(sql, req, roomId, since, leftAt);
    const startPos = tl[0]?.streamOrdering != null ? tl[0].streamOrdering - 1 : leftAt;
    const viewer = { userId: req.userId, deviceId: req.deviceId };
    let stateEvents: ClientEvent[] = [];
    if (limited || req.fullState) {
      const snap = await events.stateSnapshotAt(sql, roomId, startPos);
      const ids = snap === null ? new Map() : await stateStore.loadSnapshot(sql, snap);
      const stored = [...(await events.getEvents(sql, [...ids.values()])).values()];
      stateEvents = await toClientEvents(sql, stored, versions, { viewer, omitRoomId: true });
    }
    return {
      timeline: { events: await toClientEvents(sql, tl, versions, { viewer, omitRoomId: true }), limited, prev_batch: formatToken({ events: startPos }) },
      state: { events: stateEvents },
      account_data: { events: [] },
    };
  }
}

async function roomVersions(sql: Sql, roomIds: string[]): Promise<Map<string, RoomVersionId>> {
  const out = new Map<string, RoomVersionId>();
  if (roomIds.length === 0) return out;
  const rows = await sql.query<{ room_id: string; room_version: string }>('select room_id, room_version from rooms where room_id in (?)', [roomIds]);
  for (const r of rows) out.set(r.room_id, r.room_version as RoomVersionId);
  return out;
}

async function membershipChanges(sql: Sql, userId: string, after: number, upTo: number) {
  return sql.query<{ room_id: string; membership: string; stream_ordering: string; event_id: string }>(
    `select room_id, membership, stream_ordering, event_id from membership_changes
     where user_id = ? and stream_ordering > ? and stream_ordering <= ? order by stream_ordering`,
    [userId, after, upTo],
  );
}

async function roomsWithEventsBetween(sql: Sql, roomIds: string[], after: number, upTo: number): Promise<Set<string>> {
  if (roomIds.length === 0 || after >= upTo) return new Set();
  const rows = await sql.query<{ room_id: string }>(
    `select distinct room_id from events where room_id in (?) and stream_ordering > ? and stream_ordering <= ?`,
    [roomIds, after, upTo],
  );
  return new Set(rows.map((r) => r.room_id));
}

async function strippedState(sql: Sql, roomId: string, userId: string): Promise<Json[]> {
  const rows = await stateStore.getCurrentState(sql, roomId);
  const ids = rows.filter((r) => (STRIPPED_TYPES.includes(r.type) && r.state_key === '') || (r.type === 'm.room.member' && r.state_key === userId)).map((r) => r.event_id);
  const got = await events.getEvents(sql, ids);
  return [...got.values()].map((s) => ({ content: s.event.content, sender: s.event.sender, state_key: s.event.state_key, type: s.event.type }));
}

/** `summary`: heroes and member counts, from current state (spec: "Room summary"). */
async function roomSummary(sql: Sql, roomId: string, userId: string): Promise<Json> {
  const rows = await sql.query<{ state_key: string; membership: string }>(
    `select state_key, membership from current_state where room_id = ? and type = 'm.room.member' and membership in ('join', 'invite') order by state_key`,
    [roomId],
  );
  const joined = rows.filter((r) => r.membership === 'join').length;
  const invited = rows.length - joined;
  const heroes = rows.filter((r) => r.state_key !== userId).slice(0, 5).map((r) => r.state_key);
  return { 'm.heroes': heroes, 'm.joined_member_count': joined, 'm.invited_member_count': invited };
}
