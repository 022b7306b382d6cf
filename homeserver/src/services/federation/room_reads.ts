/**
 * What other servers may read of our rooms (spec: server-server API "Retrieving events",
 * "Backfilling", "get_missing_events", "/state", "/event_auth"): every read first checks the room's
 * server ACL and that the asking server may see the room — it has a joined member now, or (for
 * single events) the event is world-readable. Then history visibility per event
 * (server_visibility.ts): events the server may not see are served redacted, and the state at them
 * is refused. Events of erased users (deactivated with `erase: true`) go out redacted to every
 * server from every read (`pdus`), as the client API shows them to later joiners: the redaction
 * algorithm keeps hashes and signatures, so receivers still verify them (and store them redacted).
 * Likewise every redacted event (one whose redaction applied) goes out in its redacted form only:
 * storage keeps the original JSON and applies the redaction on read, as for clients.
 */
import type { Database, Sql } from '../../storage/db.js';
import { forbidden, notFound } from '../../core/errors.js';
import { parseStrictJson, type JsonObject } from '../../core/canonical_json.js';
import * as events from '../../storage/events.js';
import * as fed from '../../storage/federated_events.js';
import * as stateStore from '../../storage/state.js';
import { stateKey, type StateMap } from '../rooms/pdu.js';
import { loadState } from '../rooms/state_loader.js';
import { roomAclAllows } from './acl.js';
import { isSupportedRoomVersion, redact } from '../rooms/event_format.js';
import { visibleToServer } from './server_visibility.js';
import { erasedAmong } from '../../storage/openid_erasure.js';
import type { RoomVersionId } from '../rooms/pdu.js';

/** A stored PDU as read for serving; `redacted`: a redaction of it applies. */
interface Loaded {
  id: string;
  roomId: string;
  pdu: JsonObject;
  redacted: boolean;
}

export class FederationRoomReads {
  constructor(private readonly deps: { db: Database; serverName: string; maxBackfill: number }) {}

  /** 404 for unknown rooms, 403 when the ACL refuses `origin` or it has nobody in the room. */
  async authorize(origin: string, roomId: string, opts: { requireJoined?: boolean } = { requireJoined: true }): Promise<void> {
    const db = this.deps.db;
    if (!(await fed.roomExists(db, roomId))) throw notFound('Unknown room');
    if (!(await roomAclAllows(db, roomId, origin))) throw forbidden('The room\'s server ACL refuses your server');
    if (opts.requireJoined && !(await fed.joinedServers(db, roomId)).includes(origin)) throw forbidden('Your server is not in this room');
  }

  /**
   * The stored PDUs (exact JSON) as any server may have them, in the given order: redacted ones and
   * those of erased senders in their redacted form. Every read that serves PDUs goes through here (also the send_join answer).
   */
  async pdus(sql: Sql, ids: string[]): Promise<JsonObject[]> {
    return this.served(sql, await this.load(sql, ids), () => Promise.resolve(false));
  }

  /** The PDUs as `origin` may see them: also redacted where history visibility hides them from it. */
  async pdusForServer(sql: Sql, origin: string, roomId: string, ids: string[]): Promise<JsonObject[]> {
    const list = (await this.load(sql, ids)).filter((x) => x.roomId === roomId);
    return this.served(sql, list, async (id) => !(await this.visibleTo(sql, origin, id)));
  }

  private async load(sql: Sql, ids: string[]): Promise<Loaded[]> {
    const got = await fed.getEventJson(sql, ids);
    const out: Loaded[] = [];
    // Room versions 3+ carry no event_id in the PDU: the id comes from the list.
    for (const id of ids) {
      const g = got.get(id);
      if (g) out.push({ id, roomId: g.roomId, pdu: parseStrictJson(g.json) as JsonObject, redacted: g.redactedBy !== null });
    }
    return out;
  }

  /**
   * Redacts (per the room's version) the PDUs that were redacted (we keep the original JSON and
   * mark `redacted_by` only once the redaction applies: auth_rules.redactionApplies), those of
   * erased senders, and those `hidden` says to.
   */
  private async served(sql: Sql, list: Loaded[], hidden: (id: string) => Promise<boolean>): Promise<JsonObject[]> {
    const erased = await erasedAmong(sql, [...new Set(list.map((x) => x.pdu.sender).filter((s): s is string => typeof s === 'string'))]);
    const versions = new Map<string, RoomVersionId | undefined>();
    const out: JsonObject[] = [];
    for (const { id, roomId, pdu, redacted: wasRedacted } of list) {
      if (!versions.has(roomId)) {
        const v = await fed.roomExists(sql, roomId);
        versions.set(roomId, isSupportedRoomVersion(v) ? v : undefined);
      }
      const version = versions.get(roomId);
      const redacted = version !== undefined && (wasRedacted || erased.has(pdu.sender as string) || (await hidden(id)));
      out.push(redacted ? (redact(pdu, version) as JsonObject) : pdu);
    }
    return out;
  }

