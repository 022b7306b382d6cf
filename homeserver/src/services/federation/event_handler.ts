/**
 * Incoming PDUs (spec: server-server API "Checks performed on receipt of a PDU"), in the spec's
 * order: (1) format and size, (2) signatures of the sender's server (and of the server authorising
 * a restricted join), (3) content hash — a mismatch stores the redacted form, (4) auth against the
 * event's auth_events (fetched when missing), (5) auth against the state before the event
 * (resolved over its prev_events; missing prev events come from `get_missing_events`, gaps from
 * `/state_ids` + `/event` or `/state`), (6) auth against the current state: a failure there is a
 * soft failure (decided under the stream lock, services/rooms/federated_events.ts).
 * Every fetch is bounded (FederationRoomLimits) and everything fetched goes through the same checks.
 */
import type { Database, Sql } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { encodeCanonicalJson, type JsonObject } from '../../core/canonical_json.js';
import * as fed from '../../storage/federated_events.js';
import * as stateStore from '../../storage/state.js';
import { checkContentHash, checkEvent, eventIdFor, isSupportedRoomVersion, redact } from '../rooms/event_format.js';
import { authEventTypesFor, checkAuth, checkAuthAgainstAuthEvents } from '../rooms/auth_rules.js';
import { createEventIdOfRoom, roomIdIsCreateHash, ruleAuthEventIds, withImpliedRoomId } from '../rooms/room_v12.js'; // v12: the create event is implied by the room id
import { domainOf } from '../rooms/power_levels.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateKey, type StateMap } from '../rooms/pdu.js';
import type { FederatedEventStore, OutlierEvent, PersistOutcome, VerifiedEvent } from '../rooms/federated_events.js';
import { loadRuleEvents, loadState, resolveStored, writeState } from '../rooms/state_loader.js';
import type { FederationClient } from './client.js';
import type { KeyRing } from './key_ring.js';
import { roomAclAllows } from './acl.js';
import { THIRD_PARTY_AUTH } from '../identity/signed.js'; // auth rule 4.4.1.7's signature check

/** A PDU refused before it could be stored (bad format, signature, unknown room…). */
export class PduRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PduRefused';
  }
}

export interface FederationRoomLimits {
  /** `limit` of one get_missing_events request. */
  missingEvents: number;
  /** Most get_missing_events requests to close one gap (each continues where the last one ended). */
  missingEventsRounds: number;
  /** Events fetched to fill one gap (state and auth chain at a prev event). */
  maxFetchedState: number;
  /** Events per /backfill request, served and asked for. */
  backfill: number;
}

export interface EventHandlerDeps {
  db: Database;
  client: FederationClient;
  keyRing: KeyRing;
  store: FederatedEventStore;
  serverName: string;
  logger: Logger;
  limits: FederationRoomLimits;
}

const FETCH_CONCURRENCY = 8;
/** Room versions remembered (immutable facts; a small map per process). */
const ROOM_VERSIONS_KEPT = 10_000;

export class FederationEventHandler {
  private readonly versions = new Map<string, RoomVersionId>();

  constructor(private readonly deps: EventHandlerDeps) {}

  get store(): FederatedEventStore {
    return this.deps.store;
  }

  /** Another server's event (not one of ours coming back): nothing for our federation sender to send. */
  isRemote(ev: RoomEvent): boolean {
    return domainOf(ev.sender) !== this.deps.serverName;
  }

  /** The room's version, if we know the room. */
  async roomVersion(roomId: string): Promise<RoomVersionId | undefined> {
    const hit = this.versions.get(roomId);
    if (hit) return hit;
    const v = await fed.roomExists(this.deps.db, roomId);
    if (v === undefined || !isSupportedRoomVersion(v)) return undefined;
    // A room's version never changes: kept (bounded) so /send does not ask for it per PDU.
    if (this.versions.size >= ROOM_VERSIONS_KEPT) this.versions.delete(this.versions.keys().next().value!);
    this.versions.set(roomId, v);
    return v;
  }

