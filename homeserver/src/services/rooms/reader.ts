import { MatrixError, forbidden, notFound } from '../../core/errors.js';
import type { Database, Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as stateStore from '../../storage/state.js';
import type { StoredEvent } from '../../storage/events.js';
import { stateKey, type RoomVersionId, type StateMap } from './pdu.js';
import { filterVisible, toClientEvents, type ClientEvent } from './events_view.js';
import { eventPasses, type RoomEventFilter } from '../sync/filter.js';
import { formatToken, parseToken } from '../sync/token.js';
import { ignoredUsers, withoutIgnored } from '../ephemeral/ignored.js';
import { pagePosition, pageToken } from './page_tokens.js';

export interface Viewer {
  userId: string;
  deviceId: string;
}

/** How far into a room's history a user may read. */
interface Access {
  version: RoomVersionId;
  membership: string | undefined;
  /** Highest stream position visible: the leave/ban event for former members, else unbounded. */
  upTo: number;
  /** State the user sees: current state for members, the state at their leave for former members. */
  stateSnapshot: number | 'current';
}

/** Most events one /messages or /context page returns, whatever the client asks. */
export const MAX_PAGE = 1000;

/**
 * The read side of rooms: every read first decides what the user may see (membership and
 * history visibility); non-members of rooms that are not world-readable get M_FORBIDDEN.
 */
export class RoomReader {
  /** Fetches older history from other servers (federation on); resolves to how many events it stored. */
  backfill?: (roomId: string, limit: number) => Promise<number>;

  constructor(private readonly deps: { db: Database }) {}

  async access(sql: Sql, userId: string, roomId: string): Promise<Access> {
    const rows = await sql.query<{ room_version: string }>('select room_version from rooms where room_id = ?', [roomId]);
    if (!rows[0]) throw forbidden('You are not in this room'); // no existence oracle for non-members
    const version = rows[0].room_version as RoomVersionId;
    const memberEventId = await stateStore.getCurrentStateEventId(sql, roomId, 'm.room.member', userId);
    const memberEvent = memberEventId ? await events.getEvent(sql, memberEventId) : undefined;
    const membership = memberEvent?.event.content.membership as string | undefined;
    if (membership === 'join') return { version, membership, upTo: Number.MAX_SAFE_INTEGER, stateSnapshot: 'current' };
    if ((membership === 'leave' || membership === 'ban') && memberEvent?.streamOrdering != null && memberEvent.stateAfter !== null) {
      // Kicked or left: history up to the moment of leaving, and the state as it was then.
      const forgotten = await sql.query('select 1 from room_forgotten where user_id = ? and room_id = ?', [userId, roomId]);
      if (forgotten.length === 0) return { version, membership, upTo: memberEvent.streamOrdering, stateSnapshot: memberEvent.stateAfter };
    }
    if (await isWorldReadable(sql, roomId)) return { version, membership, upTo: Number.MAX_SAFE_INTEGER, stateSnapshot: 'current' };
    throw forbidden('You are not in this room');
  }

  private async stateIds(sql: Sql, roomId: string, access: Access): Promise<StateMap> {
    if (access.stateSnapshot !== 'current') return stateStore.loadSnapshot(sql, access.stateSnapshot);
    const out: StateMap = new Map();
    for (const r of await stateStore.getCurrentState(sql, roomId)) out.set(stateKey(r.type, r.state_key), r.event_id);
    return out;
  }

  private async view(sql: Sql, stored: StoredEvent[], version: RoomVersionId, viewer?: Viewer): Promise<ClientEvent[]> {
    const versions = new Map(stored.map((s) => [s.event.room_id, version]));
    return toClientEvents(sql, stored, versions, { viewer });
  }

  async state(viewer: Viewer, roomId: string): Promise<ClientEvent[]> {
    const db = this.deps.db;
    const access = await this.access(db, viewer.userId, roomId);
    const ids = await this.stateIds(db, roomId, access);
    const stored = [...(await events.getEvents(db, [...ids.values()])).values()];
    return this.view(db, stored, access.version, viewer);
  }

  async stateEvent(viewer: Viewer, roomId: string, type: string, key: string): Promise<ClientEvent> {
    const db = this.deps.db;
    const access = await this.access(db, viewer.userId, roomId);
    const id = (await this.stateIds(db, roomId, access)).get(stateKey(type, key));
    const stored = id ? await events.getEvent(db, id) : undefined;
    if (!stored) throw notFound('Event not found');
    return (await this.view(db, [stored], access.version, viewer))[0]!;
  }

  /** `/members`: member events at a point (`at` token) or now, filtered by membership. */
  async members(viewer: Viewer, roomId: string, opts: { at?: string; membership?: string; notMembership?: string }): Promise<ClientEvent[]> {
    const db = this.deps.db;
    const access = await this.access(db, viewer.userId, roomId);
    let ids: StateMap;
    if (opts.at !== undefined) {
      const at = Math.min(parseToken(opts.at, 'at token').events, access.upTo);
      const snap = await events.stateSnapshotAt(db, roomId, at);
      ids = snap === null ? new Map() : await stateStore.loadSnapshot(db, snap);
    } else ids = await this.stateIds(db, roomId, access);
    const memberIds = [...ids].filter(([k]) => k.startsWith('m.room.member\u0000')).map(([, id]) => id);
    const stored = [...(await events.getEvents(db, memberIds)).values()].filter((s) => membershipPasses(s.event.content.membership, opts));
    return this.view(db, stored, access.version, viewer);
  }

  /** `/joined_members`: only for current members (spec: the user must be joined). */
  async joinedMembers(userId: string, roomId: string): Promise<Record<string, { display_name?: string; avatar_url?: string }>> {
    const db = this.deps.db;
    if ((await stateStore.getMembership(db, roomId, userId)) !== 'join') throw forbidden('You are not in this room');
    const rows = await db.query<{ event_id: string; state_key: string }>(
      `select event_id, state_key from current_state where room_id = ? and type = 'm.room.member' and membership = 'join'`,
      [roomId],
    );
    const got = await events.getEvents(db, rows.map((r) => r.event_id));
    const out: Record<string, { display_name?: string; avatar_url?: string }> = {};
    for (const r of rows) {
      const c = got.get(r.event_id)?.event.content ?? {};
      out[r.state_key] = {
        ...(typeof c.displayname === 'string' ? { display_name: c.displayname } : {}),
        ...(typeof c.avatar_url === 'string' ? { avatar_url: c.avatar_url } : {}),
      };
    }
    return out;
  }

  async event(viewer: Viewer, roomId: string, eventId: string): Promise<ClientEvent> {
    const db = this.deps.db;
    const access = await this.access(db, viewer.userId, roomId);
    const stored = await events.getEvent(db, eventId);
    if (!stored || stored.event.room_id !== roomId || stored.rejected || stored.streamOrdering === null || stored.streamOrdering > access.upTo) {
      throw notFound('Event not found');
    }
    if ((await filterVisible(db, viewer.userId, [stored])).length === 0) throw notFound('Event not found');
    if (withoutIgnored([stored], await ignoredUsers(db, viewer.userId)).length === 0) throw notFound('Event not found');
    return (await this.view(db, [stored], access.version, viewer))[0]!;
  }

  /** `/messages`: a page of history in either direction, from and to stream tokens. */
  async messages(
    viewer: Viewer,
    roomId: string,
    opts: { from?: string; to?: string; dir: 'b' | 'f'; limit: number; filter?: RoomEventFilter },
  ): Promise<{ chunk: ClientEvent[]; start: string; end?: string; state: ClientEvent[] }> {
    const db = this.deps.db;
    const access = await this.access(db, viewer.userId, roomId);
    const limit = Math.min(Math.max(opts.limit, 0), MAX_PAGE);
    const now = await events.maxStreamOrdering(db);
    const ceiling = Math.min(access.upTo, now);
    const from = opts.from !== undefined ? pagePosition(opts.from, 'from token') : opts.dir === 'b' ? ceiling : 0;
    const to = opts.to !== undefined ? pagePosition(opts.to, 'to token') : undefined;
    const f = opts.filter;
    // Backwards past the oldest event we hold: older history comes from other servers (negative positions).
    const readBack = () => events.roomEventsBetween(db, roomId, { after: to ?? Number.MIN_SAFE_INTEGER, upTo: Math.min(from, ceiling), limit, newestFirst: true, types: f?.types, notTypes: f?.notTypes });
    let page =
      opts.dir === 'b'
        ? await readBack()
        : await events.roomEventsBetween(db, roomId, { after: from, upTo: Math.min(to ?? ceiling, ceiling), limit, newestFirst: false, types: f?.types, notTypes: f?.notTypes });
    if (opts.dir === 'b' && page.length < limit && this.backfill && to === undefined && (await this.backfill(roomId, limit - page.length).catch(() => 0)) > 0) page = await readBack();
    const last = page[page.length - 1];
    const readable = await filterVisible(db, viewer.userId, page);
    const visible = withoutIgnored(readable, await ignoredUsers(db, viewer.userId)).filter((s) => !f || eventPasses(f, s.event));
    const chunk = await this.view(db, visible, access.version, viewer);
    let state: ClientEvent[] = [];
    if (f?.lazyLoadMembers && visible.length > 0) {
      const senders = [...new Set(visible.map((s) => s.event.sender))];
      const ids = await this.stateIds(db, roomId, access);
      const memberIds = senders.map((u) => ids.get(stateKey('m.room.member', u))).filter((x): x is string => !!x);
      state = await this.view(db, [...(await events.getEvents(db, memberIds)).values()], access.version, viewer);
    }
    // Paging back into history the viewer may not read (before their join under `joined`
    // visibility): the spec says to omit `end` there, so clients stop instead of paging forever.
    const hiddenHistory = opts.dir === 'b' && page.length > 0 && readable.length === 0;
    const end = last && page.length === limit && !hiddenHistory ? pageToken(opts.dir === 'b' ? last.streamOrdering! - 1 : last.streamOrdering!) : undefined;
    // With fewer events than asked for the history is exhausted in that direction, but a forwards
    // page can grow later: it still returns `end` so clients can poll from there.
    const forwardEnd = opts.dir === 'f' && last ? pageToken(last.streamOrdering!) : undefined;
    return { chunk, start: pageToken(from), ...(end ?? forwardEnd ? { end: end ?? forwardEnd } : {}), state };
  }

  /** `/context/{eventId}`: the event, events around it, and the state at its start. */
  async context(viewer: Viewer, roomId: string, eventId: string, limit: number, filter?: RoomEventFilter) {
    const db = this.deps.db;
    const access = await this.access(db, viewer.userId, roomId);
    const target = await events.getEvent(db, eventId);
    if (!target || target.event.room_id !== roomId || target.streamOrdering === null || target.streamOrdering > access.upTo) {
      throw notFound('Event not found');
    }
    if ((await filterVisible(db, viewer.userId, [target])).length === 0) throw notFound('Event not found');
    const ignored = await ignoredUsers(db, viewer.userId);
    if (withoutIgnored([target], ignored).length === 0) throw notFound('Event not found');
    const n = Math.min(Math.max(limit, 0), MAX_PAGE);
    const pos = target.streamOrdering;
    const beforeN = Math.floor(n / 2);
    const afterN = n - beforeN;
    const ceiling = Math.min(access.upTo, await events.maxStreamOrdering(db));
    const before = await events.roomEventsBetween(db, roomId, { after: 0, upTo: pos - 1, limit: beforeN, newestFirst: true, types: filter?.types, notTypes: filter?.notTypes });
    const after = await events.roomEventsBetween(db, roomId, { after: pos, upTo: ceiling, limit: afterN, newestFirst: false, types: filter?.types, notTypes: filter?.notTypes });
    const pass = (s: StoredEvent) => (!filter || eventPasses(filter, s.event)) && withoutIgnored([s], ignored).length > 0;
    const visBefore = (await filterVisible(db, viewer.userId, before)).filter(pass);
    const visAfter = (await filterVisible(db, viewer.userId, after)).filter(pass);
    // The state at the last event returned; a filter applies to it too (lazy loading keeps the senders' members).
    const snap = (after[after.length - 1] ?? target).stateAfter;
    const stateIds = snap === null ? new Map() : await stateStore.loadSnapshot(db, snap);
    const senders = new Set([target, ...visBefore, ...visAfter].map((s) => s.event.sender));
    const stateEvents = [...(await events.getEvents(db, [...stateIds.values()])).values()].filter(
      (s) => !filter || (eventPasses(filter, s.event) && (!filter.lazyLoadMembers || s.event.type !== 'm.room.member' || senders.has(s.event.state_key ?? ''))),
    );
    const startPos = before.length > 0 ? before[before.length - 1]!.streamOrdering! - 1 : pos - 1;
    const endPos = after.length > 0 ? after[after.length - 1]!.streamOrdering! : pos;
    return {
      event: (await this.view(db, [target], access.version, viewer))[0]!,
      events_before: await this.view(db, visBefore, access.version, viewer),
      events_after: await this.view(db, visAfter, access.version, viewer),
      state: await this.view(db, stateEvents, access.version, viewer),
      start: formatToken({ events: Math.max(0, startPos) }),
      end: formatToken({ events: endPos }),
    };
  }

  async joinedRooms(userId: string): Promise<string[]> {
    return stateStore.roomsWithMembership(this.deps.db, userId, 'join');
  }
}

/** Whether the room's current history visibility is `world_readable` (readable by anyone logged in). */
export async function isWorldReadable(sql: Sql, roomId: string): Promise<boolean> {
  const id = await stateStore.getCurrentStateEventId(sql, roomId, 'm.room.history_visibility', '');
  if (!id) return false;
  // Redaction keeps `history_visibility`, so the stored content answers for redacted events too.
  return (await events.getEvent(sql, id))?.event.content.history_visibility === 'world_readable';
}

/**
 * `/members`' `membership` and `not_membership`: each alone filters; together they are an 'or'
 * (rooms.yaml: the membership *is* `membership` or *is not* `not_membership`).
 */
function membershipPasses(m: unknown, opts: { membership?: string; notMembership?: string }): boolean {
  const is = opts.membership !== undefined ? m === opts.membership : undefined;
  const isNot = opts.notMembership !== undefined ? m !== opts.notMembership : undefined;
  if (is !== undefined && isNot !== undefined) return is || isNot;
  return is ?? isNot ?? true;
}

export function badDir(): MatrixError {
  return new MatrixError(400, 'M_INVALID_PARAM', "'dir' must be 'b' or 'f'");
}