  /** Whether `origin` may see the event (history visibility at it; see server_visibility.ts). */
  async visibleTo(sql: Sql, origin: string, eventId: string): Promise<boolean> {
    const stored = await events.getEvent(sql, eventId);
    if (!stored) return false;
    return visibleToServer(sql, origin, stored.event, await this.stateBefore(sql, eventId));
  }

  async event(origin: string, eventId: string): Promise<JsonObject> {
    const db = this.deps.db;
    const got = (await fed.getEventJson(db, [eventId])).get(eventId);
    if (!got || got.rejected) throw notFound('Event not found');
    await this.authorize(origin, got.roomId, { requireJoined: false });
    const joined = (await fed.joinedServers(db, got.roomId)).includes(origin);
    if (!joined) {
      const stored = await events.getEvent(db, eventId);
      const snap = stored?.stateAfter ?? null;
      const hvId = snap === null ? undefined : (await stateStore.loadSnapshotKeys(db, snap, [['m.room.history_visibility', '']])).get(stateKey('m.room.history_visibility', ''));
      const hv = hvId ? (await events.getEvent(db, hvId))?.event.content.history_visibility : undefined;
      if (hv !== 'world_readable') throw forbidden('Your server may not see this event');
      return this.wrap(await this.pdus(db, [eventId]));
    }
    return this.wrap(await this.pdusForServer(db, origin, got.roomId, [eventId]));
  }

  wrap(pdus: JsonObject[]): JsonObject {
    return { origin: this.deps.serverName, origin_server_ts: Date.now(), pdus };
  }

  /** The state before `eventId` (its DAG state; for local events derived from the state after it). */
  async stateBefore(sql: Sql, eventId: string): Promise<StateMap> {
    const d = (await fed.dagStates(sql, [eventId])).get(eventId);
    const stored = await events.getEvent(sql, eventId);
    if (!d || !stored) throw notFound('Event not found');
    if (d.before !== null) return loadState(sql, d.before);
    const after = await loadState(sql, d.after);
    const ev = stored.event;
    if (ev.state_key !== undefined) {
      const k = stateKey(ev.type, ev.state_key);
      if (stored.replacesState) after.set(k, stored.replacesState);
      else after.delete(k);
    }
    return after;
  }

  /** Every event reachable through auth_events from these (not including them unless reachable). */
  async authChainIds(sql: Sql, ids: string[]): Promise<string[]> {
    const links = await fed.authChainLinks(sql, ids);
    return [...new Set(links.map((l) => l.authEventId))];
  }

  async stateIds(origin: string, roomId: string, eventId: string): Promise<{ pdu_ids: string[]; auth_chain_ids: string[] }> {
    await this.authorize(origin, roomId);
    const stored = await events.getEvent(this.deps.db, eventId);
    if (!stored || stored.event.room_id !== roomId) throw notFound('Event not found');
    const before = await this.stateBefore(this.deps.db, eventId);
    if (!(await visibleToServer(this.deps.db, origin, stored.event, before))) throw forbidden('Your server may not see this event');
    const state = [...before.values()];
    return { pdu_ids: state, auth_chain_ids: await this.authChainIds(this.deps.db, state) };
  }

  async state(origin: string, roomId: string, eventId: string): Promise<{ pdus: JsonObject[]; auth_chain: JsonObject[] }> {
    const ids = await this.stateIds(origin, roomId, eventId);
    return { pdus: await this.pdus(this.deps.db, ids.pdu_ids), auth_chain: await this.pdus(this.deps.db, ids.auth_chain_ids) };
  }

  async eventAuth(origin: string, roomId: string, eventId: string): Promise<{ auth_chain: JsonObject[] }> {
    await this.authorize(origin, roomId);
    const stored = await events.getEvent(this.deps.db, eventId);
    if (!stored || stored.event.room_id !== roomId) throw notFound('Event not found');
    return { auth_chain: await this.pdus(this.deps.db, await this.authChainIds(this.deps.db, [eventId])) };
  }

  async missingEvents(origin: string, roomId: string, q: { earliest: string[]; latest: string[]; limit: number; minDepth: number }): Promise<{ events: JsonObject[] }> {
    await this.authorize(origin, roomId);
    const limit = Math.min(Math.max(q.limit, 0), this.deps.maxBackfill);
    const ids = await fed.missingEventIds(this.deps.db, roomId, q.latest, q.earliest, limit, q.minDepth);
    // Oldest first, as the spec's example and every implementation return them.
    const list = await this.pdusForServer(this.deps.db, origin, roomId, ids);
    list.sort((a, b) => Number(a.depth) - Number(b.depth));
    return { events: list };
  }

  async backfill(origin: string, roomId: string, from: string[], limit: number): Promise<JsonObject> {
    await this.authorize(origin, roomId);
    const ids = await fed.backfillIds(this.deps.db, roomId, from, Math.min(Math.max(limit, 0), this.deps.maxBackfill));
    return this.wrap(await this.pdusForServer(this.deps.db, origin, roomId, ids));
  }
}
