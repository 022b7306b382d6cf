/**
 * Persists room events that came from other servers into the event graph (next to
 * TimelineService, which writes local ones). Everything that assigns a stream position runs in one
 * transaction holding the same stream lock as local writes (timeline.ts STREAM_LOCK), so positions
 * still commit in order and sync's invariants hold (services/sync/sync.ts, cache.ts).
 *
 * What the callers (services/federation/*) have already decided, outside the lock: the event's
 * signatures and hashes, its auth against its auth events, and the DAG state before it (resolved
 * over its prev_events). What is decided here, under the lock: soft-fail against the *current*
 * state, the new forward extremities and the new current state (state resolution over the
 * extremities' states when the graph has forks), and the membership changes sync reads.
 *
 * Two notions of "state after" (migration 0015): `events.state_after` of a timeline event is the
 * room's current state once it was applied (what sync and the readers show at that position);
 * `event_dag_state` holds a remote event's own DAG state (before/after), which is what resolution
 * and `/state_ids` need. For local events they coincide.
 */
import type { Database, Sql } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import type { Notifier } from '../../bus/notifier.js';
import * as events from '../../storage/events.js';
import * as stateStore from '../../storage/state.js';
import * as fed from '../../storage/federated_events.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateKey, type StateMap } from './pdu.js';
import { authEventTypesFor, checkAuth, CREATE_KEY, POWER_LEVELS_KEY, redactionApplies, redactsOf } from './auth_rules.js';
import { STREAM_LOCK, type AppendHook } from './timeline.js';
import { forgetRelationOnRedaction, recordRelation } from './relations.js';
import { forgetSearchOnRedaction, indexForSearch } from '../search.js';
import { loadRuleEvents, loadState, resolveStored, sameState, writeState } from './state_loader.js';
import { THIRD_PARTY_AUTH } from '../identity/signed.js'; // auth rule 4.4.1.7's signature check

export interface VerifiedEvent {
  event: RoomEvent;
  /** Canonical JSON to store (redacted when the content hash did not match). */
  json: string;
}

export interface OutlierEvent extends VerifiedEvent {
  rejectedReason?: string;
}

export interface TimelineCandidate extends VerifiedEvent {
  version: RoomVersionId;
  /** The DAG state before the event (resolved over its prev_events); or, instead, `beforeSnapshot`. */
  stateBefore?: StateMap;
  /**
   * The stored snapshot of the state before the event (that of its only prev event): lets
   * persistIn avoid whole state maps when the event just extends the room (persistLinear).
   */
  beforeSnapshot?: number;
  /** A stored snapshot equal to or close to `stateBefore` (the first prev's), to write a delta. */
  base?: { snapshot: number | null; map: StateMap };
  /** Rejected by the auth rules (against its auth events or the state before it). */
  rejectedReason?: string;
  /** Skip the soft-fail check (the event that makes us join: we have no current state yet). */
  noSoftFail?: boolean;
}

export type PersistOutcome = 'timeline' | 'soft_failed' | 'rejected' | 'duplicate';

/** The current state entries persistLinear reads (auth keys, power levels, create, the event's own key), loaded by persistContext. */
const linearKeys = (ev: RoomEvent, version: RoomVersionId): StateKey[] => [
  ...new Set([...authEventTypesFor(ev, version), POWER_LEVELS_KEY, CREATE_KEY, ...(ev.state_key !== undefined ? [stateKey(ev.type, ev.state_key)] : [])]),
];

const splitKey = (k: StateKey): [string, string] => {
  const i = k.indexOf('\u0000');
  return [k.slice(0, i), k.slice(i + 1)];
};

export class FederatedEventStore {
  constructor(
    private readonly deps: {
      db: Database;
      notifier: Notifier;
      logger: Logger;
      /** Work run for every event entering the timeline, in its transaction (push evaluation): TimelineService.hooks. */
      appendHooks?: readonly AppendHook[];
    },
  ) {}

