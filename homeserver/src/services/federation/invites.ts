/**
 * Invites across servers (spec: server-server API "Inviting to a room", invites-v2):
 *  - inviting a remote user: build the invite on our room's extremities, have the invitee's server
 *    sign it (`PUT /v2/invite`), then persist the doubly signed event and wake the outbox;
 *  - being asked to sign: check the event, sign it, and record the invite for the local invitee as
 *    an out-of-band membership (the room is not ours: we hold only this event and the stripped
 *    state the inviter sent), so it shows in the invitee's /sync.
 */
import type { Database, Sql } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { MatrixError, badJson, forbidden } from '../../core/errors.js';
import { encodeCanonicalJson, parseStrictJson, type JsonObject, type JsonValue } from '../../core/canonical_json.js';
import * as events from '../../storage/events.js';
import * as stateStore from '../../storage/state.js';
import * as users from '../../storage/users.js';
import * as fed from '../../storage/federated_events.js';
import { domainOf } from '../rooms/power_levels.js';
import { eventIdFor, isSupportedRoomVersion, redact } from '../rooms/event_format.js';
import type { RoomVersionId } from '../rooms/pdu.js';
import type { ServerSigningKey } from '../rooms/signing_key.js';
import type { FederatedEventStore, VerifiedEvent } from '../rooms/federated_events.js';
import type { FederationClient } from './client.js';
import type { KeyRing } from './key_ring.js';
import type { FederationEventHandler } from './event_handler.js';
import type { FederationOutbox } from './seams.js';
import { buildTemplate, isResident } from './membership_templates.js';
import { remoteFailure } from './joins.js';
import { checkInviteeRoomState, roomStateForInvitee } from './stripped_state.js';

/**
 * Records a membership event of a room we are not in (a remote invite, our rejection of it, a
 * knock): the event gets a stream position (so the user's sync sees the membership change) but
 * stays an outlier — it is no part of any timeline we serve — and current state holds only it.
 * `stripped`: the invite/knock room state as checked for clients (stripped_state.ts), kept as is.
 */
export async function storeOutOfBand(store: FederatedEventStore, db: Database, v: VerifiedEvent, version: RoomVersionId, stripped: unknown[] | undefined): Promise<void> {
  const ev = v.event;
  await store.locked(async (tx: Sql, changes) => {
    if (await isResident(tx, ev.room_id)) return;
    await fed.insertRemoteRoom(tx, ev.room_id, version, ev.sender);
    const pos = await events.nextStreamOrdering(tx);
    await fed.upsertFederatedEvent(tx, { event: ev, json: v.json, streamOrdering: pos, stateAfter: null, replacesState: null, outlier: true, rejectedReason: null, softFailed: false });
    const membership = String(ev.content.membership);
    await stateStore.setCurrentState(tx, ev.room_id, 'm.room.member', ev.state_key!, ev.event_id, membership);
    await events.insertMembershipChange(tx, { streamOrdering: pos, roomId: ev.room_id, userId: ev.state_key!, membership, eventId: ev.event_id });
    if (stripped) await fed.putInviteState(tx, ev.room_id, ev.state_key!, ev.event_id, JSON.stringify(stripped));
    if (membership !== 'leave') await tx.query('delete from room_forgotten where user_id = ? and room_id = ?', [ev.state_key!, ev.room_id]);
    changes.users.add(ev.state_key!);
    changes.add(ev.room_id, pos);
  });
  void db;
}

export class InviteService {
  constructor(
    private readonly deps: {
      db: Database;
      serverName: string;
      client: FederationClient;
      keyRing: KeyRing;
      events: FederationEventHandler;
      signer: ServerSigningKey;
      outbox: () => FederationOutbox;
      logger: Logger;
    },
  ) {}

  /** A local user invites a user of another server into one of our rooms. */
  async inviteRemote(sender: string, roomId: string, target: string, reason?: string, extraContent: Record<string, unknown> = {}): Promise<void> {
    const db = this.deps.db;
    const current = await stateStore.getMembership(db, roomId, target);
    if (current === 'join') throw forbidden('That user is already in the room');
    if (current === 'invite') return;
    if (current === 'ban') throw forbidden('That user is banned from the room');
    const content: Record<string, unknown> = { ...extraContent, membership: 'invite' }; // extraContent: third_party_invite
    if (reason !== undefined) content.reason = reason;
    const t = await buildTemplate(db, roomId, { type: 'm.room.member', sender, stateKey: target, content });
    const built = this.deps.signer.build(t.pdu, t.version);
    const pdu = parseStrictJson(built.json) as JsonObject;
    const destination = domainOf(target)!;
    let res: JsonObject;
    try {
      res = await this.deps.client.request({
        destination,
        method: 'PUT',
        path: `/_matrix/federation/v2/invite/${encodeURIComponent(roomId)}/${encodeURIComponent(built.event.event_id)}`,
        body: { event: pdu, room_version: t.version, invite_room_state: (await roomStateForInvitee(db, roomId)) as JsonValue[] },
      });
    } catch (err) {
      const failure = remoteFailure(err, `${destination} refused the invite`);
      // Our own invite_room_state was refused: nothing the client could change (invites-v2.yaml: a 5xx).
      if (failure.errcode === 'M_MISSING_PARAM' || failure.errcode === 'M_INVALID_PARAM') throw new MatrixError(502, 'M_UNKNOWN', failure.message);
      throw failure;
    }
    const signed = res.event as JsonObject | undefined;
    if (!signed || typeof signed !== 'object' || eventIdFor(signed, t.version) !== built.event.event_id) throw new MatrixError(502, 'M_UNKNOWN', 'The invitee\'s server returned another event');
    const { unsigned: _u, ...withoutUnsigned } = signed;
    if (!(await this.deps.keyRing.verifySigned(redact(withoutUnsigned, t.version), destination, { atTs: built.event.origin_server_ts, allowOld: true }))) {
      throw new MatrixError(502, 'M_UNKNOWN', "The invitee's server did not sign the invite");
    }
    // Same event (same id), now with both signatures: that is the one to keep and send on.
    const event = { ...built.event, signatures: withoutUnsigned.signatures as Record<string, Record<string, string>> };
    const outcome = await this.deps.events.store.persist({ event, json: encodeCanonicalJson(withoutUnsigned), version: t.version, stateBefore: t.stateBefore, base: t.base });
    if (outcome !== 'timeline' && outcome !== 'duplicate') throw forbidden(`The invite could not be applied (${outcome})`);
    this.deps.outbox().wake();
  }

