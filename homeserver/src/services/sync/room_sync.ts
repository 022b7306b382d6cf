import type { Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as stateStore from '../../storage/state.js';
import * as syncStore from '../../storage/sync.js';
import type { StoredEvent } from '../../storage/events.js';
import { stateKey, type RoomVersionId, type StateKey, type StateMap } from '../rooms/pdu.js';
import { filterVisible, toClientEvents } from '../rooms/events_view.js';
import { DEFAULT_TIMELINE_LIMIT, eventPasses, roomPasses, type Filter } from './filter.js';
import { formatToken } from './token.js';
import type { LazyMembersView } from './lazy_members.js';
import type { SyncCache } from './cache.js';
import { withoutIgnored } from '../ephemeral/ignored.js';

type Json = Record<string, unknown>;

const MEMBER_PREFIX = 'm.room.member\u0000';
const HERO_COUNT = 5;

/** What one sync response is computed for. */
export interface RoomSyncContext {
  sql: Sql;
  userId: string;
  deviceId: string;
  filter: Filter;
  versions: Map<string, RoomVersionId>;
  /** Set when lazy-loading members: what the device already holds, and what this response sends. */
  lazy: LazyMembersView | null;
  /** Immutable lookups shared by all syncs of the process. */
  cache: SyncCache;
  /** The newest stream position of the computation's database snapshot (keys SyncCache.atPosition). */
  newest: number;
  /** Users whose non-state events the timeline leaves out (spec: "Ignoring Users"). */
  ignored?: ReadonlySet<string>;
}

export interface RoomRange {
  /** Events after this position are new to the client; undefined: the client has nothing of this room. */
  from?: number;
  /** The last position of this response for the room (the response's position, or where the user left). */
  upTo: number;
  /** `state` is the full state at the start of the timeline, not a delta since `from`. */
  full: boolean;
}

/**
 * One room of a sync response (spec: "Syncing"): the timeline after `from` (the newest events up to
 * the filter's limit, `limited` when some were left out, `prev_batch` at its start for /messages),
 * and `state` as of the start of that timeline: all of it when `full`, else what changed since
 * `from` (only when the timeline is limited: otherwise the changes are in the timeline itself).
 */
export async function syncRoom(ctx: RoomSyncContext, roomId: string, range: RoomRange, kind: 'join' | 'leave'): Promise<Json> {
  const { sql } = ctx;
  const viewer = { userId: ctx.userId, deviceId: ctx.deviceId };
  const { events: tl, limited } = await timeline(ctx, roomId, range.from ?? 0, range.upTo);
  const startPos = tl[0] ? tl[0].streamOrdering! - 1 : range.upTo;
  const sf = ctx.filter.room.state;
  const lazy = sf.lazyLoadMembers;
  if (range.full) ctx.lazy?.resetRoom(roomId);

  let stateIds: StateMap = new Map();
  const startSnapshot = range.full || limited || lazy ? await ctx.cache.stateSnapshotAt(sql, roomId, startPos) : null;
  if (range.full) {
    stateIds = startSnapshot === null ? new Map() : await stateStore.loadSnapshot(sql, startSnapshot);
  } else if (limited) {
    const startState = startSnapshot === null ? new Map<StateKey, string>() : await stateStore.loadSnapshot(sql, startSnapshot);
    const atFrom = await ctx.cache.stateSnapshotAt(sql, roomId, range.from!);
    const fromState = atFrom === null ? new Map<StateKey, string>() : await stateStore.loadSnapshot(sql, atFrom);
    for (const [k, id] of startState) if (fromState.get(k) !== id) stateIds.set(k, id);
  }

  // A room the user has left shows only state they could see: none unless they were joined at the
  // start of its timeline (a rejected invite or a join-and-leave within the timeline shows no state).
  const hidden = kind === 'leave' && (range.full || limited || lazy) && (await membershipIn(ctx, startSnapshot)) !== 'join';
  const named = () => ctx.cache.atPosition(ctx.newest, `named\u0000${roomId}`, () => isNamed(sql, roomId));
  const heroes = kind === 'join' && !(await named()) ? await syncStore.firstMembers(sql, roomId, ctx.userId, ['join', 'invite'], HERO_COUNT) : undefined;
  if (hidden) stateIds = new Map();
  else if (lazy) stateIds = await lazyMembers(ctx, roomId, range, stateIds, startSnapshot, tl, heroes ?? []);

  const stateEvents = roomPasses(sf, roomId)
    ? [...(await events.getEvents(sql, [...stateIds.values()])).values()].filter((s) => eventPasses(sf, s.event))
    : [];
  if (ctx.lazy) {
    for (const s of [...stateEvents, ...tl]) {
      if (s.event.type === 'm.room.member' && s.event.state_key !== undefined) ctx.lazy.sent(roomId, s.event.state_key, s.event.event_id);
    }
  }
  const opts = { viewer, omitRoomId: true };
  const out: Json = {
    timeline: { events: await toClientEvents(sql, tl, ctx.versions, opts), limited, prev_batch: formatToken({ events: startPos }) },
    state: { events: await toClientEvents(sql, stateEvents, ctx.versions, opts) },
    account_data: { events: [] },
  };
  if (kind === 'join') {
    out.summary = await summary(ctx, roomId, heroes);
    out.ephemeral = { events: [] };
    out.unread_notifications = { notification_count: 0, highlight_count: 0 };
  }
  return out;
}

/** The newest events of (after, upTo] up to the timeline limit, oldest first, as the user may see them. */
async function timeline(ctx: RoomSyncContext, roomId: string, after: number, upTo: number): Promise<{ events: StoredEvent[]; limited: boolean }> {
  const tf = ctx.filter.room.timeline;
  if (!roomPasses(tf, roomId) || after >= upTo) return { events: [], limited: false };
  const limit = tf.limit ?? DEFAULT_TIMELINE_LIMIT;
  const query = { after, upTo, limit: limit + 1, newestFirst: true, types: tf.types, notTypes: tf.notTypes };
  // Shared by the syncs woken by one commit (they ask for the same range); not to be modified.
  const rows = await ctx.cache.atPosition(ctx.newest, `timeline\u0000${roomId}\u0000${JSON.stringify(query)}`, () => events.roomEventsBetween(ctx.sql, roomId, query));
  const limited = rows.length > limit;
  const page = rows.slice(0, limit).reverse();
  const visible = withoutIgnored(await filterVisible(ctx.sql, ctx.userId, page, ctx.cache), ctx.ignored).filter((s) => eventPasses(tf, s.event));
  return { events: visible, limited };
}

/**
 * Lazy-loading members (spec: "Lazy-loading room members"): of the member events in `ids`, keep
 * those of the timeline's senders (and the heroes, and the user when the room starts from scratch)
 * as of the start of the timeline, minus those the device already holds. A limited incremental
 * timeline keeps every member change of the gap, redundant or not.
 */
async function lazyMembers(
  ctx: RoomSyncContext,
  roomId: string,
  range: RoomRange,
  ids: StateMap,
  startSnapshot: number | null,
  tl: StoredEvent[],
  heroes: string[],
): Promise<StateMap> {
  const wanted = new Set([...tl.map((s) => s.event.sender), ...heroes]);
  if (range.full) wanted.add(ctx.userId);
  const out: StateMap = new Map();
  const gap = !range.full;
  for (const [k, id] of ids) {
    if (!k.startsWith(MEMBER_PREFIX) || gap) out.set(k, id);
  }
  const missing = [...wanted].filter((u) => !out.has(stateKey('m.room.member', u)));
  if (missing.length === 0 || startSnapshot === null) return out;
  const memberIds = range.full ? ids : await ctx.cache.snapshotKeys(ctx.sql, startSnapshot, missing.map((u) => ['m.room.member', u]));
  for (const u of missing) {
    const k = stateKey('m.room.member', u);
    const id = memberIds.get(k);
    if (id && !ctx.lazy?.holds(roomId, u, id)) out.set(k, id);
  }
  return out;
}

async function membershipIn(ctx: RoomSyncContext, snapshot: number | null): Promise<string | undefined> {
  if (snapshot === null) return undefined;
  const id = (await ctx.cache.snapshotKeys(ctx.sql, snapshot, [['m.room.member', ctx.userId]])).get(stateKey('m.room.member', ctx.userId));
  const ev = id ? (await ctx.cache.pdusOf(ctx.sql, [id])).get(id) : undefined;
  return ev?.content.membership as string | undefined;
}

/** Whether clients can name the room without heroes: it has a non-empty name or canonical alias. */
async function isNamed(sql: Sql, roomId: string): Promise<boolean> {
  const got = await events.currentStateEvents(sql, roomId, ['m.room.name', 'm.room.canonical_alias']);
  return [...got.values()].some((s) => {
    const c = s.redactedBy ? {} : s.event.content;
    return (typeof c.name === 'string' && c.name !== '') || (typeof c.alias === 'string' && c.alias !== '');
  });
}

/**
 * `summary` (spec: "Room summary"): member counts, and heroes when the room has no name or canonical
 * alias (only then are they required; with lazy-loading their member events go in `state`).
 */
async function summary(ctx: RoomSyncContext, roomId: string, heroes: string[] | undefined): Promise<Json> {
  const { sql, userId } = ctx;
  const counts = await ctx.cache.atPosition(ctx.newest, `counts\u0000${roomId}`, () => syncStore.memberCounts(sql, roomId));
  const out: Json = { 'm.joined_member_count': counts.joined, 'm.invited_member_count': counts.invited };
  // With nobody else joined or invited, heroes are the members who left or were banned.
  if (heroes) out['m.heroes'] = heroes.length > 0 ? heroes : await syncStore.firstMembers(sql, roomId, userId, ['leave', 'ban'], HERO_COUNT);
  return out;
}
