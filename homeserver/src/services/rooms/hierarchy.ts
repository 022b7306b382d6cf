import { forbidden, invalidParam } from '../../core/errors.js';
import { isObject } from '../../core/json.js';
import type { Database, Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as store from '../../storage/hierarchy.js';
import type { StoredEvent } from '../../storage/events.js';
import type { RoomVersionId } from './pdu.js';
import { clientContent } from './events_view.js';
import { plainTopic, type PublicRoom } from './public_rooms.js';

/** Limits of one `/hierarchy` request (core/config.ts, HEARTH_HIERARCHY_*). */
export interface HierarchyLimits {
  /** Most rooms one walk looks at (every page re-walks the tree from the root). */
  maxRooms: number;
  /** Deepest level below the root that is listed, and the default `max_depth`. */
  maxDepth: number;
  /** Most rooms a page lists, and the default `limit`. */
  maxPage: number;
}

export interface HierarchyQuery {
  suggestedOnly: boolean;
  limit?: number;
  maxDepth?: number;
  from?: string;
}

/** A stripped m.space.child with its `origin_server_ts` (StrippedChildStateEvent). */
interface ChildState {
  type: 'm.space.child';
  state_key: string;
  content: Record<string, unknown>;
  sender: string;
  origin_server_ts: number;
}

/** A `SpaceHierarchyRoomsChunk`: a published-room summary plus the space's children. */
export interface HierarchyRoom extends PublicRoom {
  children_state: ChildState[];
}

interface Summary {
  room: HierarchyRoom;
  /** Children in the spec's order (spaces module, "Ordering of children within a space"). */
  children: ChildState[];
  accessible: boolean;
  /** From another server's answer: its children's entries, and the children it says we cannot see. */
  remoteChildren?: Map<string, RemoteHierarchyEntry>;
  inaccessible?: Set<string>;
}

/** A room as this server describes it to anyone (no user's access judged): see `describeRoom`. */
export interface RoomDescription {
  room: HierarchyRoom;
  children: ChildState[];
  joinRule: string | undefined;
  /** The `allow` rooms of a restricted (or knock_restricted) room's join rules. */
  allowedRoomIds: string[];
  worldReadable: boolean;
}

/** A room's entry from another server (federation `/hierarchy`), children_state not yet filtered. */
export interface RemoteHierarchyEntry {
  room: HierarchyRoom;
  allowedRoomIds: string[];
}

/** Another server's `/hierarchy` answer for one room. */
export interface RemoteSpaceAnswer {
  room: RemoteHierarchyEntry;
  children: Map<string, RemoteHierarchyEntry>;
  inaccessible: Set<string>;
}

/**
 * Rooms this server is not in, over federation (services/federation/hierarchy.ts). `budget` is
 * per client request: each request to another server spends one.
 */
export interface RemoteHierarchySource {
  budget(): { remaining: number };
  /** Whether a user of this server is joined (then our own state is current). */
  isJoined(roomId: string): Promise<boolean>;
  fetch(roomId: string, via: string[], suggestedOnly: boolean, budget: { remaining: number }): Promise<RemoteSpaceAnswer | undefined>;
}

const nonEmpty = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** `order`: printable ASCII (0x20-0x7E), at most 50 characters; anything else counts as absent. */
const validOrder = (v: unknown): string | undefined => (typeof v === 'string' && v.length <= 50 && /^[\x20-\x7E]*$/.test(v) ? v : undefined);

/** Ordered keys first (by code point), then by timestamp, then by room id. */
function compareChildren(a: ChildState, b: ChildState): number {
  const oa = validOrder(a.content.order);
  const ob = validOrder(b.content.order);
  if (oa !== undefined && ob === undefined) return -1;
  if (oa === undefined && ob !== undefined) return 1;
  if (oa !== undefined && ob !== undefined && oa !== ob) return oa < ob ? -1 : 1;
  if (a.origin_server_ts !== b.origin_server_ts) return a.origin_server_ts - b.origin_server_ts;
  return a.state_key < b.state_key ? -1 : a.state_key > b.state_key ? 1 : 0;
}

/** A child counts only with a non-empty `via` of strings (a child without one was removed). */
const validChild = (c: Record<string, unknown>): boolean => Array.isArray(c.via) && c.via.length > 0 && c.via.every((v) => typeof v === 'string');


/** Pagination tokens carry the walk's parameters and how many rooms were already listed. */
function formatToken(t: { root: string; suggestedOnly: boolean; maxDepth: number; offset: number }): string {
  return Buffer.from(JSON.stringify([t.root, t.suggestedOnly, t.maxDepth, t.offset])).toString('base64url');
}

function parseToken(raw: string): { root: string; suggestedOnly: boolean; maxDepth: number; offset: number } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || v.length !== 4 || typeof v[0] !== 'string' || typeof v[1] !== 'boolean' || !Number.isSafeInteger(v[2]) || !Number.isSafeInteger(v[3]) || (v[3] as number) < 0) {
    throw invalidParam("Invalid 'from' token");
  }
  return { root: v[0], suggestedOnly: v[1], maxDepth: v[2] as number, offset: v[3] as number };
}