  /**
   * The room version of a v1 invite, which does not name it: the room's, if we know the room; else
   * the create event's in the invite's `invite_room_state`; else "1", as the spec says to assume
   * (a version this server does not support, so such an invite is refused).
   */
  async v1RoomVersion(roomId: string, event: JsonObject): Promise<string> {
    const known = await fed.roomExists(this.deps.db, roomId);
    if (known !== undefined) return known;
    const unsigned = event.unsigned as JsonObject | undefined;
    const stripped = typeof unsigned === 'object' && unsigned !== null && Array.isArray(unsigned.invite_room_state) ? unsigned.invite_room_state : [];
    for (const s of stripped) {
      const e = s as JsonObject;
      const content = typeof e === 'object' && e !== null ? (e.content as JsonObject | undefined) : undefined;
      if (e?.type === 'm.room.create' && typeof content?.room_version === 'string') return content.room_version;
    }
    return '1';
  }

  /** `PUT /v2/invite/{roomId}/{eventId}`: sign an invite of one of our users. */
  async receiveInvite(origin: string, roomId: string, eventId: string, body: JsonObject): Promise<JsonObject> {
    const version = body.room_version;
    if (!isSupportedRoomVersion(version)) {
      throw new MatrixError(400, 'M_INCOMPATIBLE_ROOM_VERSION', `Room version ${String(version)} is not supported`, { room_version: version ?? null });
    }
    const raw = body.event;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badJson("'event' must be an object");
    let v: VerifiedEvent & { redacted: boolean };
    try {
      v = await this.deps.events.verify(raw, version);
    } catch (err) {
      throw forbidden(`Invalid invite: ${(err as Error).message}`);
    }
    const ev = v.event;
    if (v.redacted) throw forbidden('Invalid invite: content hash mismatch');
    if (ev.event_id !== eventId || ev.room_id !== roomId) throw badJson('The event does not match the request');
    if (ev.type !== 'm.room.member' || ev.content.membership !== 'invite' || typeof ev.state_key !== 'string') throw badJson('Not an invite');
    if (domainOf(ev.state_key) !== this.deps.serverName) throw badJson('The invitee is not on this server');
    if (domainOf(ev.sender) !== origin) throw forbidden('The inviter is not on the requesting server');
    const invitee = await users.getUser(this.deps.db, ev.state_key);
    if (!invitee || invitee.deactivated) throw new MatrixError(404, 'M_NOT_FOUND', 'Unknown user');
    // Our signature over the event as the inviter built it (unsigned left out: it is no part of the event).
    const { unsigned, ...pdu } = raw as JsonObject;
    const signed = this.deps.signer.signEvent(pdu, version);
    const ours: VerifiedEvent = { event: { ...ev, signatures: signed.signatures }, json: encodeCanonicalJson(signed) };
    const roomState = Array.isArray(body.invite_room_state) ? body.invite_room_state : Array.isArray((unsigned as JsonObject | undefined)?.invite_room_state) ? ((unsigned as JsonObject).invite_room_state as unknown[]) : [];
    // Spec v1.16: the room state must be whole PDUs of this room, m.room.create included (stripped_state.ts).
    const checked = await checkInviteeRoomState((r, ver) => this.deps.events.verify(r, ver), roomId, version, roomState, 'invite_room_state');
    if (checked.problems.length > 0) this.deps.logger.warn({ origin, roomId, roomVersion: version, problems: checked.problems, refused: !!checked.refusal }, 'invite_room_state is not as spec v1.16 asks');
    if (checked.refusal) throw checked.refusal;
    // When we are in the room the event also comes through /send; otherwise this is all we will see.
    if (!(await isResident(this.deps.db, roomId))) await storeOutOfBand(this.deps.events.store, this.deps.db, ours, version, checked.kept);
    return { event: { ...signed, ...(unsigned !== undefined ? { unsigned } : {}) } as unknown as JsonObject };
  }
}
