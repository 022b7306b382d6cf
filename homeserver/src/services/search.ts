import { invalidParam } from '../core/errors.js';
import type { Database, Sql } from '../storage/db.js';
import * as events from '../storage/events.js';
import * as stateStore from '../storage/state.js';
import * as store from '../storage/search.js';
import type { StoredEvent } from '../storage/events.js';
import { SEARCH_KEYS, type SearchKey } from '../storage/search.js';
import type { RoomEvent, RoomVersionId } from './rooms/pdu.js';
import { stateKey } from './rooms/pdu.js';
import { filterVisible, toClientEvents, type ClientEvent } from './rooms/events_view.js';
import type { RoomReader, Viewer } from './rooms/reader.js';
import { eventPasses, roomPasses, type RoomEventFilter } from './sync/filter.js';
import { formatToken } from './sync/token.js';

/** `search_categories.room_events` of `POST /search`, already type-checked. */
export interface RoomEventsSearch {
  searchTerm: string;
  keys: SearchKey[];
  filter: RoomEventFilter;
  orderBy: 'rank' | 'recent';
  eventContext?: { beforeLimit: number; afterLimit: number; includeProfile: boolean };
  includeState: boolean;
  groupBy: ('room_id' | 'sender')[];
}

export const DEFAULT_SEARCH_LIMIT = 10;
export const MAX_SEARCH_LIMIT = 100;
/** Most words of a search term that are used (the rest are ignored). */
const MAX_WORDS = 20;
/** Candidate batches examined per request before answering with what was found and a next_batch. */
const MAX_BATCHES = 10;

/** Indexes an m.room.message, m.room.name or m.room.topic event for search (in its write transaction). */
export async function indexForSearch(tx: Sql, event: RoomEvent, streamOrdering: number): Promise<void> {
  for (const [key, type] of Object.entries(SEARCH_KEYS) as [SearchKey, string][]) {
    if (event.type !== type) continue;
    const text = event.content[key.slice('content.'.length)];
    if (typeof text !== 'string' || text.length === 0) continue;
    await store.insertSearchEntry(tx, {
      eventId: event.event_id,
      roomId: event.room_id,
      key,
      type,
      sender: event.sender,
      // PostgreSQL text cannot hold NUL, which JSON (and so an event) can.
      text: text.replaceAll('\u0000', ' '),
      streamOrdering,
      originServerTs: event.origin_server_ts,
    });
  }
}

/** A redacted event loses its searchable content (every room version strips it). */
export async function forgetSearchOnRedaction(tx: Sql, eventId: string): Promise<void> {
  await store.deleteSearchEntry(tx, eventId);
}

/** The words of a search term, lowercased: letters and digits only, so they are safe in a tsquery. */
export function searchWords(term: string): string[] {
  return [...new Set(term.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [])].slice(0, MAX_WORDS);
}

function parseBatch(raw: string | undefined, order: 'rank' | 'recent'): { offset: number; before?: number } {
  if (raw === undefined) return { offset: 0 };
  const m = /^([rt])(\d{1,15})$/.exec(raw);
  if (!m || (m[1] === 'r') !== (order === 'rank')) throw invalidParam("Invalid 'next_batch'");
  return order === 'rank' ? { offset: Number(m[2]) } : { offset: 0, before: Number(m[2]) };
}

/** Server-side search (spec: "Server Side Search") and the user directory. */
export class SearchService {
  constructor(private readonly deps: { db: Database; reader: RoomReader }) {}

  async searchRoomEvents(viewer: Viewer, req: RoomEventsSearch, nextBatch?: string): Promise<Record<string, unknown>> {
    const db = this.deps.db;
    const f = req.filter;
    const limit = Math.min(f.limit ?? DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT);
    const cursor = parseBatch(nextBatch, req.orderBy);
    const words = searchWords(req.searchTerm);
    // Only rooms the user is joined to now (spec: search is over the user's rooms).
    const roomIds = (await stateStore.roomsWithMembership(db, viewer.userId, 'join')).filter((r) => roomPasses(f, r));
    const query: store.SearchQuery = {
      tsquery: words.map((w) => `${w}:*`).join(' & '),
      roomIds: words.length > 0 && limit > 0 ? roomIds : [],
      keys: req.keys,
      types: f.types,
      notTypes: f.notTypes,
      senders: f.senders,
      notSenders: f.notSenders,
      order: req.orderBy,
      offset: cursor.offset,
      before: cursor.before,
      limit: Math.max(limit * 2, 20),
    };
    const found: { hit: store.SearchHit; stored: StoredEvent }[] = [];
    let exhausted = false;
    let next: string | undefined;
    for (let i = 0; i < MAX_BATCHES && found.length < limit && !exhausted; i++) {
      const hits = await store.searchEvents(db, query);
      exhausted = hits.length < query.limit;
      const visible = await this.visible(viewer.userId, hits, f);
      let consumed = 0;
      for (const hit of hits) {
        if (found.length >= limit) break;
        consumed++;
        const stored = visible.get(hit.event_id);
        if (stored) found.push({ hit, stored });
        query.offset += 1;
        query.before = Number(hit.stream_ordering);
      }
      if (consumed < hits.length) exhausted = false;
    }
    if (!exhausted) next = req.orderBy === 'rank' ? `r${query.offset}` : `t${query.before ?? Number.MAX_SAFE_INTEGER}`;

    const versions = await roomVersions(db, [...new Set(found.map((x) => x.stored.event.room_id))]);
    const view = (evs: StoredEvent[]) => toClientEvents(db, evs, versions, { viewer });
    const clientEvents = await view(found.map((x) => x.stored));
    const results = [];
    for (const [i, x] of found.entries()) {
      const result: Record<string, unknown> = { rank: x.hit.rank, result: clientEvents[i] };
      if (req.eventContext) result.context = await this.context(viewer.userId, x.stored, req.eventContext, view);
      results.push(result);
    }
    const out: Record<string, unknown> = {
      count: words.length > 0 && limit > 0 ? await store.countMatches(db, query) : 0,
      highlights: words,
      results,
      ...(next !== undefined ? { next_batch: next } : {}),
    };
    if (req.includeState) {
      const state: Record<string, ClientEvent[]> = {};
      for (const roomId of versions.keys()) state[roomId] = await this.deps.reader.state(viewer, roomId);
      out.state = state;
    }
    if (req.groupBy.length > 0) out.groups = groups(req.groupBy, found.map((x) => x.stored.event), next);
    return { search_categories: { room_events: out } };
  }