  /** Runs `fn` in a transaction holding the stream lock; notifies once it has committed. */
  async locked<T>(fn: (tx: Sql, changes: Changes) => Promise<T>): Promise<T> {
    const changes = new Changes();
    const result = await this.deps.db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(?)', [STREAM_LOCK]);
      return fn(tx, changes);
    });
    if (changes.position > 0) {
      this.deps.notifier.notify({ position: changes.position, roomIds: [...changes.rooms], userIds: [...changes.users], ...(changes.remoteOnly ? { remoteOnly: true } : {}) });
    }
    return result;
  }

  /** Outliers: events known without their place in the graph (auth chains, state). No stream position. */
  async storeOutliers(sql: Sql, list: OutlierEvent[]): Promise<void> {
    // Batched (a join brings the whole state and auth chain): a few statements per thousand events.
    await fed.insertOutliers(sql, list.map((o) => ({ event: o.event, json: o.json, rejectedReason: o.rejectedReason ?? null })));
  }

  /** Persists one event in its place in the graph (see the file comment). */
  async persist(c: TimelineCandidate, opts: { remoteOnly?: boolean } = {}): Promise<PersistOutcome> {
    return this.locked((tx, changes) => {
      changes.remoteOnly = opts.remoteOnly === true;
      return this.persistIn(tx, changes, c);
    });
  }

  async persistIn(tx: Sql, changes: Changes, c: TimelineCandidate): Promise<PersistOutcome> {
    const ev = c.event;
    // One round trip for what the checks below read (the per-PDU path of /send counts them).
    // A candidate for the linear path also gets its stream position there (unused, a gap, if it
    // turns out a duplicate or a fork: positions only need to increase).
    const linearCandidate = c.stateBefore === undefined && c.beforeSnapshot !== undefined && c.rejectedReason === undefined;
    const room = await fed.persistContext(tx, ev.event_id, ev.room_id, linearKeys(ev, c.version), linearCandidate);
    if (room.known && !room.known.outlier) return 'duplicate';
    if (c.stateBefore !== undefined) return this.persistFull(tx, changes, { ...c, stateBefore: c.stateBefore });
    if (c.beforeSnapshot === undefined) throw new Error('persistIn: the state before the event is missing');
    const beforeSnap = c.beforeSnapshot;
    if (c.rejectedReason !== undefined) return this.reject(tx, changes, c, beforeSnap);
    if (this.extendsCurrent(ev, beforeSnap, room)) return this.persistLinear(tx, changes, c, beforeSnap, room.current, room.position);
    // A fork (or a current state that is not the prev event's): the full path, over whole maps.
    const stateBefore = await loadState(tx, beforeSnap);
    return this.persistFull(tx, changes, { ...c, stateBefore, base: { snapshot: beforeSnap, map: stateBefore } });
  }

  /** Rejected: kept (so we do not fetch it again and can answer for it), never in state or the timeline. */
  private async reject(tx: Sql, changes: Changes, c: TimelineCandidate, beforeSnap: number): Promise<PersistOutcome> {
    await fed.upsertFederatedEvent(tx, { event: c.event, json: c.json, replacesState: null, outlier: false, streamOrdering: null, stateAfter: null, rejectedReason: c.rejectedReason ?? null, softFailed: false });
    await fed.setDagState(tx, c.event.event_id, c.event.room_id, beforeSnap, beforeSnap);
    changes.dagAfter.set(c.event.event_id, beforeSnap);
    return 'rejected';
  }

  /**
   * Whether the event simply extends the room: its only prev event is the only forward extremity,
   * and the current state is that event's state (the same snapshot). Then the current state equals
   * the state before the event, and nothing needs resolving.
   */
  private extendsCurrent(ev: RoomEvent, beforeSnap: number, room: { extremities: string[]; latestSnapshot: number | null }): boolean {
    if (ev.prev_events.length !== 1) return false;
    if (room.extremities.length !== 1 || room.extremities[0] !== ev.prev_events[0]) return false;
    return room.latestSnapshot === beforeSnap;
  }

  /** Soft failure (spec: "Soft failure"): the verdict of the auth rules against the current state (`current` needs only the auth keys). */
  private async softFailure(tx: Sql, ev: RoomEvent, version: RoomVersionId, current: StateMap): Promise<string | undefined> {
    const wanted = authEventTypesFor(ev, version).map((k) => current.get(k)).filter((x): x is string => !!x);
    const { events: authEvents, rejected } = await loadRuleEvents(tx, wanted, version);
    const authState = new Map<StateKey, RoomEvent>();
    for (const e of authEvents.values()) if (!rejected.has(e.event_id) && e.state_key !== undefined) authState.set(stateKey(e.type, e.state_key), e);
    const verdict = checkAuth(ev, authState, version, THIRD_PARTY_AUTH);
    if (verdict.allowed) return undefined;
    this.deps.logger.info({ eventId: ev.event_id, roomId: ev.room_id, reason: verdict.reason }, 'soft-failed a remote event');
    return verdict.reason;
  }

  private async storeSoftFailed(tx: Sql, changes: Changes, c: TimelineCandidate, beforeSnap: number, afterSnap: number): Promise<PersistOutcome> {
    await fed.upsertFederatedEvent(tx, { event: c.event, json: c.json, replacesState: null, outlier: false, streamOrdering: null, stateAfter: null, rejectedReason: null, softFailed: true });
    await fed.setDagState(tx, c.event.event_id, c.event.room_id, beforeSnap, afterSnap);
    changes.dagAfter.set(c.event.event_id, afterSnap);
    return 'soft_failed';
  }

  /**
   * The common case (extendsCurrent): costs the auth events and the event's own key, not the
   * room's state — the state after is a one-entry delta, current state rows are read by key.
   */
  private async persistLinear(tx: Sql, changes: Changes, c: TimelineCandidate, beforeSnap: number, current: StateMap, position: number | undefined): Promise<PersistOutcome> {
    const ev = c.event;
    const roomId = ev.room_id;
    const ownKey = ev.state_key !== undefined ? stateKey(ev.type, ev.state_key) : undefined;
    const afterSnap = ownKey ? await stateStore.writeSnapshot(tx, roomId, beforeSnap, new Map([[ownKey, ev.event_id]])) : beforeSnap;
    // No soft-fail check here: the current state *is* the state before the event (extendsCurrent),
    // which the event already passed (a rejected one never gets here), so the verdict is the same.
    const currentOwn = ownKey ? current.get(ownKey) : undefined;
    const changed: [StateKey, string | undefined][] = ownKey && currentOwn !== ev.event_id ? [[ownKey, ev.event_id]] : [];
    // What a redaction is judged by: the state after it (power levels and create).
    const redactionState = new Map(current);
    if (ownKey) redactionState.set(ownKey, ev.event_id);
    return this.commit(tx, changes, c, {
      replaced: [ev.prev_events[0]!],
      changed,
      ownKey,
      beforeSnap,
      afterSnap,
      currentSnap: afterSnap,
      replacesState: changed.length > 0 ? (currentOwn ?? null) : null,
      redactionState,
      position,
    });
  }

  /** The general path: whole state maps, resolution over the forward extremities when they fork. */
  private async persistFull(tx: Sql, changes: Changes, c: TimelineCandidate & { stateBefore: StateMap }): Promise<PersistOutcome> {
    const ev = c.event;
    const roomId = ev.room_id;
    const beforeSnap = await writeState(tx, roomId, c.stateBefore, c.base);
    if (c.rejectedReason !== undefined) return this.reject(tx, changes, c, beforeSnap);
    const isState = ev.state_key !== undefined;
    const dagAfter: StateMap = new Map(c.stateBefore);
    if (isState) dagAfter.set(stateKey(ev.type, ev.state_key!), ev.event_id);
    const afterSnap = isState ? await writeState(tx, roomId, dagAfter, { snapshot: beforeSnap, map: c.stateBefore }) : beforeSnap;

    const currentRows = await stateStore.getCurrentState(tx, roomId);
    const current: StateMap = new Map(currentRows.map((r) => [stateKey(r.type, r.state_key), r.event_id]));

    // Allowed by the state before it, but not by the current state — e.g. a banned user's event on
    // an old fork: stored, but neither shown nor extending the graph.
    if (!c.noSoftFail && current.size > 0 && (await this.softFailure(tx, ev, c.version, current)) !== undefined) {
      return this.storeSoftFailed(tx, changes, c, beforeSnap, afterSnap);
    }

    // New forward extremities: the event replaces those of its prev_events that were extremities.
    const oldExtremities = await fed.forwardExtremityIds(tx, roomId);
    const replaced = oldExtremities.filter((id) => ev.prev_events.includes(id));
    const remaining = oldExtremities.filter((id) => !ev.prev_events.includes(id));
    let newCurrent: StateMap;
    if (remaining.length === 0) {
      newCurrent = dagAfter;
    } else {
      const states = await fed.dagStates(tx, remaining);
      const sets: StateMap[] = [dagAfter];
      for (const id of remaining) {
        const s = states.get(id);
        if (s) sets.push(await loadState(tx, s.after));
      }
      newCurrent = await resolveStored(tx, c.version, sets, [ev]); // ev is not stored yet
    }

    const changedKeys: StateKey[] = [];
    for (const [k, id] of newCurrent) if (current.get(k) !== id) changedKeys.push(k);
    const removedKeys = [...current.keys()].filter((k) => !newCurrent.has(k));
    const ownKey = isState ? stateKey(ev.type, ev.state_key!) : undefined;

    // The event's own DAG state first when the current state equals it (always so after a merge):
    // extendsCurrent compares snapshot ids, so the next event built on this one takes the fast
    // path again. (Preferring the unchanged `latest` left a merged room on this path for good.)
    let currentSnap: number;
    if (sameState(newCurrent, dagAfter)) currentSnap = afterSnap;
    else {
      const latest = await fed.latestStateSnapshot(tx, roomId);
      if (changedKeys.length === 0 && removedKeys.length === 0 && latest !== null) currentSnap = latest;
      else currentSnap = await writeState(tx, roomId, newCurrent, { snapshot: latest, map: current });
    }

    const wins = ownKey !== undefined && newCurrent.get(ownKey) === ev.event_id && current.get(ownKey) !== ev.event_id;
    return this.commit(tx, changes, c, {
      replaced,
      changed: [...changedKeys.map((k): [StateKey, string | undefined] => [k, newCurrent.get(k)]), ...removedKeys.map((k): [StateKey, undefined] => [k, undefined])],
      ownKey,
      beforeSnap,
      afterSnap,
      currentSnap,
      replacesState: wins ? (current.get(ownKey) ?? null) : null,
      redactionState: dagAfter,
    });
  }

  /**
   * Puts the event in the timeline: its row and position, the new forward extremities, and the
   * current state entries that `changed` (undefined: removed), membership changes in stream order.
   */
  private async commit(
    tx: Sql,
    changes: Changes,
    c: TimelineCandidate,
    p: {
      replaced: string[];
      changed: [StateKey, string | undefined][];
      ownKey: StateKey | undefined;
      beforeSnap: number;
      afterSnap: number;
      currentSnap: number;
      replacesState: string | null;
      redactionState: StateMap;
      /** A stream position already allocated (under this lock) for the event. */
      position?: number;
    },
  ): Promise<PersistOutcome> {
    const ev = c.event;
    const roomId = ev.room_id;
    // Membership changes (sync and device lists read them); each needs its own stream position.
    const memberChanges = p.changed.filter(([k]) => k.startsWith('m.room.member\u0000'));
    const others = memberChanges.filter(([k, id]) => !(k === p.ownKey && id === ev.event_id));
    const extra = await fed.nextStreamOrderings(tx, others.length);
    // The event's own position comes after those of the other membership changes it brings.
    const streamOrdering = p.position !== undefined && extra.length === 0 ? p.position : await events.nextStreamOrdering(tx);

    await fed.upsertFederatedEvent(tx, {
      event: ev,
      json: c.json,
      outlier: false,
      replacesState: p.replacesState,
      streamOrdering,
      stateAfter: p.currentSnap,
      rejectedReason: null,
      softFailed: false,
      dag: { before: p.beforeSnap, after: p.afterSnap },
    });
    await recordRelation(tx, ev, streamOrdering);
    await indexForSearch(tx, ev, streamOrdering);
    // As for local events, hooks see the room's current state before this event.
    for (const hook of this.deps.appendHooks ?? []) await hook(tx, ev, streamOrdering, c.version);
    await this.applyRedaction(tx, ev, c.version, p.redactionState);
    await fed.setForwardExtremities(tx, roomId, p.replaced, [ev.event_id]);

    // Current state follows the resolved state; membership changes in stream order.
    const memberEvents = await events.getEvents(tx, memberChanges.map(([, id]) => id).filter((x): x is string => !!x));
    // Written in batches (a join changes every entry; one statement per row made big joins slow).
    const sets: { type: string; stateKey: string; eventId: string; membership: string | null }[] = [];
    const memberships: { streamOrdering: number; userId: string; membership: string; eventId: string }[] = [];
    let i = 0;
    for (const [k, id] of p.changed) {
      const [type, key] = splitKey(k);
      const membership = type === 'm.room.member' ? (id ? String(memberEvents.get(id)?.event.content.membership ?? 'leave') : 'leave') : null;
      if (id) sets.push({ type, stateKey: key, eventId: id, membership });
      else await fed.deleteCurrentState(tx, roomId, type, key);
      if (membership === null) continue;
      const pos = k === p.ownKey && id === ev.event_id ? streamOrdering : extra[i++]!;
      memberships.push({ streamOrdering: pos, userId: key, membership, eventId: id ?? ev.event_id });
      changes.users.add(key);
    }
    await fed.applyCurrentStateChanges(tx, roomId, sets, memberships);
    changes.add(roomId, streamOrdering);
    changes.dagAfter.set(ev.event_id, p.afterSnap);
    return 'timeline';
  }

  /** A remote redaction applies when its sender may redact, or is on the target's server (auth_rules.redactionApplies). */
  private async applyRedaction(tx: Sql, ev: RoomEvent, version: RoomVersionId, state: StateMap): Promise<void> {
    const targetId = redactsOf(ev, version);
    if (!targetId) return;
    const target = await events.getEvent(tx, targetId);
    if (!target || target.event.room_id !== ev.room_id) return;
    const { events: authEvents } = await loadRuleEvents(tx, [state.get(stateKey('m.room.power_levels', '')), state.get(stateKey('m.room.create', ''))].filter((x): x is string => !!x), version);
    const authState = new Map<StateKey, RoomEvent>();
    for (const e of authEvents.values()) authState.set(stateKey(e.type, e.state_key ?? ''), e);
    if (!redactionApplies(ev, target.event, authState, version)) return;
    if (await fed.markRedacted(tx, targetId, ev.event_id)) {
      await forgetRelationOnRedaction(tx, targetId, version);
      await forgetSearchOnRedaction(tx, targetId);
    }
  }

  /**
   * Backfilled history: events older than anything in our stream, at negative positions (allocated
   * newest first, so older events get lower positions). They change neither current state nor the
   * forward extremities, and sync never sees them (its ranges start at 0). `stateAfter` is the state
   * snapshot used to judge their history visibility (see backfill.ts).
   */
  async persistBackfilled(list: (VerifiedEvent & { rejectedReason?: string })[], stateAfter: number | null, version: RoomVersionId): Promise<string[]> {
    return this.locked(async (tx) => {
      const stored: string[] = [];
      const known = await fed.knownEvents(tx, list.map((e) => e.event.event_id));
      for (const e of list) {
        const k = known.get(e.event.event_id);
        // An out-of-band invite we hold (an outlier with a position) still belongs in the timeline.
        if (k && k.inTimeline && !k.outlier) continue;
        if (e.rejectedReason !== undefined) {
          await this.storeOutliers(tx, [e]);
          continue;
        }
        const pos = await fed.nextBackfillOrdering(tx);
        await fed.upsertFederatedEvent(tx, { event: e.event, json: e.json, streamOrdering: pos, stateAfter, replacesState: null, outlier: false, rejectedReason: null, softFailed: false });
        await recordRelation(tx, e.event, pos);
        await indexForSearch(tx, e.event, pos);
        await this.applyRedaction(tx, e.event, version, new Map());
        stored.push(e.event.event_id);
      }
      return stored;
    });
  }
}

/** What a locked write changed: who to wake once it commits. */
export class Changes {
  position = 0;
  readonly rooms = new Set<string>();
  readonly users = new Set<string>();
  /** The DAG state after each event persisted here (the next event of a /send run is built on it). */
  readonly dagAfter = new Map<string, number>();
  /** Only other servers' events (set by the caller that knows): the notification says so, and the federation sender skips its scan for events of ours. */
  remoteOnly = false;
  add(roomId: string, position: number): void {
    this.rooms.add(roomId);
    this.position = Math.max(this.position, position);
  }
}
