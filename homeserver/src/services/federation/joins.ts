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
import { isSupportedRoomVersion, SUPPORTED_ROOM_VERSIONS } from '../rooms/event_format.js';
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
import { roomAclAllows } from './acl.js';
import { storeOutOfBand } from './invites.js';

export type RemoteMembership = 'join' | 'leave' | 'knock';
const STRIPPED_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

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
    const t = await buildTemplate(db, roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content });
    return { event: { ...t.pdu }, room_version: t.version } as unknown as JsonObject;
  }

  /** `send_join` / `send_leave` / `send_knock` (v2). */
  async send(origin: string, roomId: string, eventId: string, raw: unknown, membership: RemoteMembership): Promise<JsonObject> {
    const db = this.deps.db;
    const version = await this.deps.events.roomVersion(roomId);
    if (!version) throw notFound('Unknown room');
    if (!(await roomAclAllows(db, roomId, origin))) throw forbidden("The room's server ACL refuses your server");
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
    if (membership === 'knock') return { knock_room_state: await strippedState(db, roomId) };
    const stateIds = [...(await this.deps.reads.stateBefore(db, eventId)).values()];
    const authIds = await this.deps.reads.authChainIds(db, [...stateIds, eventId]);
    return {
      origin: this.deps.serverName,
      state: await this.deps.reads.pdus(db, stateIds),
      auth_chain: await this.deps.reads.pdus(db, authIds),
      event: (await this.deps.reads.pdus(db, [eventId]))[0]!,
      members_omitted: false,
      servers_in_room: await fed.joinedServers(db, roomId),
    };
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
    const profile = await users.getUser(this.deps.db, userId);
    const extra: Record<string, unknown> = {};
    if (profile?.displayname) extra.displayname = profile.displayname;
    if (profile?.avatar_url) extra.avatar_url = profile.avatar_url;
    if (reason !== undefined) extra.reason = reason;
    const made = await this.makeAndSign(userId, roomId, servers, 'join', extra);
    let res: JsonObject;
    try {
      res = await this.deps.client.request({
        destination: made.server,
        method: 'PUT',
        path: `/_matrix/federation/v2/send_join/${encodeURIComponent(roomId)}/${encodeURIComponent(made.event.event_id)}`,
        body: parseStrictJson(made.json) as JsonObject,
      });
    } catch (err) {
      throw remoteFailure(err, 'The resident server refused the join');
    }
    await this.persistJoin(made.server, roomId, made.version, { event: made.event, json: made.json }, res);
  }

  /** Verifies the send_join answer (state, auth chain, the join as the resident signed it) and persists the room. */
  private async persistJoin(server: string, roomId: string, version: RoomVersionId, own: VerifiedEvent, res: JsonObject): Promise<void> {
    const h = this.deps.events;
    const rawState = Array.isArray(res.state) ? res.state : [];
    const rawAuth = Array.isArray(res.auth_chain) ? res.auth_chain : [];
    const state = await h.verifyAll(rawState, version);
    const auth = await h.verifyAll(rawAuth, version);
    const create = state.find((s) => s.event.type === 'm.room.create' && s.event.state_key === '');
    if (!create || create.event.room_id !== roomId) throw new MatrixError(502, 'M_UNKNOWN', 'The resident server sent no valid state for the room');
    if (create.event.content.room_version !== version) {
      throw new MatrixError(502, 'M_UNKNOWN', 'The room version does not match the create event');
    }
    await fed.insertRemoteRoom(this.deps.db, roomId, version, create.event.sender);
    const stored = await h.storeOutliers(roomId, version, [...auth, ...state]);
    let join = own;
    if (res.event !== undefined) {
      try {
        const theirs = await h.verify(res.event, version);
        if (theirs.event.event_id === own.event.event_id) join = theirs;
      } catch {
        // keep ours
      }
    }
    const stateBefore: StateMap = new Map();
    const stateIds = state.map((s) => s.event.event_id);
    const { events: ruleEvents, rejected } = await loadRuleEvents(this.deps.db, stateIds, version);
    for (const id of stateIds) {
      const e = ruleEvents.get(id);
      if (!e || rejected.has(id) || stored.get(id)?.rejectedReason !== undefined || e.state_key === undefined) continue;
      stateBefore.set(stateKey(e.type, e.state_key), id);
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
    const stripped = Array.isArray(res.knock_room_state) ? res.knock_room_state : [];
    await storeOutOfBand(this.deps.events.store, this.deps.db, { event: made.event, json: made.json }, made.version, stripped);
  }
}

/** Stripped state (spec: "Stripped state") of a room we hold. */
export async function strippedState(db: Database, roomId: string): Promise<JsonObject[]> {
  const got = await events.currentStateEvents(db, roomId, STRIPPED_TYPES);
  return [...got.values()].map((s) => ({ type: s.event.type, state_key: s.event.state_key ?? '', sender: s.event.sender, content: s.event.content }) as JsonObject);
}
