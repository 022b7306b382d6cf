/**
 * Third-party invites (client-server API "Third-party invites"; server-server API "Third-party
 * invites"):
 *  - inviting by email: the identity server is asked whether the address is bound; if it is, an
 *    ordinary invite of that user, otherwise the identity server stores the invite (and mails the
 *    address) and the room gets an `m.room.third_party_invite` event whose state key is its token;
 *  - issuing: once the address is bound, the `signed` object the identity server hands out becomes
 *    the invitee's `m.room.member` invite (sent as the original inviter, so only the inviter's server
 *    can issue it: `/3pid/onbind` for our own inviters, `/exchange_third_party_invite` for others',
 *    services/federation/third_party_invites.ts). The issuing server checks the signature against the
 *    invite's keys and asks `key_validity_url` whether the key still holds, as the spec requires of
 *    the server already in the room; every other server only checks the signature (auth rule 4.4.1).
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { MatrixError, badJson, forbidden, notFound } from '../../core/errors.js';
import type { JsonObject } from '../../core/json.js';
import * as events from '../../storage/events.js';
import * as fed from '../../storage/federated_events.js';
import * as state from '../../storage/state.js';
import * as users from '../../storage/users.js';
import { isSupportedRoomVersion } from './event_format.js';
import { domainOf, isPlainObject, parsePowerLevels, userPowerLevel } from './power_levels.js';
import type { RoomEvent } from './pdu.js';
import type { TimelineService } from './timeline.js';
import type { MembershipService } from './membership.js';
import type { IdentityClient, StoreInviteRequest } from '../identity/client.js';
import { invitePublicKeys, signingPublicKey } from '../identity/signed.js';

/** One third-party identifier to invite (invite_3pid.yaml). */
export interface ThreepidInvite {
  idServer: string;
  idAccessToken: string;
  medium: string;
  address: string;
}

/** What store-invite needs to know about the room (taken from its state, or from createRoom's request). */
export interface InviteRoomSummary {
  roomId: string;
  alias?: string;
  name?: string;
  avatarUrl?: string;
  joinRule?: string;
  roomType?: string;
}

/** A new room's share of invite_3pid: users to invite directly and `m.room.third_party_invite` events. */
export interface PreparedThreepidInvites {
  userIds: string[];
  events: { stateKey: string; content: JsonObject }[];
}

/** Sends an invite with the given content to a user of another server (services/federation/invites.ts). */
export type RemoteInviter = (sender: string, roomId: string, target: string, content: JsonObject) => Promise<void>;

const THIRD_PARTY_INVITE = 'm.room.third_party_invite';

export class ThirdPartyInviteService {
  /** Set when federation is on (services/index.ts): issuing an invite for a user of another server. */
  remoteInvite?: RemoteInviter;

  constructor(
    private readonly deps: {
      db: Database;
      serverName: string;
      timeline: TimelineService;
      membership: MembershipService;
      identity: IdentityClient;
      logger: Logger;
    },
  ) {}

  /** `POST /rooms/{roomId}/invite` with `medium`/`address`. */
  async invite(sender: string, roomId: string, req: ThreepidInvite): Promise<void> {
    const { identity } = this.deps;
    identity.checkServer(req.idServer);
    // Refuse before the identity server records (and mails) an invite the room would refuse.
    await this.requireMayInvite(sender, roomId);
    const address = normalizeAddress(req.medium, req.address);
    const mxid = await identity.lookup(req.idServer, req.idAccessToken, req.medium, address);
    if (mxid !== undefined) {
      await this.deps.membership.act('invite', sender, roomId, mxid);
      return;
    }
    const stored = await this.store(sender, await this.summary(roomId), { ...req, address });
    await this.deps.timeline.write(async (w) => {
      await w.append(roomId, { type: THIRD_PARTY_INVITE, sender, stateKey: stored.stateKey, content: stored.content });
    });
  }

  /**
   * createRoom's `invite_3pid`, before the room is written: look-ups and stored invites, so the
   * room's events (direct invites and `m.room.third_party_invite`) go into the creation transaction
   * and an identity server that fails leaves no half-made room.
   */
  async prepareForNewRoom(creator: string, room: InviteRoomSummary, list: ThreepidInvite[]): Promise<PreparedThreepidInvites> {
    for (const req of list) this.deps.identity.checkServer(req.idServer);
    const out: PreparedThreepidInvites = { userIds: [], events: [] };
    for (const req of list) {
      const address = normalizeAddress(req.medium, req.address);
      const mxid = await this.deps.identity.lookup(req.idServer, req.idAccessToken, req.medium, address);
      if (mxid !== undefined) {
        if (mxid !== creator && !out.userIds.includes(mxid)) out.userIds.push(mxid);
        continue;
      }
      out.events.push(await this.store(creator, room, { ...req, address }));
    }
    return out;
  }