  /**
   * Checks 1-3: format and size, signatures, content hash. Returns the event with its id and the
   * JSON to store (without `unsigned`; redacted when the hash does not match). Throws PduRefused.
   */
  async verify(raw: unknown, version: RoomVersionId): Promise<VerifiedEvent & { redacted: boolean }> {
    try {
      checkEvent(raw, version);
    } catch (err) {
      throw new PduRefused(`bad event format: ${(err as Error).message}`);
    }
    const pdu = raw as JsonObject;
    const { unsigned: _u, ...withoutUnsigned } = pdu;
    const ev = withoutUnsigned as unknown as RoomEvent;
    const signers = new Set<string>();
    const senderDomain = domainOf(ev.sender);
    if (!senderDomain) throw new PduRefused('the sender is not a user id');
    signers.add(senderDomain);
    const via = ev.type === 'm.room.member' ? ev.content.join_authorised_via_users_server : undefined;
    if (ev.type === 'm.room.member' && ev.content.membership === 'join' && typeof via === 'string' && domainOf(via)) signers.add(domainOf(via)!);
    const redactedForm = redact(withoutUnsigned, version);
    for (const server of signers) {
      const ok = await this.deps.keyRing.verifySigned(redactedForm, server, { atTs: ev.origin_server_ts, allowOld: true });
      if (!ok) throw new PduRefused(`no valid signature of ${server}`);
    }
    const eventId = eventIdFor(withoutUnsigned, version);
    if (!checkContentHash(withoutUnsigned)) {
      // Check 3: the signature covers the redacted form, which is all we may keep.
      this.deps.logger.info({ eventId, sender: ev.sender }, 'content hash mismatch: storing the redacted event');
      return { event: withImpliedRoomId({ ...(redactedForm as unknown as RoomEvent), event_id: eventId }, version), json: encodeCanonicalJson(redactedForm), redacted: true };
    }
    return { event: withImpliedRoomId({ ...ev, event_id: eventId }, version), json: encodeCanonicalJson(withoutUnsigned), redacted: false };
  }

  /**
   * Verifies, auth-checks (against their own auth events, in dependency order) and stores events
   * received as state or auth chain. Events whose auth events are nowhere to be found are rejected.
   */
  async storeOutliers(roomId: string, version: RoomVersionId, list: VerifiedEvent[]): Promise<Map<string, OutlierEvent>> {
    const batch = new Map<string, VerifiedEvent>();
    for (const v of list) if (v.event.room_id === roomId) batch.set(v.event.event_id, v);
    const known = await fed.knownEvents(this.deps.db, [...batch.keys()]);
    for (const id of known.keys()) batch.delete(id);
    const referenced = new Set<string>();
    for (const v of batch.values()) for (const a of ruleAuthEventIds(v.event, version)) if (!batch.has(a)) referenced.add(a);
    const { events: stored, rejected } = await loadRuleEvents(this.deps.db, [...referenced], version);
    const out = new Map<string, OutlierEvent>();
    // Auth events first (Kahn's order over auth_events inside the batch); cycles end up rejected.
    const order = topoByAuth([...batch.values()], version);
    for (const v of order) {
      const fetch = (id: string) => out.get(id)?.event ?? stored.get(id);
      const isRejected = (id: string) => rejected.has(id) || out.get(id)?.rejectedReason !== undefined;
      const verdict = checkAuthAgainstAuthEvents(v.event, fetch, version, { ...THIRD_PARTY_AUTH, isRejected });
      out.set(v.event.event_id, verdict.allowed ? v : { ...v, rejectedReason: verdict.reason });
    }
    if (out.size > 0) await this.deps.store.storeOutliers(this.deps.db, [...out.values()]);
    return out;
  }

  /** GET /event/{eventId} from `server`, verified (not stored). Undefined when it cannot be had. */
  async fetchEvent(server: string, eventId: string, version: RoomVersionId): Promise<VerifiedEvent | undefined> {
    try {
      const res = await this.deps.client.request({ destination: server, method: 'GET', path: `/_matrix/federation/v1/event/${encodeURIComponent(eventId)}` });
      const pdu = Array.isArray(res.pdus) ? res.pdus[0] : undefined;
      const v = await this.verify(pdu, version);
      return v.event.event_id === eventId ? v : undefined;
    } catch (err) {
      this.deps.logger.debug({ err, server, eventId }, 'could not fetch an event');
      return undefined;
    }
  }

  /** Verifies a list of PDUs from a response, dropping those that fail (logged). */
  async verifyAll(raws: unknown[], version: RoomVersionId): Promise<VerifiedEvent[]> {
    const out: VerifiedEvent[] = [];
    for (const raw of raws) {
      try {
        out.push(await this.verify(raw, version));
      } catch (err) {
        this.deps.logger.info({ reason: (err as Error).message }, 'dropped a fetched event');
      }
    }
    return out;
  }

