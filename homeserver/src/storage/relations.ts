import type { Sql } from './db.js';
import { E_COLUMNS, toStored, type EventRow, type StoredEvent } from './events.js';

/** Queries over `event_relations` (migration 0005); the rules live in services/rooms/relations.ts. */

export interface RelationRow {
  eventId: string;
  relatesToId: string;
  relType: string;
  roomId: string;
  sender: string;
  type: string;
  aggregationKey: string | null;
  streamOrdering: number;
}

export async function insertRelation(sql: Sql, r: RelationRow): Promise<void> {
  await sql.query(
    `insert into event_relations (event_id, relates_to_id, rel_type, room_id, sender, type, aggregation_key, stream_ordering)
     values (?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing`,
    [r.eventId, r.relatesToId, r.relType, r.roomId, r.sender, r.type, r.aggregationKey, r.streamOrdering],
  );
}

export async function deleteRelation(sql: Sql, eventId: string): Promise<void> {
  await sql.query('delete from event_relations where event_id = ?', [eventId]);
}

/** The relation an event itself has (as a child), if any. */
export async function relationOf(sql: Sql, eventId: string): Promise<{ relType: string; relatesToId: string } | undefined> {
  const rows = await sql.query<{ rel_type: string; relates_to_id: string }>('select rel_type, relates_to_id from event_relations where event_id = ?', [eventId]);
  return rows[0] ? { relType: rows[0].rel_type, relatesToId: rows[0].relates_to_id } : undefined;
}

/** Whether `sender` already annotated `parentId` with an event of `type` and this key (unredacted). */
export async function hasAnnotation(sql: Sql, a: { parentId: string; sender: string; type: string; key: string }): Promise<boolean> {
  const rows = await sql.query(
    `select 1 from event_relations where relates_to_id = ? and rel_type = 'm.annotation' and sender = ? and type = ? and aggregation_key = ? limit 1`,
    [a.parentId, a.sender, a.type, a.key],
  );
  return rows.length > 0;
}

/**
 * The most recent valid `m.replace` of each parent (spec: "Validity of replacement events"): same
 * room, sender and type as the original, the original no state event and no edit itself; most
 * recent by origin_server_ts, then the largest event id.
 */
export async function latestEdits(sql: Sql, parentIds: string[]): Promise<Map<string, StoredEvent>> {
  const out = new Map<string, StoredEvent>();
  if (parentIds.length === 0) return out;
  const rows = await sql.query<EventRow & { parent_id: string }>(
    `select distinct on (r.relates_to_id) r.relates_to_id as parent_id, ${E_COLUMNS}
     from event_relations r
     join events e on e.event_id = r.event_id
     join events p on p.event_id = r.relates_to_id
     where r.relates_to_id in (?) and r.rel_type = 'm.replace'
       and r.sender = p.sender and r.type = p.type and r.room_id = p.room_id and p.state_key is null
       and e.redacted_by is null and e.rejected_reason is null
       and not exists (select 1 from event_relations pr where pr.event_id = p.event_id and pr.rel_type = 'm.replace')
     order by r.relates_to_id, e.origin_server_ts desc, e.event_id desc`,
    [parentIds],
  );
  for (const r of rows) out.set(r.parent_id, toStored(r));
  return out;
}

export interface ChildSummary {
  parentId: string;
  relType: string;
  count: number;
  latestId: string;
  /** Whether the viewer sent one of the children. */
  viewerSent: boolean;
  /** The children's event ids, oldest first. */
  eventIds: string[];
}

/** Counts, latest child and the children's ids per parent and rel_type (for threads and references). */
export async function childSummaries(sql: Sql, parentIds: string[], relTypes: string[], viewerId: string): Promise<ChildSummary[]> {
  if (parentIds.length === 0 || relTypes.length === 0) return [];
  const rows = await sql.query<{ relates_to_id: string; rel_type: string; n: string; latest_id: string; viewer_sent: boolean; ids: string[] | null }>(
    `select relates_to_id, rel_type, count(*) as n, (array_agg(event_id order by stream_ordering desc))[1] as latest_id,
       bool_or(sender = ?) as viewer_sent,
       case when rel_type = 'm.reference' then array_agg(event_id order by stream_ordering) end as ids
     from event_relations where relates_to_id in (?) and rel_type in (?)
     group by relates_to_id, rel_type`,
    [viewerId, parentIds, relTypes],
  );
  return rows.map((r) => ({
    parentId: r.relates_to_id,
    relType: r.rel_type,
    count: Number(r.n),
    latestId: r.latest_id,
    viewerSent: r.viewer_sent,
    eventIds: r.ids ?? [],
  }));
}

/**
 * Child events of `parentId` in stream order within (after, upTo], optionally of one rel_type and
 * event type; with `maxDepth` > 1 also children of children (the filters apply to every level).
 */
export async function children(
  sql: Sql,
  q: { roomId: string; parentId: string; relType?: string; eventType?: string; maxDepth: number; after: number; upTo: number; limit: number; newestFirst: boolean },
): Promise<StoredEvent[]> {
  const params: unknown[] = [q.parentId, q.maxDepth, q.roomId, q.after, q.upTo];
  let where = '';
  if (q.relType !== undefined) {
    where += ' and r.rel_type = ?';
    params.push(q.relType);
  }
  if (q.eventType !== undefined) {
    where += ' and e.type = ?';
    params.push(q.eventType);
  }
  params.push(q.limit);
  const rows = await sql.query<EventRow>(
    `with recursive tree(event_id, depth) as (
       select event_id, 1 from event_relations where relates_to_id = ?
       union
       select r.event_id, tree.depth + 1 from event_relations r join tree on r.relates_to_id = tree.event_id where tree.depth < ?
     )
     select ${E_COLUMNS} from events e join event_relations r on r.event_id = e.event_id
     where e.event_id in (select event_id from tree) and e.room_id = ? and e.stream_ordering > ? and e.stream_ordering <= ?
       and e.rejected_reason is null${where}
     order by e.stream_ordering ${q.newestFirst ? 'desc' : 'asc'} limit ?`,
    params,
  );
  return rows.map(toStored);
}

/**
 * Thread roots of a room, most recently active first: threads whose latest reply (at or before
 * `upTo`) is at or before `before`; with `participant`, only threads they started or replied in.
 */
export async function threadRoots(
  sql: Sql,
  q: { roomId: string; upTo: number; before: number; limit: number; participant?: string },
): Promise<{ rootId: string; latest: number }[]> {
  const params: unknown[] = [q.roomId, q.upTo, q.before];
  let having = '';
  if (q.participant !== undefined) {
    having = ' and (p.sender = ? or bool_or(r.sender = ?))';
    params.push(q.participant, q.participant);
  }
  params.push(q.limit);
  const rows = await sql.query<{ root_id: string; latest: string }>(
    `select r.relates_to_id as root_id, max(r.stream_ordering) as latest
     from event_relations r join events p on p.event_id = r.relates_to_id and p.room_id = r.room_id
     where r.room_id = ? and r.rel_type = 'm.thread' and r.stream_ordering <= ?
     group by r.relates_to_id, p.sender
     having max(r.stream_ordering) <= ?${having}
     order by latest desc limit ?`,
    params,
  );
  return rows.map((r) => ({ rootId: r.root_id, latest: Number(r.latest) }));
}
