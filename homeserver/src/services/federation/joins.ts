/**
 * Joining, leaving and knocking across servers (spec: server-server API "Joining Rooms", "Leaving
 * Rooms (Rejecting Invites)", "Knocking upon a room"), both sides:
 *  - resident: `make_*` hands out a template (membership_templates.ts), `send_*` runs the event
 *    through the receipt checks, persists it, answers (send_join: the state before the event and
 *    its auth chain) and asks the outbox to forward it to the room's other servers;
 *  - joining: `make_*` to a resident server, sign, `send_*`, and for joins verify and persist the
 *    returned state and auth chain, so the room then works for the local user.
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { MatrixError, badJson, forbidden, notFound } from '../../core/errors.js';
import { parseStrictJson, type JsonObject } from '../../core/canonical_json.js';
import * as events from '../../storage/events.js';
import * as fed from '../../storage/federated_events.js';
import * as users from '../../storage/users.js';
import { domainOf } from '../rooms/power_levels.js';
import { isSupportedRoomVersion, redact, SUPPORTED_ROOM_VERSIONS } from '../rooms/event_format.js';
import { checkAuth } from '../rooms/auth_rules.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateKey, type StateMap } from '../rooms/pdu.js';
import type { ServerSigningKey } from '../rooms/signing_key.js';
import type { UnsignedPdu } from '../rooms/signer.js';
import type { VerifiedEvent } from '../rooms/federated_events.js';
import { loadRuleEvents } from '../rooms/state_loader.js';
import { FederationError, type FederationClient } from './client.js';
import { PduRefused, type FederationEventHandler } from './event_handler.js';
import type { FederationRoomReads } from './room_reads.js';
import type { FederationOutbox } from './seams.js';
import { buildTemplate } from './membership_templates.js';
import { decideRestrictedJoin, localAuthorisers, restrictedJoinError } from '../rooms/restricted.js';
import { firstMembers } from '../../storage/sync.js';
import { roomAclAllows } from './acl.js';
import { storeOutOfBand } from './invites.js';
import { checkInviteeRoomState, roomStateForInvitee } from './stripped_state.js';
import { createEventIdOfRoom, roomIdIsCreateHash } from '../rooms/room_v12.js';

export type RemoteMembership = 'join' | 'leave' | 'knock';
/** As many heroes as /sync's room summary gives (services/sync/room_sync.ts). */
const HERO_COUNT = 5;
/** send_join errors after which the joining server tries the next resident (spec: "Restricted rooms"). */
const RETRY_ELSEWHERE = ['M_UNABLE_TO_AUTHORISE_JOIN', 'M_UNABLE_TO_GRANT_JOIN'];

export interface JoinServiceDeps {
  db: Database;
  serverName: string;
  client: FederationClient;
  events: FederationEventHandler;
  reads: FederationRoomReads;
  signer: ServerSigningKey;
  outbox: () => FederationOutbox;
  logger: Logger;
}

/** A remote failure as the client API should see it. */
export function remoteFailure(err: unknown, what: string): MatrixError {
  if (err instanceof MatrixError) return err;
  if (err instanceof FederationError && err.kind === 'remote' && err.status && err.status >= 400 && err.status < 500) {
    return new MatrixError(err.status, err.errcode ?? 'M_UNKNOWN', `${what}: ${err.remoteError ?? err.message}`);
  }
  if (err instanceof PduRefused) return new MatrixError(502, 'M_UNKNOWN', `${what}: ${err.message}`);
  return new MatrixError(502, 'M_UNKNOWN', `${what}: ${(err as Error).message}`);
}

export class JoinService {
  constructor(private readonly deps: JoinServiceDeps) {}

  // --- resident side ---