  /** Fetches and stores (as outliers) those of `ids` we lack, from `server`: individually, or `/state` when many. */
  private async fetchMissing(server: string, roomId: string, version: RoomVersionId, ids: string[], atEvent?: string): Promise<void> {
    const known = await fed.knownEvents(this.deps.db, ids);
    const missing = ids.filter((id) => !known.has(id));
    if (missing.length === 0) return;
    if (missing.length > this.deps.limits.maxFetchedState) throw new PduRefused(`too many missing events (${missing.length})`);
    let got: VerifiedEvent[] = [];
    if (atEvent && missing.length > 50) {
      const res = await this.deps.client.request({ destination: server, method: 'GET', path: `/_matrix/federation/v1/state/${encodeURIComponent(roomId)}`, query: { event_id: atEvent } });
      const raws = [...(Array.isArray(res.pdus) ? res.pdus : []), ...(Array.isArray(res.auth_chain) ? res.auth_chain : [])];
      got = await this.verifyAll(raws, version);
    } else {
      for (let i = 0; i < missing.length; i += FETCH_CONCURRENCY) {
        const part = await Promise.all(missing.slice(i, i + FETCH_CONCURRENCY).map((id) => this.fetchEvent(server, id, version)));
        got.push(...part.filter((v): v is VerifiedEvent => !!v));
      }
    }
    await this.storeOutliers(roomId, version, got);
  }

  /** The auth chain of an event we were sent, from `/event_auth` (fallback: one `/event` per missing id). */
  async fetchAuthChain(server: string, ev: RoomEvent, version: RoomVersionId): Promise<void> {
    const authIds = ruleAuthEventIds(ev, version);
    const known = await fed.knownEvents(this.deps.db, authIds);
    if (authIds.every((id) => known.has(id))) return;
    try {
      const res = await this.deps.client.request({ destination: server, method: 'GET', path: `/_matrix/federation/v1/event_auth/${encodeURIComponent(ev.room_id)}/${encodeURIComponent(ev.event_id)}` });
      const raws = Array.isArray(res.auth_chain) ? res.auth_chain : [];
      if (raws.length > this.deps.limits.maxFetchedState) throw new PduRefused('auth chain too long');
      const chain = await this.verifyAll(raws, version);
      // v12: the chain (auth_events links only) may lack the create event every member of it needs.
      const createId = authIds.find((id) => id === createEventIdOfRoom(ev.room_id) && roomIdIsCreateHash(version));
      if (createId && !chain.some((c) => c.event.event_id === createId)) await this.fetchMissing(server, ev.room_id, version, [createId]);
      await this.storeOutliers(ev.room_id, version, chain);
    } catch (err) {
      if (err instanceof PduRefused) throw err;
      await this.fetchMissing(server, ev.room_id, version, authIds);
    }
  }

  /**
   * The DAG state after `prevId`, learnt from `server` (`/state_ids` at it, then the events we lack)
   * and remembered for the next event that needs it.
   */
  private async stateAfterRemote(server: string, roomId: string, version: RoomVersionId, prevId: string): Promise<StateMap | undefined> {
    let res;
    try {
      res = await this.deps.client.request({ destination: server, method: 'GET', path: `/_matrix/federation/v1/state_ids/${encodeURIComponent(roomId)}`, query: { event_id: prevId } });
    } catch (err) {
      this.deps.logger.info({ err, server, prevId }, 'could not get the state at a missing prev event');
      return undefined;
    }
    const pduIds = Array.isArray(res.pdu_ids) ? res.pdu_ids.filter((x): x is string => typeof x === 'string') : [];
    const authIds = Array.isArray(res.auth_chain_ids) ? res.auth_chain_ids.filter((x): x is string => typeof x === 'string') : [];
    await this.fetchMissing(server, roomId, version, [...new Set([...authIds, ...pduIds, prevId])], prevId);
    const { events, rejected } = await loadRuleEvents(this.deps.db, [...pduIds, prevId], version);
    const before: StateMap = new Map();
    for (const id of pduIds) {
      const e = events.get(id);
      if (e && e.state_key !== undefined && e.room_id === roomId && !rejected.has(id)) before.set(stateKey(e.type, e.state_key), id);
    }
    const prev = events.get(prevId);
    if (!prev) return undefined;
    const after = new Map(before);
    if (prev.state_key !== undefined && !rejected.has(prevId)) after.set(stateKey(prev.type, prev.state_key), prevId);
    const b = await writeState(this.deps.db, roomId, before);
    const a = await writeState(this.deps.db, roomId, after, { snapshot: b, map: before });
    await fed.setDagState(this.deps.db, prevId, roomId, b, a);
    return after;
  }

