import type { Sql } from './db.js';

/** Which content key of which event type is searchable (spec: `keys` of `room_events`). */
export const SEARCH_KEYS = { 'content.body': 'm.room.message', 'content.name': 'm.room.name', 'content.topic': 'm.room.topic' } as const;
export type SearchKey = keyof typeof SEARCH_KEYS;

/** Indexes an event's searchable text (called in the event's write transaction). */
export async function insertSearchEntry(
  sql: Sql,
  e: { eventId: string; roomId: string; key: SearchKey; type: string; sender: string; text: string; streamOrdering: number; originServerTs: number },
): Promise<void> {
  await sql.query(
    `insert into event_search (event_id, room_id, key, type, sender, vector, stream_ordering, origin_server_ts)
     values (?, ?, ?, ?, ?, to_tsvector('simple', ?), ?, ?) on conflict (event_id) do nothing`,
    [e.eventId, e.roomId, e.key, e.type, e.sender, e.text, e.streamOrdering, e.originServerTs],
  );
}

export async function deleteSearchEntry(sql: Sql, eventId: string): Promise<void> {
  await sql.query('delete from event_search where event_id = ?', [eventId]);
}

export interface SearchQuery {
  /** A `to_tsquery('simple', …)` expression built only from letters and digits. */
  tsquery: string;
  roomIds: string[];
  keys: SearchKey[];
  types?: string[];
  notTypes?: string[];
  senders?: string[];
  notSenders?: string[];
  order: 'rank' | 'recent';
  /** rank: rows of the ordering to skip; recent: only rows below this stream position. */
  offset: number;
  before?: number;
  limit: number;
}

export interface SearchHit {
  event_id: string;
  room_id: string;
  stream_ordering: string;
  rank: number;
}

function where(q: SearchQuery): { sql: string; params: unknown[] } {
  const conds = [`vector @@ to_tsquery('simple', ?)`, 'room_id in (?)', 'key in (?)'];
  const params: unknown[] = [q.tsquery, q.roomIds, q.keys];
  const add = (cond: string, value: unknown) => {
    conds.push(cond);
    params.push(value);
  };
  // Patterns with `*` are matched afterwards (services/search.ts applies the whole filter).
  const exact = (l?: string[]): l is string[] => !!l && l.length > 0 && !l.some((t) => t.includes('*'));
  if (exact(q.types)) add('type in (?)', q.types);
  if (exact(q.notTypes)) add('type not in (?)', q.notTypes);
  if (q.senders && q.senders.length === 0) conds.push('false');
  else if (q.senders) add('sender in (?)', q.senders);
  if (q.notSenders && q.notSenders.length > 0) add('sender not in (?)', q.notSenders);
  return { sql: conds.join(' and '), params };
}

/** A page of matches, best first (rank, then newest) or newest first. */
export async function searchEvents(sql: Sql, q: SearchQuery): Promise<SearchHit[]> {
  if (q.roomIds.length === 0 || q.keys.length === 0) return [];
  const w = where(q);
  const params: unknown[] = [q.tsquery, ...w.params];
  let cond = w.sql;
  if (q.order === 'recent' && q.before !== undefined) {
    cond += ' and stream_ordering < ?';
    params.push(q.before);
  }
  const order = q.order === 'rank' ? 'rank desc, stream_ordering desc' : 'stream_ordering desc';
  params.push(q.limit, q.order === 'rank' ? q.offset : 0);
  const rows = await sql.query<{ event_id: string; room_id: string; stream_ordering: string; rank: string | number }>(
    `select event_id, room_id, stream_ordering, ts_rank(vector, to_tsquery('simple', ?)) as rank
     from event_search where ${cond} order by ${order} limit ? offset ?`,
    params,
  );
  return rows.map((r) => ({ ...r, rank: Number(r.rank) }));
}

/** How many events match in all (before history visibility: the spec's count is approximate). */
export async function countMatches(sql: Sql, q: SearchQuery): Promise<number> {
  if (q.roomIds.length === 0 || q.keys.length === 0) return 0;
  const w = where(q);
  const rows = await sql.query<{ n: string }>(`select count(*) as n from event_search where ${w.sql}`, w.params);
  return Number(rows[0]?.n ?? 0);
}

export interface DirectoryUser {
  user_id: string;
  displayname: string | null;
  avatar_url: string | null;
}

/**
 * Local users matching `term` (localpart or display name, case-insensitive substring) who share a
 * joined room with `userId` or are joined to a room whose join rule is public.
 */
export async function searchUserDirectory(sql: Sql, userId: string, term: string, limit: number): Promise<DirectoryUser[]> {
  const pattern = `%${term.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return sql.query<DirectoryUser>(
    `with visible as (
       select distinct cs.state_key as user_id from current_state cs
       where cs.type = 'm.room.member' and cs.membership = 'join' and (
         cs.room_id in (select room_id from current_state where type = 'm.room.member' and state_key = ? and membership = 'join')
         or cs.room_id in (
           select jr.room_id from current_state jr join events e on e.event_id = jr.event_id
           where jr.type = 'm.room.join_rules' and jr.state_key = '' and (e.json::jsonb -> 'content' ->> 'join_rule') = 'public')
       )
     )
     select u.user_id, u.displayname, u.avatar_url from visible v join users u on u.user_id = v.user_id
     where not u.deactivated and (u.localpart ilike ? escape '\\' or u.displayname ilike ? escape '\\')
     order by u.user_id limit ?`,
    [userId, pattern, pattern, limit],
  );
}
