import type { Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as state from '../../storage/state.js';
import type { StoredEvent } from '../../storage/events.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateMap } from './pdu.js';
import { redact } from './event_format.js';
import { bundleRelations, type BundleMode } from './relations.js';
import { membershipsAt } from './unsigned_membership.js';
import { erasedAmong } from '../../storage/openid_erasure.js';

/** An event as the client-server API shows it. */
export interface ClientEvent {
  content: Record<string, unknown>;
  event_id: string;
  origin_server_ts: number;
  room_id?: string;
  sender: string;
  state_key?: string;
  type: string;
  redacts?: string;
  unsigned?: Record<string, unknown>;
}

export interface ViewOptions {
  /** The requesting device, to add `transaction_id` to its own events. */
  viewer?: { userId: string; deviceId: string };
  /** Sync timelines omit room_id (it is the key above them). */
  omitRoomId?: boolean;
  now?: number;
  /** Bundled aggregations in `unsigned.m.relations` (default 'all'; see services/rooms/relations.ts). */
  relations?: BundleMode;
}

/**
 * Formats stored events for clients: redactions applied per the room version (with
 * `redacted_because`), `prev_content` for state, `age`, and `transaction_id` for the sender's device.
 */
export async function toClientEvents(sql: Sql, stored: StoredEvent[], versions: Map<string, RoomVersionId>, opts: ViewOptions = {}): Promise<ClientEvent[]> {
  if (stored.length === 0) return [];
  const now = opts.now ?? Date.now();
  const ids = stored.map((s) => s.event.event_id);
  // Only the viewer's own events can carry one of their transaction ids.
  const own = opts.viewer ? ids.filter((_, i) => stored[i]!.event.sender === opts.viewer!.userId) : [];
  const txnIds = own.length > 0 ? await events.txnIdsFor(sql, opts.viewer!.userId, opts.viewer!.deviceId, own) : new Map<string, string>();
  const related = new Set<string>();
  for (const s of stored) {
    if (s.redactedBy) related.add(s.redactedBy);
    if (s.replacesState) related.add(s.replacesState);
  }
  const relatedEvents = await events.getEvents(sql, [...related]);
  const bundles = await bundleRelations(sql, stored, {
    viewerId: opts.viewer?.userId,
    mode: opts.relations ?? 'all',
    format: (evs, relations) => toClientEvents(sql, evs, versions, { ...opts, relations }),
  });
  const memberships = opts.viewer ? await membershipsAt(sql, opts.viewer.userId, stored) : undefined;
  // Erased users' events are served redacted to whoever was not joined when they were sent (spec v1.10 `erase`).
  const erased = await erasedAmong(sql, [...new Set(stored.map((s) => s.event.sender))]);
  const out: ClientEvent[] = [];
  for (const s of stored) {
    const version = versions.get(s.event.room_id) ?? '11';
    const unsigned: Record<string, unknown> = { age: Math.max(0, now - s.event.origin_server_ts) };
    const membership = memberships?.get(s.event.event_id);
    if (membership !== undefined) unsigned.membership = membership;
    const txn = txnIds.get(s.event.event_id);
    if (txn !== undefined) unsigned.transaction_id = txn;
    const bundle = bundles.get(s.event.event_id);
    if (bundle) unsigned['m.relations'] = bundle;
    let source = s.event;
    if (!s.redactedBy && erased.has(s.event.sender) && memberships?.get(s.event.event_id) !== 'join') {
      source = { ...redact(s.event, version), event_id: s.event.event_id } as typeof s.event;
    }
    if (s.redactedBy) {
      const because = relatedEvents.get(s.redactedBy);
      source = { ...redact(s.event, version), event_id: s.event.event_id } as typeof s.event;
      if (because) unsigned.redacted_because = plain(because, version, now);
    }
    if (s.replacesState) {
      const prev = relatedEvents.get(s.replacesState);
      if (prev) {
        unsigned.prev_content = clientContent(prev, version);
        unsigned.replaces_state = s.replacesState;
        unsigned.prev_sender = prev.event.sender;
      }
    }
    const ev: ClientEvent = {
      content: source.content,
      event_id: s.event.event_id,
      origin_server_ts: s.event.origin_server_ts,
      sender: s.event.sender,
      type: s.event.type,
      unsigned,
    };
    if (!opts.omitRoomId) ev.room_id = s.event.room_id;
    if (s.event.state_key !== undefined) ev.state_key = s.event.state_key;
    const redacts = s.event.redacts ?? (s.event.type === 'm.room.redaction' ? s.event.content.redacts : undefined);
    if (typeof redacts === 'string' && !s.redactedBy) ev.redacts = redacts;
    out.push(ev);
  }
  return out;
}

/** An event's content as clients see it: what the room version's redaction algorithm keeps, once redacted. */
export function clientContent(s: StoredEvent, version: RoomVersionId): Record<string, unknown> {
  return s.redactedBy ? (redact(s.event, version).content as Record<string, unknown>) : s.event.content;
}

function plain(s: StoredEvent, version: RoomVersionId, now: number): ClientEvent {
  return {
    content: clientContent(s, version),
    event_id: s.event.event_id,
    origin_server_ts: s.event.origin_server_ts,
    room_id: s.event.room_id,
    sender: s.event.sender,
    type: s.event.type,
    ...(s.event.state_key !== undefined ? { state_key: s.event.state_key } : {}),
    unsigned: { age: Math.max(0, now - s.event.origin_server_ts) },
  };
}

/** How filterVisible reads immutable data: straight from storage, or through a cache (sync). */
export interface ImmutableLookups {
  snapshotKeys(sql: Sql, snapshotId: number, keys: [string, string][]): Promise<StateMap>;
  /** The PDUs of events (their content as sent, whether redacted or not). */
  pdusOf(sql: Sql, eventIds: string[]): Promise<Map<string, RoomEvent>>;
}

const fromStorage: ImmutableLookups = {
  snapshotKeys: (sql, snapshotId, keys) => state.loadSnapshotKeys(sql, snapshotId, keys),
  pdusOf: async (sql, eventIds) => new Map([...(await events.getEvents(sql, eventIds))].map(([id, s]) => [id, s.event])),
};

/**
 * History visibility (spec: "History visibility"): which of these events `userId` may see, judged
 * by the room state after each event and the user's current membership.
 */
export async function filterVisible(sql: Sql, userId: string, stored: StoredEvent[], lookups: ImmutableLookups = fromStorage): Promise<StoredEvent[]> {
  if (stored.length === 0) return [];
  const roomId = stored[0]!.event.room_id;
  const current = await state.getMembership(sql, roomId, userId);
  // "shared": visible to a user who is joined now or joined at any point after the event.
  const lastJoin = current === 'join' ? undefined : await state.lastJoinPosition(sql, roomId, userId);
  const joinedAfter = (s: StoredEvent) => current === 'join' || (lastJoin !== undefined && s.streamOrdering !== null && lastJoin > s.streamOrdering);
  const bySnapshot = new Map<number, { visibility: string; membership: string | undefined }>();
  const out: StoredEvent[] = [];
  for (const s of stored) {
    if (s.stateAfter === null) continue;
    let v = bySnapshot.get(s.stateAfter);
    if (!v) {
      const keys = await lookups.snapshotKeys(sql, s.stateAfter, [
        ['m.room.history_visibility', ''],
        ['m.room.member', userId],
      ]);
      const hvId = keys.get(stateKey('m.room.history_visibility', ''));
      const memberId = keys.get(stateKey('m.room.member', userId));
      const got = await lookups.pdusOf(sql, [hvId, memberId].filter((x): x is string => !!x));
      const hv = hvId ? got.get(hvId)?.content.history_visibility : undefined;
      const m = memberId ? got.get(memberId)?.content.membership : undefined;
      v = { visibility: typeof hv === 'string' ? hv : 'shared', membership: typeof m === 'string' ? m : undefined };
      bySnapshot.set(s.stateAfter, v);
    }
    const later = joinedAfter(s);
    if (isVisible(v.visibility, v.membership, later) || (await visibleBefore(sql, userId, s, v, later, lookups))) out.push(s);
  }
  return out;
}

/**
 * The user's own member events and history_visibility events are also visible when the state just
 * before them allows it (spec: history visibility, "Server behaviour"), e.g. one's own leave.
 */
async function visibleBefore(
  sql: Sql,
  userId: string,
  s: StoredEvent,
  after: { visibility: string; membership: string | undefined },
  joinedAfter: boolean,
  lookups: ImmutableLookups,
): Promise<boolean> {
  const own = s.event.type === 'm.room.member' && s.event.state_key === userId;
  if (!own && s.event.type !== 'm.room.history_visibility') return false;
  const prev = s.replacesState ? (await lookups.pdusOf(sql, [s.replacesState])).get(s.replacesState)?.content : undefined;
  if (own) return isVisible(after.visibility, typeof prev?.membership === 'string' ? prev.membership : undefined, joinedAfter);
  return isVisible(typeof prev?.history_visibility === 'string' ? prev.history_visibility : 'shared', after.membership, joinedAfter);
}

/** `joinedAfter`: the user is joined now, or joined at some point after the event. */
export function isVisible(visibility: string, membershipAtEvent: string | undefined, joinedAfter: boolean): boolean {
  if (visibility === 'world_readable') return true;
  if (membershipAtEvent === 'join') return true;
  if (visibility === 'shared') return joinedAfter;
  if (visibility === 'invited') return membershipAtEvent === 'invite';
  return false;
}