  /** Checks 4-6 and persistence for a verified event (see the file comment). */
  async handle(origin: string, v: VerifiedEvent, version: RoomVersionId, opts: { fetchMissingPrev: boolean } = { fetchMissingPrev: true }): Promise<PersistOutcome> {
    const ev = v.event;
    const db = this.deps.db;
    const senderServer = domainOf(ev.sender)!;
    // Independent reads, run in parallel on the pool (one round trip instead of four), then judged
    // in the spec's order. When every auth event is stored (the usual case) nothing is fetched.
    const [knownMap, aclAllows, authLoaded, dagLoaded] = await Promise.all([
      fed.knownEvents(db, [ev.event_id]),
      roomAclAllows(db, ev.room_id, senderServer),
      loadRuleEvents(db, ruleAuthEventIds(ev, version), version),
      fed.dagStates(db, ev.prev_events),
    ]);
    const known = knownMap.get(ev.event_id);
    // Rejected first: a PDU received again (a retried transaction whose answer was lost) is answered as the first time.
    if (known?.rejected) return 'rejected';
    if (known && !known.outlier) return 'duplicate';
    if (!aclAllows) throw new PduRefused(`the room's server ACL refuses ${senderServer}`);

    // 4: against the event's own auth events.
    let { events: authEvents, rejected: authRejected } = authLoaded;
    if (ruleAuthEventIds(ev, version).some((id) => !authEvents.has(id))) {
      await this.fetchAuthChain(origin, ev, version);
      ({ events: authEvents, rejected: authRejected } = await loadRuleEvents(db, ruleAuthEventIds(ev, version), version));
    }
    const againstAuth = checkAuthAgainstAuthEvents(ev, (id) => authEvents.get(id), version, { ...THIRD_PARTY_AUTH, isRejected: (id) => authRejected.has(id) });
    if (!againstAuth.allowed) {
      await this.deps.store.storeOutliers(db, [{ ...v, rejectedReason: againstAuth.reason }]);
      return 'rejected';
    }

    // 5: the state before the event, over its prev_events.
    let dag = dagLoaded;
    if (opts.fetchMissingPrev && ev.prev_events.some((p) => !dag.has(p))) {
      await this.getMissingEvents(origin, ev, version);
      dag = await fed.dagStates(db, ev.prev_events);
    }
    // Common case, one prev event whose DAG state we hold: the state before is that snapshot, and
    // the auth rules need only a few of its entries (persistIn loads the rest only for a fork).
    const single = ev.prev_events.length === 1 ? dag.get(ev.prev_events[0]!) : undefined;
    if (single && single.after !== null) {
      const verdict = await this.authAgainstSnapshot(db, ev, version, single.after);
      return this.deps.store.persist({ ...v, version, beforeSnapshot: single.after, rejectedReason: verdict.allowed ? undefined : verdict.reason }, { remoteOnly: this.isRemote(ev) });
    }
    const sets: StateMap[] = [];
    let base: { snapshot: number | null; map: StateMap } | undefined;
    for (const p of ev.prev_events) {
      const d = dag.get(p);
      let after: StateMap | undefined;
      if (d) {
        after = await loadState(db, d.after);
        base ??= { snapshot: d.after, map: after };
      } else after = await this.stateAfterRemote(origin, ev.room_id, version, p);
      if (after) sets.push(after);
    }
    if (sets.length === 0) throw new PduRefused('the state before the event cannot be determined');
    const stateBefore = await resolveStored(db, version, sets);
    const againstState = await this.authAgainstState(ev, version, stateBefore);
    // 6 happens under the stream lock (FederatedEventStore.persist).
    return this.deps.store.persist({ ...v, version, stateBefore, base, rejectedReason: againstState.allowed ? undefined : againstState.reason }, { remoteOnly: this.isRemote(ev) });
  }

  /** Check 5 when the state before the event is a stored snapshot: its auth entries and their events in one query. */
  async authAgainstSnapshot(sql: Sql, ev: RoomEvent, version: RoomVersionId, snapshot: number): Promise<ReturnType<typeof checkAuth>> {
    const keys = authEventTypesFor(ev, version).map((k): [string, string] => [k.slice(0, k.indexOf('\u0000')), k.slice(k.indexOf('\u0000') + 1)]);
    const found = await fed.snapshotEntryEvents(sql, snapshot, keys);
    const authState = new Map<StateKey, RoomEvent>();
    for (const [id, s] of found) {
      const e = s.redactedBy ? ({ ...redact(s.event, version), event_id: id } as RoomEvent) : s.event;
      if (!s.rejected && e.state_key !== undefined) authState.set(stateKey(e.type, e.state_key), e);
    }
    return checkAuth(ev, authState, version, THIRD_PARTY_AUTH);
  }

