import { MatrixError, forbidden, notFound } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Database, Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as state from '../../storage/state.js';
import type { Notifier, StreamChange } from '../../bus/notifier.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateMap, type StateKey } from './pdu.js';
import { authEventsSelection, authEventTypesFor, checkAuth } from './auth_rules.js';
import { isImpliedRoomCreate } from './room_v12.js';
import { parsePowerLevels, userPowerLevel } from './power_levels.js';
import { redact } from './event_format.js';
import type { EventSigner, UnsignedPdu } from './signer.js';
import { CanonicalJsonError } from '../../core/canonical_json.js';
import { forgetRelationOnRedaction, recordRelation } from './relations.js';
import { forgetSearchOnRedaction, indexForSearch } from '../search.js';
import { latestStateSnapshot } from '../../storage/federated_events.js';
import { THIRD_PARTY_AUTH } from '../identity/signed.js'; // auth rule 4.4.1.7's signature check

/** What a local user asks to add to a room. */
export interface NewEvent {
  type: string;
  sender: string;
  content: Record<string, unknown>;
  stateKey?: string;
  /** Top-level `redacts` (room versions before 11 keep it outside content). */
  redacts?: string;
}

export interface Appended {
  event: RoomEvent;
  streamOrdering: number;
}

/** Work done for each new event inside its write transaction (push rule evaluation). */
export type AppendHook = (tx: Sql, event: RoomEvent, streamOrdering: number, version: RoomVersionId) => Promise<void>;

/** At most this many forward extremities become an event's prev_events. */
const MAX_PREV_EVENTS = 10;
/** Keeps every event writer in every process in one queue: positions commit in order. */
export const STREAM_LOCK = 0x6576656e74;

/**
 * Appends local events to rooms. Each write runs in one transaction holding the stream lock, so
 * `stream_ordering` values commit in increasing order and a sync never hands out a position while
 * a lower one is still uncommitted. Auth rules are checked against the room's current state under
 * the same lock, so two concurrent writes cannot both pass against stale state.
 */
export class TimelineService {
  private readonly appendHooks: AppendHook[] = [];

  /** Registers work to run for every appended event in its transaction (local and remote events alike). */
  addAppendHook(hook: AppendHook): void {
    this.appendHooks.push(hook);
  }

  /** The registered hooks: remote events persisted by federation run them too. */
  get hooks(): readonly AppendHook[] {
    return this.appendHooks;
  }

  constructor(
    private readonly deps: { db: Database; signer: EventSigner; notifier: Notifier; logger: Logger },
  ) {}

  /** Runs `fn` with a writer in one transaction; notifies waiters once it has committed. */
  async write<T>(fn: (w: RoomWriter) => Promise<T>): Promise<T> {
    const appended: Appended[] = [];
    const result = await this.deps.db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(?)', [STREAM_LOCK]);
      return fn(new RoomWriter(tx, this.deps.signer, appended, this.appendHooks));
    });
    if (appended.length > 0) this.deps.notifier.notify(changeOf(appended));
    return result;
  }

  /** Sends one event; with a transaction id a retry returns the first event's id (also after a restart). */
  async send(roomId: string, ev: NewEvent, txn?: { deviceId: string; txnId: string }): Promise<string> {
    return this.write(async (w) => {
      if (txn) {
        const earlier = await events.findTxn(w.tx, ev.sender, txn.deviceId, txn.txnId);
        if (earlier) return earlier;
      }
      const { event } = await w.append(roomId, ev);
      if (txn) await events.insertTxn(w.tx, ev.sender, txn.deviceId, txn.txnId, event.event_id);
      return event.event_id;
    });
  }

  /**
   * Redacts `targetId` (spec: "Redactions"). The sender must have sent it or hold the room's
   * `redact` level; the target is then served redacted per the room version, with `redacted_because`.
   */
  async redact(roomId: string, sender: string, targetId: string, reason: string | undefined, txn: { deviceId: string; txnId: string }): Promise<string> {
    return this.write(async (w) => {
      const earlier = await events.findTxn(w.tx, sender, txn.deviceId, txn.txnId);
      if (earlier) return earlier;
      const version = await w.roomVersion(roomId);
      const target = await events.getEvent(w.tx, targetId);
      if (!target || target.event.room_id !== roomId) throw notFound('Event not found');
      if (target.event.sender !== sender) {
        const create = await currentStateEvent(w.tx, roomId, 'm.room.create');
        const pl = await currentStateEvent(w.tx, roomId, 'm.room.power_levels');
        const level = userPowerLevel(sender, pl, create, version);
        if (level < parsePowerLevels(pl?.content).levels.redact) throw forbidden("You may not redact other users' events");
      }
      const content: Record<string, unknown> = reason !== undefined ? { reason } : {};
      // v11 moved `redacts` into content; v10 keeps it at the top level.
      if (version !== '10') content.redacts = targetId;
      const { event } = await w.append(roomId, { type: 'm.room.redaction', sender, content, redacts: targetId });
      if (!target.redactedBy) await w.tx.query('update events set redacted_by = ? where event_id = ?', [event.event_id, targetId]);
      await forgetRelationOnRedaction(w.tx, targetId, version);
      // A redacted event is no longer searchable (services/search.ts).
      await forgetSearchOnRedaction(w.tx, targetId);
      await events.insertTxn(w.tx, sender, txn.deviceId, txn.txnId, event.event_id);
      return event.event_id;
    });
  }
}

