/**
 * Third-party invites between servers (server-server API "Third-party invites", third_party_invite.yaml):
 *  - `PUT /3pid/onbind` (from an identity server, unauthenticated): an address of one of our users was
 *    bound; each pending invite it carries is issued here when the inviter is ours, or exchanged with
 *    the inviter's server otherwise (only that server can sign an event sent by the inviter);
 *  - `PUT /exchange_third_party_invite/{roomId}` (caller and receiver): the inviter's server checks
 *    the `signed` object and issues the invite (ThirdPartyInviteService.issue), which reaches the
 *    invitee's server as an ordinary federated invite.
 * Nothing of onbind is trusted: an invite is issued only if the identity server's signature matches
 * the keys of the room's own `m.room.third_party_invite` event (and the auth rules check it again).
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { MatrixError, badJson, forbidden } from '../../core/errors.js';
import type { JsonObject } from '../../core/json.js';
import type { JsonObject as WireJson } from '../../core/canonical_json.js';
import { parseUserId } from '../../core/ids.js';
import * as users from '../../storage/users.js';
import * as events from '../../storage/events.js';
import { domainOf, isPlainObject } from '../rooms/power_levels.js';
import type { ThirdPartyInviteService } from '../rooms/third_party_invites.js';
import type { MembershipService } from '../rooms/membership.js';
import type { FederationClient } from './client.js';
import { roomAclAllows } from './acl.js';
import { remoteFailure } from './joins.js';

export interface OnBindOutcome {
  issued: number;
  failed: number;
}

export class FederatedThirdPartyInvites {
  constructor(
    private readonly deps: {
      db: Database;
      serverName: string;
      client: FederationClient;
      invites: ThirdPartyInviteService;
      membership: MembershipService;
      maxInvites: number;
      logger: Logger;
    },
  ) {}

  /** `PUT /3pid/onbind`. One invite that fails (forged, revoked, room gone) does not stop the others. */
  async onBind(body: JsonObject): Promise<OnBindOutcome> {
    for (const key of ['medium', 'address', 'mxid']) {
      if (typeof body[key] !== 'string') throw new MatrixError(400, 'M_MISSING_PARAM', `'${key}' must be a string`);
    }
    const mxid = body.mxid as string;
    if (!parseUserId(mxid) || domainOf(mxid) !== this.deps.serverName) throw new MatrixError(400, 'M_INVALID_PARAM', "'mxid' is not a user of this server");
    const user = await users.getUser(this.deps.db, mxid);
    if (!user || user.deactivated) throw new MatrixError(404, 'M_NOT_FOUND', 'Unknown user');
    const invites = body.invites;
    if (!Array.isArray(invites)) throw new MatrixError(400, 'M_MISSING_PARAM', "'invites' must be an array");
    if (invites.length > this.deps.maxInvites) throw new MatrixError(400, 'M_TOO_LARGE', `At most ${this.deps.maxInvites} invites per onbind`);
    const outcome: OnBindOutcome = { issued: 0, failed: 0 };
    for (const invite of invites) {
      try {
        if (!isPlainObject(invite)) throw badJson('an invite must be an object');
        const { room_id: roomId, sender, signed } = invite;
        if (typeof roomId !== 'string' || !roomId.startsWith('!')) throw badJson("an invite needs 'room_id'");
        if (typeof sender !== 'string' || !parseUserId(sender)) throw badJson("an invite needs 'sender'");
        if (!isPlainObject(signed) || signed.mxid !== mxid) throw badJson("an invite's 'signed' must name the bound user");
        if (invite.mxid !== undefined && invite.mxid !== mxid) throw badJson("an invite's 'mxid' must be the bound user");
        await this.issueOrExchange(sender, roomId, signed as JsonObject);
        outcome.issued++;
      } catch (err) {
        outcome.failed++;
        this.deps.logger.info({ mxid, roomId: isPlainObject(invite) ? invite.room_id : undefined, reason: (err as Error).message }, 'third-party invite from onbind not issued');
      }
    }
    return outcome;
  }

  /**
   * The invite `signed` earns (its `mxid` is one of our users): issued here when the inviter is ours,
   * else by the inviter's server. Used by onbind and by joins with `third_party_signed`.
   */
  async issueOrExchange(sender: string, roomId: string, signed: JsonObject): Promise<void> {
    const mxid = signed.mxid;
    if (typeof mxid !== 'string' || domainOf(mxid) !== this.deps.serverName) throw badJson("'signed.mxid' must be a user of this server");
    if (domainOf(sender) === this.deps.serverName) await this.deps.invites.issue(sender, roomId, signed);
    else await this.exchange(sender, roomId, mxid, signed);
  }

  /**
   * A join with `third_party_signed` (joining.yaml; `signed.mxid` is the joining user): first the
   * invite that proof earns, then an ordinary join (through the inviter's server if the room is not ours).
   */
  async joinWithProof(userId: string, idOrAlias: string, signed: JsonObject, reason: string | undefined, via: string[]): Promise<string> {
    const sender = signed.sender;
    if (typeof sender !== 'string' || !parseUserId(sender)) throw badJson("'third_party_signed.sender' must be a user id");
    if (signed.mxid !== userId) throw forbidden("'third_party_signed' names another user");
    const roomId = await this.deps.membership.resolveRoom(this.deps.db, idOrAlias);
    await this.issueOrExchange(sender, roomId, signed);
    return this.deps.membership.join(userId, roomId, reason, [...via, domainOf(sender)!]);
  }

  /** Caller side: ask the inviter's server to issue the invite (`PUT /exchange_third_party_invite`). */
  private async exchange(sender: string, roomId: string, mxid: string, signed: JsonObject): Promise<void> {
    const destination = domainOf(sender)!;
    // The display name lives in the room's m.room.third_party_invite; we have it only if we are in the room.
    const token = typeof signed.token === 'string' ? signed.token : '';
    const pending = (await events.currentStateEvents(this.deps.db, roomId, ['m.room.third_party_invite'], token)).get('m.room.third_party_invite')?.event;
    const displayName = pending && typeof pending.content.display_name === 'string' ? pending.content.display_name : undefined;
    // `signed` came in as JSON and goes out as JSON (the client's body type is the canonical-JSON one).
    const thirdPartyInvite = { ...(displayName !== undefined ? { display_name: displayName } : {}), signed: signed as WireJson };
    try {
      await this.deps.client.request({
        destination,
        method: 'PUT',
        path: `/_matrix/federation/v1/exchange_third_party_invite/${encodeURIComponent(roomId)}`,
        body: { type: 'm.room.member', room_id: roomId, sender, state_key: mxid, content: { membership: 'invite', third_party_invite: thirdPartyInvite } },
      });
    } catch (err) {
      throw remoteFailure(err, `${destination} refused the third-party invite exchange`);
    }
  }

  /** Receiver side: `origin` (the invitee's server) asks us, the inviter's server, to issue the invite. */
  async receiveExchange(origin: string, roomId: string, body: JsonObject): Promise<void> {
    if (body.type !== 'm.room.member') throw badJson("'type' must be m.room.member");
    if (body.room_id !== roomId) throw badJson("'room_id' does not match the path");
    const { sender, state_key: target, content } = body;
    if (typeof sender !== 'string' || !parseUserId(sender)) throw badJson("'sender' must be a user id");
    if (typeof target !== 'string' || !parseUserId(target)) throw badJson("'state_key' must be a user id");
    if (domainOf(target) !== origin) throw forbidden('The invitee is not on the requesting server');
    if (!isPlainObject(content) || content.membership !== 'invite') throw badJson("'content.membership' must be invite");
    const tpi = content.third_party_invite;
    const signed = isPlainObject(tpi) ? tpi.signed : undefined;
    if (!isPlainObject(signed)) throw badJson("'content.third_party_invite.signed' must be an object");
    if (signed.mxid !== target) throw forbidden("'signed.mxid' is not the invitee");
    if (!(await roomAclAllows(this.deps.db, roomId, origin))) throw forbidden("The room's server ACL refuses your server");
    await this.deps.invites.issue(sender, roomId, signed as JsonObject);
  }
}