  /** Check 5: the auth rules against the state before the event (`state` needs only the auth keys). */
  private async authAgainstState(ev: RoomEvent, version: RoomVersionId, state: StateMap): Promise<ReturnType<typeof checkAuth>> {
    const wanted = authEventTypesFor(ev, version).map((k) => state.get(k)).filter((x): x is string => !!x);
    const { events: beforeEvents, rejected } = await loadRuleEvents(this.deps.db, wanted, version);
    const authState = new Map<StateKey, RoomEvent>();
    for (const e of beforeEvents.values()) if (!rejected.has(e.event_id) && e.state_key !== undefined) authState.set(stateKey(e.type, e.state_key), e);
    return checkAuth(ev, authState, version, THIRD_PARTY_AUTH);
  }

  /**
   * `get_missing_events` from the origin: the events between our forward extremities and this one,
   * handled oldest first. A gap longer than one request's `limit` (a peer back from a long outage
   * sends only its newest events) is asked for again from the oldest events fetched, up to
   * `missingEventsRounds` requests: a gap left open is filled by backfill, which places its events
   * before the whole timeline (negative positions), out of order.
   */
  private async getMissingEvents(origin: string, ev: RoomEvent, version: RoomVersionId): Promise<void> {
    const earliest = await fed.forwardExtremityIds(this.deps.db, ev.room_id);
    // Nothing older than our own part of the graph: events from before we joined that we hold as
    // outliers (the join's state) must not enter the live timeline again; backfill serves history.
    const minDepth = (await fed.minTimelineDepth(this.deps.db, ev.room_id)) ?? 0;
    const { missingEvents: limit, missingEventsRounds: rounds } = this.deps.limits;
    const fetched = new Map<string, VerifiedEvent>();
    let latest = [ev.event_id];
    for (let round = 0; round < rounds && latest.length > 0; round++) {
      let res;
      try {
        res = await this.deps.client.request({
          destination: origin,
          method: 'POST',
          path: `/_matrix/federation/v1/get_missing_events/${encodeURIComponent(ev.room_id)}`,
          body: { earliest_events: earliest, latest_events: latest, limit, min_depth: minDepth },
        });
      } catch (err) {
        this.deps.logger.info({ err, origin, eventId: ev.event_id }, 'get_missing_events failed');
        break;
      }
      const raws = (Array.isArray(res.events) ? res.events : []).slice(0, limit);
      const got = (await this.verifyAll(raws, version)).filter((m) => m.event.room_id === ev.room_id && m.event.depth >= minDepth && !fetched.has(m.event.event_id));
      for (const m of got) fetched.set(m.event.event_id, m);
      if (raws.length < limit || got.length === 0) break; // the origin has nothing more between
      // Still a gap when some fetched event's prev events are neither held nor fetched: go on from those.
      const prevs = [...new Set(got.flatMap((m) => m.event.prev_events))].filter((p) => !fetched.has(p));
      const held = await fed.dagStates(this.deps.db, prevs);
      latest = got.filter((m) => m.event.prev_events.some((p) => !fetched.has(p) && !held.has(p))).map((m) => m.event.event_id);
    }
    const all = [...fetched.values()].sort((a, b) => a.event.depth - b.event.depth);
    for (const m of all) {
      try {
        await this.handle(origin, m, version, { fetchMissingPrev: false });
      } catch (err) {
        this.deps.logger.info({ eventId: m.event.event_id, reason: (err as Error).message }, 'a missing event was refused');
      }
    }
  }

  /** Current state ids of a room (for the resident side of joins, and the senders of new events). */
  async currentState(roomId: string): Promise<StateMap> {
    const rows = await stateStore.getCurrentState(this.deps.db, roomId);
    return new Map(rows.map((r) => [stateKey(r.type, r.state_key), r.event_id]));
  }
}

/** Orders events so that each comes after those of its auth_events in the list (depth breaks ties). */
function topoByAuth(list: VerifiedEvent[], version: RoomVersionId): VerifiedEvent[] {
  const byId = new Map(list.map((v) => [v.event.event_id, v]));
  const done = new Set<string>();
  const out: VerifiedEvent[] = [];
  const visiting = new Set<string>();
  const visit = (v: VerifiedEvent) => {
    const id = v.event.event_id;
    if (done.has(id) || visiting.has(id)) return;
    visiting.add(id);
    for (const a of ruleAuthEventIds(v.event, version)) {
      const dep = byId.get(a);
      if (dep) visit(dep);
    }
    visiting.delete(id);
    done.add(id);
    out.push(v);
  };
  for (const v of [...list].sort((a, b) => a.event.depth - b.event.depth)) visit(v);
  return out;
}
