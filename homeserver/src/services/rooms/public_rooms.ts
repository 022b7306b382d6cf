import { invalidParam } from '../../core/errors.js';
import { isObject } from '../../core/json.js';
import type { Sql } from '../../storage/db.js';
import * as aliases from '../../storage/aliases.js';
import * as events from '../../storage/events.js';
import type { StoredEvent } from '../../storage/events.js';
import type { RoomVersionId } from './pdu.js';
import { clientContent } from './events_view.js';

/** `/publicRooms` options (request body or query string, already type-checked). */
export interface PublicRoomsQuery {
  limit?: number;
  since?: string;
  /** `filter.generic_search_term`: a case-insensitive substring of the name, topic or canonical alias. */
  searchTerm?: string;
  /** `filter.room_types`: `null` stands for rooms without a type; empty or absent means any. */
  roomTypes?: (string | null)[];
  /** No application service networks exist here: asking for one lists nothing. */
  thirdPartyInstanceId?: string;
}

/** A `PublishedRoomsChunk` entry. */
export interface PublicRoom {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  join_rule?: string;
  room_type?: string;
}

export interface PublicRoomsPage {
  chunk: PublicRoom[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

/** The most rooms one page lists (also the page size when the client gives no limit, or 0). */
export const MAX_PUBLIC_ROOMS_PAGE = 500;

const nonEmpty = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The plain-text topic: `topic`, else the `text/plain` representation in `m.topic` (spec: m.room.topic). */
export function plainTopic(content: Record<string, unknown>): string | undefined {
  const topic = nonEmpty(content.topic);
  if (topic !== undefined) return topic;
  const block = content['m.topic'];
  const texts = isObject(block) && Array.isArray(block['m.text']) ? block['m.text'] : [];
  const plain = texts.find((t) => isObject(t) && (t.mimetype === undefined || t.mimetype === 'text/plain'));
  return isObject(plain) ? nonEmpty(plain.body) : undefined;
}

function summarize(row: aliases.PublishedRoomRow, stored: Map<string, StoredEvent>): PublicRoom {
  const content = (type: string): Record<string, unknown> => {
    const s = stored.get(row.stateIds.get(type) ?? '');
    return s ? clientContent(s, row.roomVersion as RoomVersionId) : {};
  };
  const entry: PublicRoom = {
    room_id: row.roomId,
    num_joined_members: row.joinedMembers,
    world_readable: content('m.room.history_visibility').history_visibility === 'world_readable',
    guest_can_join: content('m.room.guest_access').guest_access === 'can_join',
    name: nonEmpty(content('m.room.name').name),
    topic: plainTopic(content('m.room.topic')),
    canonical_alias: nonEmpty(content('m.room.canonical_alias').alias),
    avatar_url: nonEmpty(content('m.room.avatar').url),
    join_rule: nonEmpty(content('m.room.join_rules').join_rule),
    room_type: nonEmpty(content('m.room.create').type),
  };
  for (const k of Object.keys(entry) as (keyof PublicRoom)[]) if (entry[k] === undefined) delete entry[k];
  return entry;
}

/** Directory order: most joined members first, then by room id (stable across pages). */
interface Position {
  joined: number;
  roomId: string;
}
const compare = (a: Position, b: Position) => b.joined - a.joined || (a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : 0);
const positionOf = (r: PublicRoom): Position => ({ joined: r.num_joined_members, roomId: r.room_id });
/** Sorts after every room (for a `prev_batch` taken past the end of the list). */
const PAST_THE_END: Position = { joined: -1, roomId: '' };

/**
 * Keyset tokens: `f` lists the rooms after a position, `b` the rooms before one. A room whose
 * member count changes between two requests may move, but a page never repeats its own rooms.
 */
function formatSince(dir: 'f' | 'b', p: Position): string {
  return Buffer.from(JSON.stringify([dir, p.joined, p.roomId])).toString('base64url');
}

function parseSince(raw: string): { dir: 'f' | 'b'; at: Position } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || v.length !== 3 || (v[0] !== 'f' && v[0] !== 'b') || !Number.isSafeInteger(v[1]) || typeof v[2] !== 'string') {
    throw invalidParam("Invalid 'since' token");
  }
  return { dir: v[0], at: { joined: v[1], roomId: v[2] } };
}

function matches(q: PublicRoomsQuery, term: string | undefined, r: PublicRoom): boolean {
  if (q.roomTypes && q.roomTypes.length > 0 && !q.roomTypes.includes(r.room_type ?? null)) return false;
  if (!term) return true;
  return [r.name, r.topic, r.canonical_alias].some((f) => f !== undefined && f.toLowerCase().includes(term));
}

/**
 * Lists the rooms published in this server's directory that still have a joined member. Every
 * request reads all published rooms (one query for rooms, counts and state ids, one for the
 * events), then searches, sorts and pages in memory: fine for the hundreds of rooms a server
 * publishes; a summary table kept by the writer would replace it for very large directories.
 */
export async function listPublicRooms(sql: Sql, q: PublicRoomsQuery): Promise<PublicRoomsPage> {
  const since = q.since !== undefined ? parseSince(q.since) : undefined;
  if (q.thirdPartyInstanceId !== undefined) return { chunk: [], total_room_count_estimate: 0 };
  const rows = (await aliases.publishedRooms(sql)).filter((r) => r.joinedMembers > 0);
  const stored = await events.getEvents(sql, rows.flatMap((r) => [...r.stateIds.values()]));
  const term = q.searchTerm?.trim().toLowerCase();
  const listed = rows.map((r) => summarize(r, stored));
  const found = listed.filter((r) => matches(q, term, r)).sort((a, b) => compare(positionOf(a), positionOf(b)));

  const limit = q.limit && q.limit > 0 ? Math.min(q.limit, MAX_PUBLIC_ROOMS_PAGE) : MAX_PUBLIC_ROOMS_PAGE;
  const firstAfter = (p: Position) => {
    const i = found.findIndex((r) => compare(positionOf(r), p) > 0);
    return i < 0 ? found.length : i;
  };
  let start = 0;
  let end = Math.min(found.length, limit);
  if (since?.dir === 'f') {
    start = firstAfter(since.at);
    end = Math.min(found.length, start + limit);
  } else if (since?.dir === 'b') {
    end = found.findIndex((r) => compare(positionOf(r), since.at) >= 0);
    if (end < 0) end = found.length;
    start = Math.max(0, end - limit);
  }
  const chunk = found.slice(start, end);
  const page: PublicRoomsPage = { chunk, total_room_count_estimate: listed.length };
  if (end < found.length && chunk.length > 0) page.next_batch = formatSince('f', positionOf(chunk[chunk.length - 1]!));
  if (start > 0) page.prev_batch = formatSince('b', found[start] ? positionOf(found[start]!) : PAST_THE_END);
  return page;
}