  /** `make_join` / `make_leave` / `make_knock`. */
  async make(origin: string, roomId: string, userId: string, membership: RemoteMembership, versions?: string[]): Promise<JsonObject> {
    const db = this.deps.db;
    if (domainOf(userId) !== origin) throw forbidden('The user is not on the requesting server');
    const version = await fed.roomExists(db, roomId);
    if (!version) throw notFound('Unknown room');
    if (!(await roomAclAllows(db, roomId, origin))) throw forbidden("The room's server ACL refuses your server");
    if (versions && !versions.includes(version)) {
      throw new MatrixError(400, 'M_INCOMPATIBLE_ROOM_VERSION', `The room is version ${version}`, { room_version: version });
    }
    const content: Record<string, unknown> = { membership };
    if (membership === 'join' && isSupportedRoomVersion(version)) {
      // Restricted rooms: we vouch for users we can see in an allow room (spec: "Restricted rooms").
      const d = await decideRestrictedJoin(db, this.deps.serverName, roomId, version, userId);
      if (d.kind === 'authorised') content.join_authorised_via_users_server = d.via;
      else if (d.kind !== 'open') throw restrictedJoinError(d.kind);
    }
    const t = await buildTemplate(db, roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content });
    return { event: { ...t.pdu }, room_version: t.version } as unknown as JsonObject;
  }

  /** `send_join` / `send_leave` / `send_knock` (v2; v1 wraps the same answer). `omitMembers`: send_join's partial-state answer. */
  async send(origin: string, roomId: string, eventId: string, raw: unknown, membership: RemoteMembership, omitMembers = false): Promise<JsonObject> {
    const db = this.deps.db;
    const version = await this.deps.events.roomVersion(roomId);
    if (!version) throw notFound('Unknown room');
    if (!(await roomAclAllows(db, roomId, origin))) throw forbidden("The room's server ACL refuses your server");
    if (membership === 'join') raw = await this.countersign(roomId, version, raw);
    let v: VerifiedEvent;
    try {
      v = await this.deps.events.verify(raw, version);
    } catch (err) {
      throw badJson(`Invalid event: ${(err as Error).message}`);
    }
    const ev = v.event;
    if (ev.event_id !== eventId) throw badJson('The event id does not match the event');
    if (ev.room_id !== roomId || ev.type !== 'm.room.member' || ev.state_key !== ev.sender || ev.content.membership !== membership) {
      throw badJson(`Not a ${membership} event of its sender in this room`);
    }
    if (domainOf(ev.sender) !== origin) throw forbidden('The sender is not on the requesting server');
    let outcome;
    try {
      outcome = await this.deps.events.handle(origin, v, version);
    } catch (err) {
      throw forbidden(`The event was refused: ${(err as Error).message}`);
    }
    if (outcome !== 'timeline' && outcome !== 'duplicate') throw forbidden(`The event was ${outcome === 'rejected' ? 'rejected by the authorization rules' : 'soft-failed'}`);
    await this.deps.outbox().forward(roomId, eventId);
    if (membership === 'leave') return {};
    if (membership === 'knock') return { knock_room_state: await roomStateForInvitee(db, roomId) };
    const before = await this.deps.reads.stateBefore(db, eventId);
    const stateIds = omitMembers ? await partialState(db, roomId, ev.sender, before) : [...before.values()];
    let authIds = await this.deps.reads.authChainIds(db, [...stateIds, eventId]);
    // omit_members: events already in `state` may be left out of `auth_chain` (joins-v2.yaml).
    if (omitMembers) {
      const inState = new Set(stateIds);
      authIds = authIds.filter((id) => !inState.has(id));
    }
    return {
      origin: this.deps.serverName,
      state: await this.deps.reads.pdus(db, stateIds),
      auth_chain: await this.deps.reads.pdus(db, authIds),
      event: (await this.deps.reads.pdus(db, [eventId]))[0]!,
      members_omitted: omitMembers,
      servers_in_room: await serversBefore(db, roomId, ev.sender),
    };
  }

  /**
   * send_join of a join naming one of our users in `join_authorised_via_users_server`: we are the
   * authorising server, so we check again that the user qualifies and that user may invite, then add
   * our signature before the event is checked, stored or sent anywhere (joins-v2.yaml).
   */
  private async countersign(roomId: string, version: RoomVersionId, raw: unknown): Promise<unknown> {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
    const pdu = raw as JsonObject;
    const content = pdu.content as JsonObject | undefined;
    const via = typeof content === 'object' && content !== null && !Array.isArray(content) ? content.join_authorised_via_users_server : undefined;
    if (typeof via !== 'string' || domainOf(via) !== this.deps.serverName || typeof pdu.sender !== 'string') return raw;
    const d = await decideRestrictedJoin(this.deps.db, this.deps.serverName, roomId, version, pdu.sender);
    if (d.kind === 'forbidden' || d.kind === 'unable_to_authorise') throw restrictedJoinError(d.kind);
    if (!(await localAuthorisers(this.deps.db, roomId, this.deps.serverName, version)).includes(via)) throw restrictedJoinError('unable_to_grant');
    const { unsigned, ...rest } = pdu;
    let signatures;
    try {
      signatures = this.deps.signer.sign(redact(rest, version)).signatures;
    } catch (err) {
      throw badJson(`Invalid event: ${(err as Error).message}`);
    }
    return { ...rest, signatures, ...(unsigned !== undefined ? { unsigned } : {}) };
  }

  // --- joining side ---

  /** make_* on the first of `servers` that answers, then sign. */
  private async makeAndSign(userId: string, roomId: string, servers: string[], membership: RemoteMembership, extra: Record<string, unknown>) {
    let lastErr: unknown = notFound('No server to ask about this room');
    for (const server of servers) {
      if (server === this.deps.serverName) continue;
      try {
        const res = await this.deps.client.request({
          destination: server,
          method: 'GET',
          path: `/_matrix/federation/v1/make_${membership}/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`,
          query: membership === 'leave' ? undefined : { ver: [...SUPPORTED_ROOM_VERSIONS] },
        });
        const version = res.room_version;
        if (!isSupportedRoomVersion(version)) throw new MatrixError(400, 'M_INCOMPATIBLE_ROOM_VERSION', `Room version ${String(version)} is not supported`);
        const t = res.event as Record<string, unknown> | undefined;
        if (!t || t.room_id !== roomId || t.sender !== userId || t.state_key !== userId || t.type !== 'm.room.member') throw new MatrixError(502, 'M_UNKNOWN', 'Bad template');
        const content = { ...(t.content as Record<string, unknown>), ...extra, membership };
        const pdu: UnsignedPdu = {
          room_id: roomId,
          sender: userId,
          type: 'm.room.member',
          state_key: userId,
          content,
          prev_events: t.prev_events as string[],
          auth_events: t.auth_events as string[],
          depth: t.depth as number,
          origin_server_ts: Date.now(),
        };
        return { server, version, ...this.deps.signer.build(pdu, version) };
      } catch (err) {
        lastErr = err;
        this.deps.logger.info({ err, server, roomId, membership }, `make_${membership} failed`);
      }
    }
    throw remoteFailure(lastErr, `Could not ${membership} the room`);
  }

  /** Joins a room hosted elsewhere through one of `servers`; returns once the room works locally. */
  async joinRemote(userId: string, roomId: string, servers: string[], reason?: string): Promise<void> {
    const { made, res } = await this.makeAndSendJoin(userId, roomId, servers, reason);
    await this.persistJoin(made.server, roomId, made.version, { event: made.event, json: made.json }, res);
  }

  /**
   * Joins a restricted room we are already in, through a resident that can vouch (none of our
   * members may invite): make_join/send_join as for a remote room, but the join the resident
   * countersigned is one more event of a room we hold, so it goes through the normal persistence
   * of received events (auth against our state, missing prev events fetched), not persistJoin.
   */
  async joinThroughResident(userId: string, roomId: string, servers: string[], reason?: string): Promise<void> {
    const { made, res } = await this.makeAndSendJoin(userId, roomId, servers, reason);
    const h = this.deps.events;
    const ours = await h.roomVersion(roomId);
    if (ours !== made.version) throw new MatrixError(502, 'M_UNKNOWN', 'The resident server reports another room version');
    // Only the resident's copy carries the voucher's signature (verify() checks it).
    let theirs;
    try {
      theirs = res.event === undefined ? undefined : await h.verify(res.event, made.version);
    } catch (err) {
      this.deps.logger.info({ err, server: made.server, roomId }, 'the send_join answer carries an invalid join');
    }
    if (!theirs || theirs.redacted || theirs.event.event_id !== made.event.event_id) {
      throw new MatrixError(502, 'M_UNKNOWN', `${made.server} did not return the join it authorised`);
    }
    let outcome;
    try {
      outcome = await h.handle(made.server, theirs, made.version);
    } catch (err) {
      throw remoteFailure(err, 'The join could not be stored');
    }
    if (outcome !== 'timeline' && outcome !== 'duplicate') throw forbidden(`The join was ${outcome === 'rejected' ? 'rejected by the authorization rules' : 'soft-failed'}`);
    this.deps.logger.info({ roomId, server: made.server, outcome }, 'joined a restricted room through a resident that vouched');
  }

  /** make_join and send_join on the first of `servers` that accepts, trying the next when one cannot vouch. */
  private async makeAndSendJoin(userId: string, roomId: string, servers: string[], reason?: string) {
    const profile = await users.getUser(this.deps.db, userId);
    const extra: Record<string, unknown> = {};
    if (profile?.displayname) extra.displayname = profile.displayname;
    if (profile?.avatar_url) extra.avatar_url = profile.avatar_url;
    if (reason !== undefined) extra.reason = reason;
    let remaining = servers;
    for (;;) {
      const made = await this.makeAndSign(userId, roomId, remaining, 'join', extra);
      try {
        // Full state always: we do not do partial-state joins (no omit_members).
        const res: JsonObject = await this.deps.client.request({
          destination: made.server,
          method: 'PUT',
          path: `/_matrix/federation/v2/send_join/${encodeURIComponent(roomId)}/${encodeURIComponent(made.event.event_id)}`,
          body: parseStrictJson(made.json) as JsonObject,
        });
        return { made, res };
      } catch (err) {
        // Restricted rooms: this server cannot vouch for the join (any more); another one may.
        const next = remaining.slice(remaining.indexOf(made.server) + 1);
        if (err instanceof FederationError && RETRY_ELSEWHERE.includes(err.errcode ?? '') && next.length > 0) {
          remaining = next;
          continue;
        }
        throw remoteFailure(err, 'The resident server refused the join');
      }
    }
  }

  /** Verifies the send_join answer (state, auth chain, the join as the resident signed it) and persists the room. */
  private async persistJoin(server: string, roomId: string, version: RoomVersionId, own: VerifiedEvent, res: JsonObject): Promise<void> {
    const h = this.deps.events;
    const rawState = Array.isArray(res.state) ? res.state : [];
    const rawAuth = Array.isArray(res.auth_chain) ? res.auth_chain : [];
    const state = await h.verifyAll(rawState, version);
    const auth = await h.verifyAll(rawAuth, version);
    const isCreate = (s: VerifiedEvent) => s.event.type === 'm.room.create' && s.event.state_key === '';
    let create = state.find(isCreate) ?? auth.find(isCreate);
    // v12: no event lists the create event in auth_events, so an auth chain (spec: the closure of
    // auth_events) need not carry it; the room id names it, so we can still ask for it.
    if (!create && roomIdIsCreateHash(version)) {
      create = await h.fetchEvent(server, createEventIdOfRoom(roomId), version);
      if (create) auth.push(create);
    }
    if (!create || create.event.room_id !== roomId) throw new MatrixError(502, 'M_UNKNOWN', 'The resident server sent no valid state for the room');
    if (roomIdIsCreateHash(version) && create.event.event_id !== createEventIdOfRoom(roomId)) {
      throw new MatrixError(502, 'M_UNKNOWN', 'The create event the resident server sent is not the one the room id names');
    }
    if (create.event.content.room_version !== version) {
      throw new MatrixError(502, 'M_UNKNOWN', 'The room version does not match the create event');
    }
    await fed.insertRemoteRoom(this.deps.db, roomId, version, create.event.sender);
    const stored = await h.storeOutliers(roomId, version, [...auth, ...state]);
    let join = own;
    if (res.event !== undefined) {
      try {
        const theirs = await h.verify(res.event, version);
        if (theirs.event.event_id === own.event.event_id && !theirs.redacted) join = theirs;
      } catch {
        // keep ours
      }
    }
    // A restricted join is only valid with the authorising server's signature, which verify() checked on theirs.
    const via = own.event.content.join_authorised_via_users_server;
    if (join === own && typeof via === 'string' && domainOf(via) !== this.deps.serverName) {
      throw new MatrixError(502, 'M_UNKNOWN', `The resident server did not return the join signed by ${domainOf(via) ?? via}`);
    }
    const stateBefore: StateMap = new Map();
    const stateIds = state.map((s) => s.event.event_id);
    const { events: ruleEvents, rejected } = await loadRuleEvents(this.deps.db, stateIds, version);
    for (const id of stateIds) {
      const e = ruleEvents.get(id);
      if (!e || rejected.has(id) || stored.get(id)?.rejectedReason !== undefined || e.state_key === undefined) continue;
      stateBefore.set(stateKey(e.type, e.state_key), id);
    }
    // A state list without the create event (it came in the auth chain or was fetched): it is state all the same.
    const createKey = stateKey('m.room.create', '');
    if (!stateBefore.has(createKey) && stored.get(create.event.event_id)?.rejectedReason === undefined) {
      stateBefore.set(createKey, create.event.event_id);
      ruleEvents.set(create.event.event_id, create.event);
    }
    const authState = new Map<StateKey, RoomEvent>();
    for (const [k, id] of stateBefore) authState.set(k, ruleEvents.get(id)!);
    const verdict = checkAuth(join.event, authState, version);
    if (!verdict.allowed) throw new MatrixError(403, 'M_FORBIDDEN', `The join is not allowed by the room's state: ${verdict.reason}`);
    const outcome = await h.store.locked(async (tx, changes) => {
      const o = await h.store.persistIn(tx, changes, { ...join, version, stateBefore, noSoftFail: true });
      await fed.adoptOutOfBand(tx, roomId, join.event.event_id);
      return o;
    });
    this.deps.logger.info({ roomId, server, outcome, stateEvents: stateBefore.size }, 'joined a remote room');
  }

  /**
   * Leaves (rejects an invite, withdraws a knock) through a resident server when we are not in the
   * room ourselves; the leave is recorded locally as an out-of-band membership.
   */
  async leaveRemote(userId: string, roomId: string, servers: string[], reason?: string): Promise<void> {
    const made = await this.makeAndSign(userId, roomId, servers, 'leave', reason !== undefined ? { reason } : {});
    try {
      await this.deps.client.request({
        destination: made.server,
        method: 'PUT',
        path: `/_matrix/federation/v2/send_leave/${encodeURIComponent(roomId)}/${encodeURIComponent(made.event.event_id)}`,
        body: parseStrictJson(made.json) as JsonObject,
      });
    } catch (err) {
      throw remoteFailure(err, 'The resident server refused the leave');
    }
    await storeOutOfBand(this.deps.events.store, this.deps.db, { event: made.event, json: made.json }, made.version, undefined);
  }

  async knockRemote(userId: string, roomId: string, servers: string[], reason?: string): Promise<void> {
    const made = await this.makeAndSign(userId, roomId, servers, 'knock', reason !== undefined ? { reason } : {});
    let res: JsonObject;
    try {
      res = await this.deps.client.request({
        destination: made.server,
        method: 'PUT',
        path: `/_matrix/federation/v1/send_knock/${encodeURIComponent(roomId)}/${encodeURIComponent(made.event.event_id)}`,
        body: parseStrictJson(made.json) as JsonObject,
      });
    } catch (err) {
      throw remoteFailure(err, 'The resident server refused the knock');
    }
    // The knock is done, so bad entries are only left out of what clients see (knocks.yaml).
    const checked = await checkInviteeRoomState((r, v) => this.deps.events.verify(r, v), roomId, made.version, Array.isArray(res.knock_room_state) ? res.knock_room_state : [], 'knock_room_state');
    if (checked.problems.length > 0) this.deps.logger.warn({ server: made.server, roomId, problems: checked.problems }, 'knock_room_state is not as spec v1.16 asks');
    await storeOutOfBand(this.deps.events.store, this.deps.db, { event: made.event, json: made.json }, made.version, checked.kept);
  }
}

