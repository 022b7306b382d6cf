import { MatrixError } from '../../core/errors.js';
import type { Database, Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as stateStore from '../../storage/state.js';
import * as syncStore from '../../storage/sync.js';
import * as accountDataStore from '../../storage/account_data.js';
import * as federatedEvents from '../../storage/federated_events.js';
import type { Notifier } from '../../bus/notifier.js';
import { DEFAULT_TIMELINE_LIMIT, eventPasses, roomPasses, type Filter } from './filter.js';
import { EXTRA_STREAMS, formatToken, type StreamToken } from './token.js';
import type { RoomDecorator, SyncStream, SyncStreamPart } from './streams.js';
import { LazyMemberCache } from './lazy_members.js';
import { syncRoom, type RoomSyncContext } from './room_sync.js';
import { SyncCache } from './cache.js';
import { ignoredUsers } from '../ephemeral/ignored.js';
import { roomIdIsCreateHash } from '../rooms/room_v12.js';
import type { RoomVersionId } from '../rooms/pdu.js';

export interface SyncRequest {
  userId: string;
  deviceId: string;
  since?: StreamToken;
  timeoutMs: number;
  /**
   * What the client has acknowledged receiving, when that differs from `since` (the WebSocket sync
   * computes from the last batch sent, which may not have arrived): `prepare` hooks treat only this
   * as delivered (to-device messages are deleted up to it). Defaults to `since`.
   */
  acknowledged?: StreamToken;
  /** `set_presence` (/sync only). */
  setPresence?: 'online' | 'offline' | 'unavailable';
  fullState: boolean;
  filter: Filter;
}

type Json = Record<string, unknown>;

export interface SyncResult {
  response: Json;
  /** Every stream position of `next_batch`. */
  token: Required<StreamToken>;
  /** Nothing for the client: a long-poll keeps waiting. */
  empty: boolean;
  /** Rooms the user is joined to at `position` (what a waiter listens to). */
  joinedRooms: string[];
  /** False when a windowed computation stopped short of the newest position: more is waiting. */
  complete: boolean;
}

export interface ComputeOptions {
  /**
   * Never leave events out (the WebSocket sync): instead of a `limited` timeline, the response
   * ends early, at a position where no room has more new events than the timeline limit.
   */
  windowed?: boolean;
}

/** Stripped state shown with invites and knocks (spec: "Stripped state"). */
const STRIPPED_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

/**
 * `/sync` (and the WebSocket sync, which calls `compute` directly): what changed for a user between
 * two stream positions. A waiting sync sleeps on the notifier; it never polls the database.
 *
 * Each computation reads one REPEATABLE READ snapshot. Event writers hold the stream lock until they
 * commit (TimelineService.write), so the events a snapshot sees are exactly those up to its highest
 * stream position: `next_batch` never passes over an event that commits later.
 */
export class SyncService {
  private readonly lazyCache = new LazyMemberCache();
  /** Immutable data shared by every sync of this process (bounded). */
  readonly cache = new SyncCache();

  private readonly streams: SyncStream[] = [];
  private readonly decorators: RoomDecorator[] = [];

  constructor(private readonly deps: { db: Database; notifier: Notifier; maxTimeoutMs: number }) {}

  /** Registers a non-event stream (receipts, typing, presence, to-device, device lists). */
  addStream(stream: SyncStream): void {
    if (this.streams.some((s) => s.name === stream.name)) throw new Error(`stream ${stream.name} registered twice`);
    this.streams.push(stream);
  }

  /** Registers per-room fields added to every joined room of a response. */
  addRoomDecorator(decorator: RoomDecorator): void {
    this.decorators.push(decorator);
  }

  async sync(req: SyncRequest, signal?: AbortSignal): Promise<SyncResult> {
    const deadline = Date.now() + Math.min(Math.max(req.timeoutMs, 0), this.deps.maxTimeoutMs);
    for (;;) {
      const mark = this.deps.notifier.sequence;
      const result = await this.compute(req);
      const remaining = deadline - Date.now();
      // full_state answers at once (spec: the timeout is then ignored).
      if (!result.empty || !req.since || req.fullState || remaining <= 0 || signal?.aborted) return result;
      // Listen to the rooms joined as of the computed position (and the user's own changes, which
      // bring any other room). Changes are announced after they commit: one announced since the
      // computation began may be missing from it, so compute again rather than wait.
      const interest = { userId: req.userId, roomIds: new Set(result.joinedRooms) };
      let wake: () => void = () => {};
      const changed = new Promise<void>((resolve) => (wake = resolve));
      const unlisten = this.deps.notifier.listen(interest, () => wake());
      try {
        if (this.deps.notifier.changedSince(mark, interest)) continue;
        if (!(await waitFor(changed, remaining, signal))) return result;
      } finally {
        unlisten();
      }
    }
  }

  /** One sync response from `req.since` up to the newest committed position (or a window of it). */
  async compute(req: SyncRequest, opts: ComputeOptions = {}): Promise<SyncResult> {
    for (const s of this.streams) {
      const acked = req.acknowledged ?? req.since;
      await s.prepare?.({ userId: req.userId, deviceId: req.deviceId, since: acked?.[s.name], setPresence: req.setPresence, timeoutMs: req.timeoutMs });
    }
    return this.deps.db.transaction(async (tx) => {
      await tx.query('set transaction isolation level repeatable read, read only');
      return this.computeIn(tx, req, opts);
    });
  }

  private async computeIn(sql: Sql, req: SyncRequest, opts: ComputeOptions): Promise<SyncResult> {
    const f = req.filter;
    const since = req.since?.events;
    const newest = await events.maxStreamOrdering(sql);
    if (since !== undefined && since > newest) throw new MatrixError(400, 'M_INVALID_PARAM', 'The since token is not one this server handed out');
    const pos = opts.windowed && since !== undefined ? await this.windowEnd(sql, req, since, newest) : newest;
    // Account data: every change of the user in (since, newest] (an initial sync: all of it).
    const adSince = since === undefined ? 0 : (req.since?.accountData ?? 0);
    const adPos = await accountDataStore.maxStreamId(sql, req.userId);
    if (adSince > adPos) throw new MatrixError(400, 'M_INVALID_PARAM', 'The since token is not one this server handed out');
    const adChanges = await accountDataStore.changedBetween(sql, req.userId, adSince, adPos);
    const globalData = adChanges.filter((c) => c.roomId === '' && eventPasses(f.accountData, { type: c.type, sender: req.userId }));
    const roomData = new Map<string, Json[]>();
    for (const c of adChanges) {
      if (c.roomId === '' || !roomPasses(f.room.accountData, c.roomId) || !eventPasses(f.room.accountData, { type: c.type, sender: req.userId })) continue;
      let list = roomData.get(c.roomId);
      if (!list) roomData.set(c.roomId, (list = []));
      list.push({ type: c.type, content: c.content });
    }

    const memberships = await syncStore.membershipsAt(sql, req.userId, pos);
    const roomsWith = (...ms: string[]) => [...memberships].filter(([, m]) => ms.includes(m.membership)).map(([r]) => r);
    const joined = roomsWith('join');
    // The user's own membership changes in the range decide newly joined, left, invited and knocked rooms.
    const latest = new Map<string, syncStore.MembershipAt>();
    if (since !== undefined) for (const c of await syncStore.membershipChanges(sql, req.userId, since, pos)) latest.set(c.roomId, c);
    const before = since === undefined ? new Map() : await syncStore.membershipsAt(sql, req.userId, since, [...latest.keys()]);

    const roomFilter = { rooms: f.room.rooms, notRooms: f.room.notRooms };
    const versions = await this.cache.roomVersions(sql, [...memberships.keys()]);
    const lazy = f.room.state.lazyLoadMembers ? this.lazyCache.begin(req.userId, req.deviceId, since, !f.room.state.includeRedundantMembers) : null;
    // Loaded once per computation: a change of the list applies from the next sync on.
    const ignored = await ignoredUsers(sql, req.userId);
    const ctx: RoomSyncContext = { sql, userId: req.userId, deviceId: req.deviceId, filter: f, versions, lazy, cache: this.cache, newest, ignored };
    const rooms: Record<'join' | 'invite' | 'leave' | 'knock', Json> = { join: {}, invite: {}, leave: {}, knock: {} };

    const isNewlyJoined = (roomId: string) => since !== undefined && latest.has(roomId) && before.get(roomId)?.membership !== 'join';
    const newRooms = new Set(since === undefined ? joined : joined.filter(isNewlyJoined));
    const token = { events: pos, accountData: adPos } as Required<StreamToken>;
    const parts: SyncStreamPart[] = [];
    const ephemeral = new Map<string, Json[]>();
    let streamsComplete = true;
    for (const s of this.streams) {
      const upTo = await s.position(sql, req.userId, req.deviceId);
      const streamSince = since === undefined ? undefined : (req.since?.[s.name] ?? 0);
      if (streamSince !== undefined && streamSince > upTo) throw new MatrixError(400, 'M_INVALID_PARAM', 'The since token is not one this server handed out');
      const part = await s.collect({ sql, userId: req.userId, deviceId: req.deviceId, filter: f, since: streamSince, upTo, joinedRooms: joined, newRooms });
      token[s.name] = part.reached ?? upTo;
      if (token[s.name] < upTo) streamsComplete = false;
      parts.push(part);
      for (const [roomId, evs] of part.ephemeral ?? []) {
        if (!roomPasses(f.room.ephemeral, roomId)) continue;
        const kept = evs.filter((e) => eventPasses(f.room.ephemeral, { type: String(e.type), sender: typeof e.sender === 'string' ? e.sender : '' }));
        if (kept.length > 0) ephemeral.set(roomId, [...(ephemeral.get(roomId) ?? []), ...kept]);
      }
    }
    // Streams no source serves yet keep the since token's position (a later version may serve them).
    for (const name of EXTRA_STREAMS) token[name] ??= since === undefined ? 0 : (req.since?.[name] ?? 0);

    const withEvents = since === undefined ? new Set<string>() : await syncStore.roomsWithEventsBetween(sql, joined, since, pos);
    const joinedOut = new Map<string, Json>();
    for (const roomId of joined) {
      if (!roomPasses(roomFilter, roomId)) continue;
      const newlyJoined = isNewlyJoined(roomId);
      if (since !== undefined && !newlyJoined && !req.fullState && !withEvents.has(roomId) && !roomData.has(roomId) && !ephemeral.has(roomId)) continue;
      const from = since === undefined || newlyJoined ? undefined : since;
      const room = await syncRoom(ctx, roomId, { from, upTo: pos, full: from === undefined || req.fullState }, 'join');
      room.account_data = { events: roomData.get(roomId) ?? [] };
      room.ephemeral = { events: ephemeral.get(roomId) ?? [] };
      rooms.join[roomId] = room;
      joinedOut.set(roomId, room);
    }
    for (const d of this.decorators) await d.decorate(sql, req.userId, joinedOut, f);

    for (const [kind, key] of [['invite', 'invite_state'], ['knock', 'knock_state']] as const) {
      for (const roomId of roomsWith(kind)) {
        if (since !== undefined && latest.get(roomId)?.membership !== kind) continue;
        if (!roomPasses(roomFilter, roomId)) continue;
        const stripped = await strippedState(sql, roomId, req.userId);
        // Invites from ignored users are not sent (spec: "Ignoring Users").
        if (kind === 'invite' && stripped.some((e) => e.type === 'm.room.member' && e.state_key === req.userId && ignored.has(e.sender as string))) continue;
        rooms[kind][roomId] = { [key]: { events: stripped } };
      }
    }

    // Rooms left (or banned from, or whose invite was rejected) in the range; with include_leave an
    // initial sync also lists the rooms left earlier and not forgotten.
    const left = new Map<string, number>();
    if (since !== undefined) {
      for (const [roomId, c] of latest) if (c.membership === 'leave' || c.membership === 'ban') left.set(roomId, c.stream);
    } else if (f.room.includeLeave) {
      const forgotten = await syncStore.forgottenRooms(sql, req.userId);
      for (const [roomId, m] of memberships) if ((m.membership === 'leave' || m.membership === 'ban') && !forgotten.has(roomId)) left.set(roomId, m.stream);
    }
    for (const [roomId, leftAt] of left) {
      if (!roomPasses(roomFilter, roomId)) continue;
      // After leaving, the client keeps nothing of the room: a later rejoin starts it afresh.
      lazy?.resetRoom(roomId);
      const full = since === undefined || req.fullState || before.get(roomId)?.membership !== 'join';
      rooms.leave[roomId] = await syncRoom(ctx, roomId, { from: since, upTo: leftAt, full }, 'leave');
    }

    const empty = since !== undefined && globalData.length === 0 && Object.values(rooms).every((r) => Object.keys(r).length === 0) && !parts.some((p) => p.nonEmpty);
    lazy?.commit(pos);
    const response: Json = {
      next_batch: formatToken(token),
      rooms,
      presence: { events: [] },
      account_data: { events: globalData.map((c) => ({ type: c.type, content: c.content })) },
      to_device: { events: [] },
      device_lists: { changed: [], left: [] },
      device_one_time_keys_count: {},
      device_unused_fallback_key_types: [],
    };
    for (const p of parts) Object.assign(response, p.top);
    return {
      token,
      empty,
      joinedRooms: joined,
      complete: pos === newest && streamsComplete,
      response,
    };
  }

  /**
   * The end of a window after `since` in which none of the user's rooms has more new events than
   * the timeline limit: no room of the response can then have a limited timeline.
   */
  private async windowEnd(sql: Sql, req: SyncRequest, since: number, newest: number): Promise<number> {
    const limit = req.filter.room.timeline.limit ?? DEFAULT_TIMELINE_LIMIT;
    if (limit === 0 || since >= newest) return newest;
    const rooms = new Set(await stateStore.roomsWithMembership(sql, req.userId, 'join'));
    for (const c of await syncStore.membershipChanges(sql, req.userId, since, newest)) rooms.add(c.roomId);
    const overflow = await syncStore.firstOverflow(sql, [...rooms], since, newest, limit);
    return overflow === undefined ? newest : overflow - 1;
  }
}

/** Resolves true when `changed` settles first, false after `ms` or when `signal` aborts. */
function waitFor(changed: Promise<void>, ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(v);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    signal?.addEventListener('abort', onAbort);
    void changed.then(() => done(true));
  });
}