/**
 * `GET /v1/rooms/{roomId}/hierarchy` (spec: spaces): a depth-first walk of m.space.child from a
 * room the user can see, listing the rooms they may see (joined, invited, public, knockable,
 * restricted with a room they are in, or world-readable), each room once (loops are broken).
 * Rooms this server is not in are asked of a server from their `via` (the root: its room id's
 * server) through `remote` when federation is on (answers cached there), else skipped unless we
 * hold their state. Tokens are stateless: a page re-walks the tree and skips what was listed.
 */
export class HierarchyService {
  /** Federation `/hierarchy` for rooms we are not in (services/index.ts sets it when federation is on). */
  remote?: RemoteHierarchySource;

  constructor(private readonly deps: { db: Database; limits: HierarchyLimits }) {}

  async hierarchy(userId: string, rootId: string, q: HierarchyQuery): Promise<{ rooms: HierarchyRoom[]; next_batch?: string }> {
    const { limits } = this.deps;
    if (q.limit !== undefined && q.limit <= 0) throw invalidParam("'limit' must be greater than zero");
    if (q.maxDepth !== undefined && q.maxDepth < 0) throw invalidParam("'max_depth' must not be negative");
    const limit = Math.min(q.limit ?? limits.maxPage, limits.maxPage);
    let maxDepth = Math.min(q.maxDepth ?? limits.maxDepth, limits.maxDepth);
    let offset = 0;
    if (q.from !== undefined) {
      const t = parseToken(q.from);
      // The spec: `suggested_only` and `max_depth` cannot change while paginating.
      if (t.root !== rootId || t.suggestedOnly !== q.suggestedOnly || (q.maxDepth !== undefined && t.maxDepth !== maxDepth)) {
        throw invalidParam("'from' belongs to another request: room, suggested_only and max_depth must stay the same");
      }
      maxDepth = t.maxDepth;
      offset = t.offset;
    }
    const db = this.deps.db;
    const memberships = await store.membershipsOf(db, userId);
    const budget = this.remote?.budget() ?? { remaining: 0 };
    const find = (e: WalkEntry) => this.find(db, e, userId, memberships, q.suggestedOnly, e.depth >= maxDepth, budget);
    const rootEntry: WalkEntry = { roomId: rootId, depth: 0, via: serverOfRoom(rootId) };
    const root = await find(rootEntry);
    if (!root?.accessible) throw forbidden('You cannot see this room');

    const listed: HierarchyRoom[] = [];
    const seen = new Set<string>([rootId]);
    // A stack of rooms to visit; children are pushed in reverse so the first child comes next.
    const stack: WalkEntry[] = [{ ...rootEntry, summary: root }];
    let visited = 0;
    let more = false;
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (visited >= limits.maxRooms) break;
      visited++;
      const s = next.summary ?? (await find(next));
      if (!s?.accessible) continue;
      if (listed.length === offset + limit) {
        more = true;
        break;
      }
      listed.push(s.room);
      if (next.depth >= maxDepth) continue;
      for (const c of [...s.children].reverse()) {
        if (seen.has(c.state_key) || s.inaccessible?.has(c.state_key)) continue;
        seen.add(c.state_key);
        stack.push({ roomId: c.state_key, depth: next.depth + 1, via: c.content.via as string[], prefetched: s.remoteChildren?.get(c.state_key) });
      }
    }
    const rooms = listed.slice(offset);
    return { rooms, ...(more ? { next_batch: formatToken({ root: rootId, suggestedOnly: q.suggestedOnly, maxDepth, offset: offset + rooms.length }) } : {}) };
  }

  /**
   * A room of the walk: from our state when we are in it (or federation is off), else from another
   * server — a non-space child (or one at the deepest level) straight from its parent's answer — and
   * from whatever state we hold when no server answers.
   */
  private async find(sql: Sql, e: WalkEntry, userId: string, memberships: Map<string, string>, suggestedOnly: boolean, deepest: boolean, budget: { remaining: number }): Promise<Summary | undefined> {
    const remote = this.remote;
    if (!remote || (await remote.isJoined(e.roomId))) return this.summarize(sql, e.roomId, userId, memberships, suggestedOnly);
    const answer =
      e.prefetched && (e.prefetched.room.room_type !== 'm.space' || deepest)
        ? { room: e.prefetched, children: new Map<string, RemoteHierarchyEntry>(), inaccessible: new Set<string>() }
        : await remote.fetch(e.roomId, e.via, suggestedOnly, budget);
    if (!answer || answer.room.room.room_id !== e.roomId) return this.summarize(sql, e.roomId, userId, memberships, suggestedOnly);
    const { room, allowedRoomIds } = answer.room;
    const children = room.room_type === 'm.space' ? filterChildren(room.children_state, suggestedOnly) : [];
    const allow = allowedRoomIds.map((id) => ({ type: 'm.room_membership', room_id: id }));
    return {
      room: { ...room, children_state: children },
      children,
      accessible: room.world_readable || memberships.has(e.roomId) || mayJoinOrKnock(room.join_rule, { allow }, memberships),
      remoteChildren: answer.children,
      inaccessible: answer.inaccessible,
    };
  }

  /** One room's entry and children, and whether the user may see it; undefined for a room this server does not hold. */
  private async summarize(sql: Sql, roomId: string, userId: string, memberships: Map<string, string>, suggestedOnly: boolean): Promise<Summary | undefined> {
    const d = await describeRoom(sql, roomId, suggestedOnly);
    if (!d) return undefined;
    const joinRules = { allow: d.allowedRoomIds.map((id) => ({ type: 'm.room_membership', room_id: id })) };
    return { room: d.room, children: d.children, accessible: d.worldReadable || memberships.has(roomId) || mayJoinOrKnock(d.joinRule, joinRules, memberships) };
  }
}