/** Content that canonical JSON cannot carry (floats, huge integers) is the client's error, not ours. */
function buildOrBadJson(signer: EventSigner, pdu: UnsignedPdu, version: RoomVersionId) {
  try {
    return signer.build(pdu, version);
  } catch (err) {
    if (err instanceof CanonicalJsonError) throw new MatrixError(400, 'M_BAD_JSON', `Event is not valid canonical JSON: ${err.message}`);
    throw err;
  }
}

async function currentStateEvent(tx: Sql, roomId: string, type: string): Promise<RoomEvent | undefined> {
  const id = await state.getCurrentStateEventId(tx, roomId, type, '');
  return id ? (await events.getEvent(tx, id))?.event : undefined;
}

function changeOf(appended: Appended[]): StreamChange {
  const userIds = new Set<string>();
  for (const a of appended) if (a.event.type === 'm.room.member' && a.event.state_key) userIds.add(a.event.state_key);
  return {
    position: Math.max(...appended.map((a) => a.streamOrdering)),
    roomIds: [...new Set(appended.map((a) => a.event.room_id))],
    userIds: [...userIds],
  };
}

/** Writes events inside the stream lock's transaction. */
export class RoomWriter {
  constructor(
    readonly tx: Sql,
    private readonly signer: EventSigner,
    private readonly appended: Appended[],
    private readonly hooks: readonly AppendHook[] = [],
  ) {}

  /** Registers a new room (before its m.room.create event is appended). */
  async createRoomRow(roomId: string, version: RoomVersionId, creator: string): Promise<void> {
    await this.tx.query('insert into rooms (room_id, room_version, creator, created_ts) values (?, ?, ?, ?)', [
      roomId,
      version,
      creator,
      Date.now(),
    ]);
  }

  async roomVersion(roomId: string): Promise<RoomVersionId> {
    const rows = await this.tx.query<{ room_version: string }>('select room_version from rooms where room_id = ?', [roomId]);
    if (!rows[0]) throw notFound('Unknown room');
    return rows[0].room_version as RoomVersionId;
  }

