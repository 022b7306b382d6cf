/**
 * What other servers may read of our rooms (spec: server-server API "Retrieving events",
 * "Backfilling", "get_missing_events", "/state", "/event_auth"): every read first checks the room's
 * server ACL and that the asking server may see the room — it has a joined member now, or (for
 * single events) the event is world-readable. Then history visibility per event
 * (server_visibility.ts): events the server may not see are served redacted, and the state at them
 * is refused.
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

export class FederationRoomReads {
  constructor(private readonly deps: { db: Database; serverName: string; maxBackfill: number }) {}

  /** 404 for unknown rooms, 403 when the ACL refuses `origin` or it has nobody in the room. */
  async authorize(origin: string, roomId: string, opts: { requireJoined?: boolean } = { requireJoined: true }): Promise<void> {
    const db = this.deps.db;
    if (!(await fed.roomExists(db, roomId))) throw notFound('Unknown room');
    if (!(await roomAclAllows(db, roomId, origin))) throw forbidden('The room\'s server ACL refuses your server');
    if (opts.requireJoined && !(await fed.joinedServers(db, roomId)).includes(origin)) throw forbidden('Your server is not in this room');
  }

  /** The stored PDUs (exact JSON), in the given order. */
  async pdus(sql: Sql, ids: string[]): Promise<JsonObject[]> {
    const got = await fed.getEventJson(sql, ids);
    return ids.map((id) => got.get(id)).filter((x): x is NonNullable<typeof x> => !!x).map((g) => parseStrictJson(g.json) as JsonObject);
  }

  /** The PDUs as `origin` may see them: redacted where history visibility hides them from it. */
  async pdusForServer(sql: Sql, origin: string, roomId: string, ids: string[]): Promise<JsonObject[]> {
    const v = await fed.roomExists(sql, roomId);
    const version = v !== undefined && isSupportedRoomVersion(v) ? v : undefined;
    const got = await fed.getEventJson(sql, ids);
    const out: JsonObject[] = [];
    for (const id of ids) {
      const g = got.get(id);
      if (!g) continue;
      const pdu = parseStrictJson(g.json) as JsonObject;
      // Room versions 3+ carry no event_id in the PDU: the id comes from the list.
      const visible = await this.visibleTo(sql, origin, id);
      out.push(visible || version === undefined ? pdu : (redact(pdu, version) as JsonObject));
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