/**
 * The state of a partial-state send_join answer (omit_members): everything but m.room.member events,
 * except the joiner's own earlier membership (an auth event of the join) and, when the room has no
 * name or canonical alias, the members who would be the joiner's `m.heroes` (joins-v2.yaml).
 */
async function partialState(db: Database, roomId: string, joiner: string, before: StateMap): Promise<string[]> {
  const keep = new Set([joiner]);
  const named = await events.getEvents(db, [before.get(stateKey('m.room.name', '')), before.get(stateKey('m.room.canonical_alias', ''))].filter((x): x is string => !!x));
  const hasName = [...named.values()].some((s) => !s.redactedBy && ((typeof s.event.content.name === 'string' && s.event.content.name !== '') || (typeof s.event.content.alias === 'string' && s.event.content.alias !== '')));
  if (!hasName) for (const hero of await firstMembers(db, roomId, joiner, ['join', 'invite'], HERO_COUNT)) keep.add(hero);
  const out: string[] = [];
  const memberPrefix = stateKey('m.room.member', '');
  for (const [k, id] of before) {
    if (!k.startsWith(memberPrefix) || keep.has(k.slice(memberPrefix.length))) out.push(id);
  }
  return out;
}

/** `servers_in_room`: the servers with joined members before the join (the joiner's only if it already had one). */
async function serversBefore(db: Database, roomId: string, joiner: string): Promise<string[]> {
  const servers = await fed.joinedServers(db, roomId);
  const own = domainOf(joiner);
  if (!own) return servers;
  const others = await db.query(`select 1 from current_state where room_id = ? and type = 'm.room.member' and membership = 'join' and state_key <> ? and right(state_key, ?) = ? limit 1`, [roomId, joiner, own.length + 1, `:${own}`]);
  return others.length > 0 ? servers : servers.filter((s) => s !== own);
}