  /** The hits the user may see (history visibility, and the filter's `*` patterns), by event id. */
  private async visible(userId: string, hits: store.SearchHit[], f: RoomEventFilter): Promise<Map<string, StoredEvent>> {
    const stored = await events.getEvents(this.deps.db, hits.map((h) => h.event_id));
    const byRoom = new Map<string, StoredEvent[]>();
    for (const s of stored.values()) {
      if (s.redactedBy || s.rejected || !eventPasses(f, s.event)) continue;
      byRoom.set(s.event.room_id, [...(byRoom.get(s.event.room_id) ?? []), s]);
    }
    const out = new Map<string, StoredEvent>();
    for (const list of byRoom.values()) for (const s of await filterVisible(this.deps.db, userId, list)) out.set(s.event.event_id, s);
    return out;
  }

  /** `context` of one result: visible events around it and, if asked, the senders' profiles at the time. */
  private async context(
    userId: string,
    target: StoredEvent,
    opts: { beforeLimit: number; afterLimit: number; includeProfile: boolean },
    view: (evs: StoredEvent[]) => Promise<ClientEvent[]>,
  ): Promise<Record<string, unknown>> {
    const db = this.deps.db;
    const roomId = target.event.room_id;
    const pos = target.streamOrdering!;
    const before = await events.roomEventsBetween(db, roomId, { after: 0, upTo: pos - 1, limit: opts.beforeLimit, newestFirst: true });
    const after = await events.roomEventsBetween(db, roomId, { after: pos, upTo: await events.maxStreamOrdering(db), limit: opts.afterLimit, newestFirst: false });
    const visBefore = await filterVisible(db, userId, before);
    const visAfter = await filterVisible(db, userId, after);
    const out: Record<string, unknown> = {
      events_before: await view(visBefore),
      events_after: await view(visAfter),
      start: formatToken({ events: Math.max(0, (before[before.length - 1]?.streamOrdering ?? pos) - 1) }),
      end: formatToken({ events: after[after.length - 1]?.streamOrdering ?? pos }),
    };
    if (opts.includeProfile && target.stateAfter !== null) {
      const senders = [...new Set([target, ...visBefore, ...visAfter].map((s) => s.event.sender))];
      const ids = await stateStore.loadSnapshotKeys(db, target.stateAfter, senders.map((u) => ['m.room.member', u] as [string, string]));
      const members = await events.getEvents(db, [...ids.values()]);
      const profiles: Record<string, { displayname?: string; avatar_url?: string }> = {};
      for (const u of senders) {
        const c = members.get(ids.get(stateKey('m.room.member', u)) ?? '')?.event.content ?? {};
        profiles[u] = {
          ...(typeof c.displayname === 'string' ? { displayname: c.displayname } : {}),
          ...(typeof c.avatar_url === 'string' ? { avatar_url: c.avatar_url } : {}),
        };
      }
      out.profile_info = profiles;
    }
    return out;
  }

  /** `POST /user_directory/search`: users sharing a room with the requester or in public rooms. */
  async searchUsers(userId: string, term: string, limit: number): Promise<{ results: Record<string, string>[]; limited: boolean }> {
    const trimmed = term.trim();
    const rows = trimmed.length === 0 || limit <= 0 ? [] : await store.searchUserDirectory(this.deps.db, userId, trimmed, limit + 1);
    return {
      results: rows.slice(0, Math.max(limit, 0)).map((r) => ({
        user_id: r.user_id,
        ...(r.displayname !== null ? { display_name: r.displayname } : {}),
        ...(r.avatar_url !== null ? { avatar_url: r.avatar_url } : {}),
      })),
      limited: rows.length > limit,
    };
  }
}

async function roomVersions(sql: Sql, roomIds: string[]): Promise<Map<string, RoomVersionId>> {
  if (roomIds.length === 0) return new Map();
  const rows = await sql.query<{ room_id: string; room_version: string }>('select room_id, room_version from rooms where room_id in (?)', [roomIds]);
  return new Map(rows.map((r) => [r.room_id, r.room_version as RoomVersionId]));
}

/** `groups`: this page's results by room or sender, groups ordered by their best result. */
function groups(by: ('room_id' | 'sender')[], evs: RoomEvent[], next: string | undefined) {
  const out: Record<string, Record<string, { results: string[]; order: number; next_batch?: string }>> = {};
  for (const key of by) {
    const g: Record<string, { results: string[]; order: number; next_batch?: string }> = {};
    for (const ev of evs) {
      const k = key === 'room_id' ? ev.room_id : ev.sender;
      g[k] ??= { results: [], order: Object.keys(g).length + 1, ...(next !== undefined ? { next_batch: next } : {}) };
      g[k].results.push(ev.event_id);
    }
    out[key] = g;
  }
  return out;
}
