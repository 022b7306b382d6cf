import { MatrixError } from '../../core/errors.js';
import type { Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as store from '../../storage/relations.js';
import type { StoredEvent } from '../../storage/events.js';
import type { RoomEvent, RoomVersionId } from './pdu.js';
import type { ClientEvent } from './events_view.js';

/**
 * Event relationships (spec: "Forming relationships between events" and the relation modules):
 * which relations are recorded when an event is written and the bundled aggregations in
 * `unsigned.m.relations`. The `/relations` and `/threads` reads are in relations_reader.ts.
 */

/** How deep `recurse=true` follows relations of relations (the spec asks for at least 3). */
export const RECURSION_DEPTH = 3;

interface Relation {
  relType: string;
  eventId: string;
  key: string | null;
}

/** `content.m.relates_to` with a `rel_type` (replies without one have nothing to record server-side). */
export function relationIn(content: Record<string, unknown>): Relation | undefined {
  const r = content['m.relates_to'];
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return undefined;
  const { rel_type: relType, event_id: eventId, key } = r as Record<string, unknown>;
  if (typeof relType !== 'string' || typeof eventId !== 'string') return undefined;
  return { relType, eventId, key: typeof key === 'string' ? key : null };
}

/**
 * Called by RoomWriter.append in the event's transaction (under the stream lock). Invalid
 * relationships are not recorded (the spec says to ignore them); a thread off an event that has a
 * relation itself is 400 M_UNKNOWN, a second identical annotation 400 M_DUPLICATE_ANNOTATION.
 */
export async function recordRelation(tx: Sql, event: RoomEvent, streamOrdering: number): Promise<void> {
  const rel = relationIn(event.content);
  if (!rel) return;
  const target = await events.getEvent(tx, rel.eventId);
  if (target && target.event.room_id !== event.room_id) return;
  const targetRel = target ? await store.relationOf(tx, rel.eventId) : undefined;
  if (rel.relType === 'm.annotation') {
    if (rel.key === null) return;
    // Annotations of annotations and of edits are not possible (spec: "Event annotations").
    if (targetRel && (targetRel.relType === 'm.annotation' || targetRel.relType === 'm.replace')) return;
    if (await store.hasAnnotation(tx, { parentId: rel.eventId, sender: event.sender, type: event.type, key: rel.key })) {
      throw new MatrixError(400, 'M_DUPLICATE_ANNOTATION', 'You already sent this annotation');
    }
  }
  if (rel.relType === 'm.replace') {
    if (event.state_key !== undefined) return;
    const newContent = event.content['m.new_content'];
    if (event.type !== 'm.room.encrypted' && (typeof newContent !== 'object' || newContent === null)) return;
  }
  if (rel.relType === 'm.thread' && targetRel) {
    throw new MatrixError(400, 'M_UNKNOWN', 'Cannot start a thread from an event with a relation');
  }
  await store.insertRelation(tx, {
    eventId: event.event_id,
    relatesToId: rel.eventId,
    relType: rel.relType,
    roomId: event.room_id,
    sender: event.sender,
    type: event.type,
    aggregationKey: rel.relType === 'm.annotation' ? rel.key : null,
    streamOrdering,
  });
}

/** A redacted event loses `m.relates_to` in room versions 10 to 12, and with it its relation. */
export async function forgetRelationOnRedaction(tx: Sql, eventId: string, version: RoomVersionId): Promise<void> {
  if (version === '10' || version === '11' || version === '12') await store.deleteRelation(tx, eventId);
}

/** Which bundled aggregations to add: all, all but threads (inside a thread summary), or none. */
export type BundleMode = 'all' | 'nested' | 'none';

/**
 * Bundled aggregations (spec: "Aggregations of child events") for a page of events, by event id:
 * `m.replace` (the latest valid edit, spec v1.7+; not for redacted originals), `m.thread`
 * (`latest_event`, `count`, `current_user_participated`) and `m.reference` (`chunk` of ids).
 * Annotations are not aggregated; state events get none. A few queries per page, whatever its size.
 */
export async function bundleRelations(
  sql: Sql,
  stored: StoredEvent[],
  opts: { viewerId?: string; mode: BundleMode; format: (evs: StoredEvent[], mode: BundleMode) => Promise<ClientEvent[]> },
): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  const parents = stored.filter((s) => s.event.state_key === undefined);
  if (opts.mode === 'none' || parents.length === 0) return out;
  const bundle = (id: string) => out.get(id) ?? out.set(id, {}).get(id)!;
  const senders = new Map(parents.map((s) => [s.event.event_id, s.event.sender]));

  const edits = await store.latestEdits(sql, parents.filter((s) => !s.redactedBy).map((s) => s.event.event_id));
  const relTypes = opts.mode === 'all' ? ['m.thread', 'm.reference'] : ['m.reference'];
  const summaries = await store.childSummaries(sql, [...senders.keys()], relTypes, opts.viewerId ?? '');
  const threads = summaries.filter((s) => s.relType === 'm.thread');
  const latest = await events.getEvents(sql, threads.map((t) => t.latestId));
  const toFormat = [...edits.values(), ...latest.values()];
  const formatted = new Map((await opts.format(toFormat, opts.mode === 'all' ? 'nested' : 'none')).map((e) => [e.event_id, e]));

  for (const [parentId, edit] of edits) {
    const ev = formatted.get(edit.event.event_id);
    if (ev) bundle(parentId)['m.replace'] = ev;
  }
  for (const s of summaries) {
    if (s.relType === 'm.reference') bundle(s.parentId)['m.reference'] = { chunk: s.eventIds.map((event_id) => ({ event_id })) };
    const ev = formatted.get(s.latestId);
    if (s.relType === 'm.thread' && ev) {
      const participated = s.viewerSent || (opts.viewerId !== undefined && senders.get(s.parentId) === opts.viewerId);
      bundle(s.parentId)['m.thread'] = { latest_event: ev, count: s.count, current_user_participated: participated };
    }
  }
  return out;
}