async function strippedState(sql: Sql, roomId: string, userId: string): Promise<Json[]> {
  const rows = await stateStore.getCurrentState(sql, roomId);
  const ids = rows.filter((r) => (STRIPPED_TYPES.includes(r.type) && r.state_key === '') || (r.type === 'm.room.member' && r.state_key === userId)).map((r) => r.event_id);
  const got = await events.getEvents(sql, ids);
  const local: Json[] = [...got.values()].map((s) => ({ content: s.event.content, sender: s.event.sender, state_key: s.event.state_key, type: s.event.type }));
  // Room version 12: the create event as its whole PDU, whose hash the room id is (services/federation/stripped_state.ts).
  const create = [...got.values()].find((s) => s.event.type === 'm.room.create' && roomIdIsCreateHash(s.event.content.room_version as RoomVersionId));
  const createJson = create && (await federatedEvents.getEventJson(sql, [create.event.event_id])).get(create.event.event_id);
  if (createJson) local[local.findIndex((e) => e.type === 'm.room.create')] = JSON.parse(createJson.json) as Json;
  // A remote invite to a room this server is not in: its state is what the inviting server sent
  // (stored with the invite); our own copy of the invite event wins for its own key.
  const remote = await federatedEvents.getInviteState(sql, roomId, userId);
  if (!remote) return local;
  const have = new Set(local.map((e) => `${e.type}\u0000${e.state_key}`));
  const extra = remote.stripped.filter((e): e is Json => typeof e === 'object' && e !== null && !have.has(`${String((e as Json).type)}\u0000${String((e as Json).state_key)}`));
  return [...extra, ...local];
}