  /**
   * Builds, authorizes, signs and stores an event on top of the room's forward extremities.
   * `newRoom`: the create event of a room version 12 room, whose id is derived from the event
   * (rooms/v12.md), so the room row is written once the event is signed; `roomId` is unused.
   */
  async append(roomId: string, ev: NewEvent, newRoom?: { version: RoomVersionId; creator: string }): Promise<Appended> {
    const version = newRoom?.version ?? (await this.roomVersion(roomId));
    const impliedRoom = isImpliedRoomCreate({ type: ev.type, state_key: ev.stateKey }, version);
    if (impliedRoom !== (newRoom !== undefined)) throw new Error('a room version 12 create event starts a new room');
    const extremities = await events.getForwardExtremities(this.tx, roomId);
    const prev = extremities.slice(0, MAX_PREV_EVENTS);
    const before: StateMap = new Map();
    for (const row of await state.getCurrentState(this.tx, roomId)) before.set(stateKey(row.type, row.state_key), row.event_id);

    const draft = { type: ev.type, state_key: ev.stateKey, sender: ev.sender, content: ev.content };
    const wanted = authEventTypesFor(draft, version);
    // The rules read `wanted`; `auth_events` lists the selection (v12 leaves the create event out).
    const authIds = [...new Set(authEventsSelection(draft, version).map((k) => before.get(k)).filter((x): x is string => !!x))];
    const authStored = await events.getEvents(this.tx, [...new Set(wanted.map((k) => before.get(k)).filter((x): x is string => !!x))]);
    const authEvents = new Map<StateKey, RoomEvent>();
    // A redacted state event counts in its redacted form (e.g. a redacted v10 power levels event loses `invite`).
    for (const s of authStored.values()) {
      const ev = s.redactedBy ? ({ ...redact(s.event, version), event_id: s.event.event_id } as RoomEvent) : s.event;
      authEvents.set(stateKey(ev.type, ev.state_key ?? ''), ev);
    }

    const depth = prev.length === 0 ? 1 : Math.min(Number.MAX_SAFE_INTEGER, Math.max(...prev.map((p) => p.depth)) + 1);
    const { event, json } = buildOrBadJson(
      this.signer,
      {
        ...(impliedRoom ? {} : { room_id: roomId }),
        sender: ev.sender,
        type: ev.type,
        content: ev.content,
        ...(ev.stateKey !== undefined ? { state_key: ev.stateKey } : {}),
        ...(ev.redacts !== undefined && version === '10' ? { redacts: ev.redacts } : {}),
        prev_events: prev.map((p) => p.event_id),
        auth_events: authIds,
        depth,
        origin_server_ts: Date.now(),
      } as UnsignedPdu,
      version,
    );
    if (newRoom) {
      roomId = event.room_id; // `!` + the create event's hash (attached by the signer)
      await this.createRoomRow(roomId, version, newRoom.creator);
    }
    const verdict = checkAuth(event, authEvents, version, THIRD_PARTY_AUTH);
    if (!verdict.allowed) throw forbidden(verdict.reason);

    const streamOrdering = await events.nextStreamOrdering(this.tx);
    // Local history is linear until federation brings forks; then state before an event with
    // several prev_events comes from state resolution (services/rooms/state_res.ts).
    // With several extremities (a fork federation brought), build on the resolved current state.
    let stateAfter = prev.length > 1 ? await latestStateSnapshot(this.tx, roomId) : (prev[0]?.state_after ?? null);
    if (ev.stateKey !== undefined) {
      stateAfter = await state.writeSnapshot(this.tx, roomId, stateAfter, new Map([[stateKey(ev.type, ev.stateKey), event.event_id]]));
    }
    const replacesState = ev.stateKey !== undefined ? (before.get(stateKey(ev.type, ev.stateKey)) ?? null) : null;
    await events.insertEvent(this.tx, { event, json, streamOrdering, stateAfter, replacesState });
    // Relations (content.m.relates_to) are indexed in the same transaction (services/rooms/relations.ts).
    await recordRelation(this.tx, event, streamOrdering);
    // Message bodies, room names and topics are indexed for /search in the same transaction (services/search.ts).
    await indexForSearch(this.tx, event, streamOrdering);
    // Registered hooks (push rule evaluation, services/push/evaluator.ts) see the state before the event.
    for (const hook of this.hooks) await hook(this.tx, event, streamOrdering, version);
    await events.replaceForwardExtremities(this.tx, roomId, prev.map((p) => p.event_id), event.event_id);
    if (ev.stateKey !== undefined) {
      const membership = ev.type === 'm.room.member' ? String(ev.content.membership ?? '') : null;
      await state.setCurrentState(this.tx, roomId, ev.type, ev.stateKey, event.event_id, membership);
      if (membership !== null) {
        await events.insertMembershipChange(this.tx, { streamOrdering, roomId, userId: ev.stateKey, membership, eventId: event.event_id });
      }
    }
    const out = { event, streamOrdering };
    this.appended.push(out);
    return out;
  }
}