interface WalkEntry {
  roomId: string;
  depth: number;
  /** Servers that may know the room (its m.space.child `via`; for the root, its room id's server). */
  via: string[];
  summary?: Summary;
  /** The room's entry from its parent's federation answer, if any. */
  prefetched?: RemoteHierarchyEntry;
}

const serverOfRoom = (roomId: string): string[] => {
  const i = roomId.indexOf(':');
  return i > 0 ? [roomId.slice(i + 1)] : [];
};

/** Valid children (suggested ones only when asked), in the spec's order. */
function filterChildren(list: ChildState[], suggestedOnly: boolean): ChildState[] {
  return list.filter((c) => validChild(c.content) && (!suggestedOnly || c.content.suggested === true)).sort(compareChildren);
}

/**
 * A room as this server holds it (its entry and valid children, no user's access judged);
 * undefined for a room we do not hold. The walk above and the federation `/hierarchy` use it.
 */
export async function describeRoom(sql: Sql, roomId: string, suggestedOnly: boolean): Promise<RoomDescription | undefined> {
  const found = await store.summaryState(sql, roomId);
  if (!found || found.rows.length === 0) return undefined;
  const version = found.version as RoomVersionId;
  const stored = await events.getEvents(sql, found.rows.map((r) => r.event_id));
  const content = (type: string): Record<string, unknown> => {
    const row = found.rows.find((r) => r.type === type && r.state_key === '');
    const s = row && stored.get(row.event_id);
    return s ? clientContent(s, version) : {};
  };
  const joinRules = content('m.room.join_rules');
  const joinRule = nonEmpty(joinRules.join_rule);
  const worldReadable = content('m.room.history_visibility').history_visibility === 'world_readable';
  const roomType = nonEmpty(content('m.room.create').type);
  const children: ChildState[] = [];
  // Only a space has children (SpaceHierarchyRoomsChunk: "If the room is not a space-room, this should be empty").
  if (roomType === 'm.space') {
    for (const r of found.rows) {
      if (r.type !== 'm.space.child') continue;
      const s = stored.get(r.event_id) as StoredEvent;
      const c = clientContent(s, version);
      if (!validChild(c) || (suggestedOnly && c.suggested !== true)) continue;
      children.push({ type: 'm.space.child', state_key: r.state_key, content: c, sender: s.event.sender, origin_server_ts: s.event.origin_server_ts });
    }
    children.sort(compareChildren);
  }
  const room: HierarchyRoom = {
    room_id: roomId,
    num_joined_members: found.joined,
    world_readable: worldReadable,
    guest_can_join: content('m.room.guest_access').guest_access === 'can_join',
    name: nonEmpty(content('m.room.name').name),
    topic: plainTopic(content('m.room.topic')),
    canonical_alias: nonEmpty(content('m.room.canonical_alias').alias),
    avatar_url: nonEmpty(content('m.room.avatar').url),
    join_rule: joinRule,
    room_type: roomType,
    children_state: children,
  };
  for (const k of Object.keys(room) as (keyof HierarchyRoom)[]) if (room[k] === undefined) delete room[k];
  const allow = joinRule === 'restricted' || joinRule === 'knock_restricted' ? (Array.isArray(joinRules.allow) ? joinRules.allow : []) : [];
  const allowedRoomIds = allow.filter((a) => isObject(a) && a.type === 'm.room_membership' && typeof a.room_id === 'string').map((a) => (a as { room_id: string }).room_id);
  return { room, children, joinRule, allowedRoomIds, worldReadable };
}

/** Public and knockable rooms, and restricted ones whose allow list names a room the user is in. */
function mayJoinOrKnock(joinRule: string | undefined, content: Record<string, unknown>, memberships: Map<string, string>): boolean {
  if (joinRule === 'public' || joinRule === 'knock' || joinRule === 'knock_restricted') return true;
  if (joinRule !== 'restricted') return false;
  const allow = Array.isArray(content.allow) ? content.allow : [];
  return allow.some((a) => isObject(a) && a.type === 'm.room_membership' && typeof a.room_id === 'string' && memberships.get(a.room_id) === 'join');
}