  /**
   * Issues the invite a bound third-party identifier earned: `signed` (`{mxid, token, signatures}`
   * from the identity server) becomes an `m.room.member` invite of `signed.mxid` sent by `sender`,
   * who must be ours and must have sent the room's `m.room.third_party_invite` for that token.
   */
  async issue(sender: string, roomId: string, signed: JsonObject): Promise<void> {
    const { mxid, token } = signed;
    if (typeof mxid !== 'string' || typeof token !== 'string') throw badJson("'signed' needs 'mxid' and 'token'");
    if (domainOf(sender) !== this.deps.serverName) throw forbidden('The inviter is not a user of this server');
    const db = this.deps.db;
    const version = await fed.roomExists(db, roomId);
    if (version === undefined || !isSupportedRoomVersion(version)) throw notFound('Unknown room');
    const pending = (await events.currentStateEvents(db, roomId, [THIRD_PARTY_INVITE], token)).get(THIRD_PARTY_INVITE)?.event;
    if (!pending) throw forbidden('No pending third-party invite in this room has that token');
    if (pending.sender !== sender) throw forbidden('The third-party invite was sent by someone else');
    const keys = invitePublicKeys(pending.content);
    const key = signingPublicKey(signed, keys.map((k) => k.publicKey));
    if (key === undefined) throw forbidden("The identity server's signature does not match the invite's keys");
    const validityUrl = keys.find((k) => k.publicKey === key)?.validityUrl;
    if (validityUrl !== undefined && !(await this.deps.identity.isKeyValid(validityUrl, key))) {
      throw forbidden("The identity server no longer vouches for the invite's key");
    }
    // Rule 4.4.1 does not look at the target's membership: do not turn a member back into an invitee.
    const current = await state.getMembership(db, roomId, mxid);
    if (current === 'join' || current === 'invite') return;
    if (current === 'ban') throw forbidden('That user is banned from the room');
    const displayName = typeof pending.content.display_name === 'string' ? pending.content.display_name : '';
    const content: JsonObject = { membership: 'invite', third_party_invite: { display_name: displayName, signed } };
    if (domainOf(mxid) === this.deps.serverName) {
      await this.deps.membership.setMember(sender, roomId, mxid, content);
      return;
    }
    if (!this.remoteInvite) throw forbidden('Inviting users of other servers needs federation');
    await this.remoteInvite(sender, roomId, mxid, content);
  }

  /** Joined, and at the invite level (auth rule for `m.room.third_party_invite`), checked on current state. */
  private async requireMayInvite(sender: string, roomId: string): Promise<void> {
    const db = this.deps.db;
    const version = await fed.roomExists(db, roomId);
    if (version === undefined || !isSupportedRoomVersion(version)) throw notFound('Unknown room');
    if ((await state.getMembership(db, roomId, sender)) !== 'join') throw forbidden('You are not in this room');
    const found = await events.currentStateEvents(db, roomId, ['m.room.power_levels', 'm.room.create']);
    const pl = found.get('m.room.power_levels')?.event;
    const level = userPowerLevel(sender, pl, found.get('m.room.create')?.event, version);
    if (level < parsePowerLevels(pl?.content).levels.invite) throw forbidden('You may not invite users to this room');
  }

  /** The room as store-invite describes it (name, alias, avatar, join rule, type). */
  private async summary(roomId: string): Promise<InviteRoomSummary> {
    const found = await events.currentStateEvents(this.deps.db, roomId, ['m.room.name', 'm.room.canonical_alias', 'm.room.avatar', 'm.room.join_rules', 'm.room.create']);
    const field = (type: string, key: string): string | undefined => {
      const v = (found.get(type)?.event as RoomEvent | undefined)?.content[key];
      return typeof v === 'string' ? v : undefined;
    };
    return {
      roomId,
      name: field('m.room.name', 'name'),
      alias: field('m.room.canonical_alias', 'alias'),
      avatarUrl: field('m.room.avatar', 'url'),
      joinRule: field('m.room.join_rules', 'join_rule'),
      roomType: field('m.room.create', 'type'),
    };
  }

  /** store-invite, and the `m.room.third_party_invite` content made of its answer. */
  private async store(sender: string, room: InviteRoomSummary, req: ThreepidInvite): Promise<{ stateKey: string; content: JsonObject }> {
    const profile = await users.getUser(this.deps.db, sender);
    const body: StoreInviteRequest = { medium: req.medium, address: req.address, room_id: room.roomId, sender };
    if (room.alias) body.room_alias = room.alias;
    if (room.avatarUrl) body.room_avatar_url = room.avatarUrl;
    if (room.joinRule) body.room_join_rules = room.joinRule;
    if (room.name) body.room_name = room.name;
    if (room.roomType) body.room_type = room.roomType;
    if (profile?.displayname) body.sender_display_name = profile.displayname;
    if (profile?.avatar_url) body.sender_avatar_url = profile.avatar_url;
    const stored = await this.deps.identity.storeInvite(req.idServer, req.idAccessToken, body);
    const first = stored.publicKeys[0]!;
    // `public_key`/`key_validity_url` (required, kept for older servers) repeat the first of `public_keys`.
    return {
      stateKey: stored.token,
      content: { display_name: stored.displayName, key_validity_url: first.key_validity_url, public_key: first.public_key, public_keys: stored.publicKeys },
    };
  }
}

/** Email addresses are compared in lower case (appendices, "3PID Types"), as this server stores them. */
function normalizeAddress(medium: string, address: string): string {
  return medium === 'email' ? address.trim().toLowerCase() : address;
}

/** `invite_3pid` entries / the 3PID form of `/invite`: the four required strings. */
export function parseThreepidInvite(v: unknown, where: string): ThreepidInvite {
  if (!isPlainObject(v)) throw badJson(`${where} must be an object`);
  const get = (key: string, max: number): string => {
    const s = v[key];
    if (s === undefined || s === null) throw new MatrixError(400, 'M_MISSING_PARAM', `${where} needs '${key}'`);
    if (typeof s !== 'string' || s === '' || s.length > max) throw new MatrixError(400, 'M_INVALID_PARAM', `${where}: '${key}' must be a non-empty string of at most ${max} characters`);
    return s;
  };
  const medium = get('medium', 16);
  if (medium !== 'email' && medium !== 'msisdn') throw new MatrixError(400, 'M_INVALID_PARAM', `${where}: 'medium' must be email or msisdn`);
  return { idServer: get('id_server', 255), idAccessToken: get('id_access_token', 1024), medium, address: get('address', 320) };
}
