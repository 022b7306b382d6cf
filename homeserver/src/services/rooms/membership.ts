import { MatrixError, badJson, forbidden, invalidParam, notFound } from '../../core/errors.js';
import { parseUserId } from '../../core/ids.js';
import type { JsonObject } from '../../core/json.js';
import { encodeCanonicalJson } from '../../core/canonical_json.js';
import type { Database, Sql } from '../../storage/db.js';
import * as aliases from '../../storage/aliases.js';
import * as events from '../../storage/events.js';
import * as state from '../../storage/state.js';
import * as users from '../../storage/users.js';
import type { Appended, RoomWriter, TimelineService } from './timeline.js';
import { authoriseLocalJoin, UnableToGrantJoin } from './restricted.js';

export type MembershipAction = 'invite' | 'kick' | 'ban' | 'unban';

export const MEMBERSHIPS = ['join', 'invite', 'leave', 'ban', 'knock'];

/** Equal as canonical JSON; content canonical JSON cannot encode (floats) equals nothing and fails later as M_BAD_JSON. */
function sameJson(a: unknown, b: unknown): boolean {
  try {
    return encodeCanonicalJson(a) === encodeCanonicalJson(b);
  } catch {
    return false;
  }
}

/** Membership changes that go over federation (services/federation/remote_membership.ts); undefined/false: a local write. */
export interface RemoteMembership {
  join(userId: string, idOrAlias: string, reason: string | undefined, via: string[]): Promise<string | undefined>;
  knock(userId: string, idOrAlias: string, reason: string | undefined, via: string[]): Promise<string | undefined>;
  leave(userId: string, roomId: string, reason: string | undefined): Promise<boolean>;
  invite(sender: string, roomId: string, target: string, reason: string | undefined): Promise<boolean>;
  /** A join of a restricted room we are in but cannot vouch for: through a server in it that can. */
  joinThroughResident(userId: string, roomId: string, reason: string | undefined): Promise<void>;
}

/** Joins, invites, leaves, kicks, bans and knocks: membership events whose legality the auth rules decide. */
export class MembershipService {
  /** Set when federation is on (services/index.ts). */
  remote?: RemoteMembership;

  constructor(private readonly deps: { timeline: TimelineService; serverName: string; db: Database }) {}

  /** A room id, or the room an alias of this server points to. */
  async resolveRoom(sql: Sql, idOrAlias: string): Promise<string> {
    if (idOrAlias.startsWith('!')) return idOrAlias;
    if (idOrAlias.startsWith('#')) {
      const found = await aliases.getAlias(sql, idOrAlias);
      if (!found) throw notFound('Room alias not found');
      return found.room_id;
    }
    throw new MatrixError(400, 'M_INVALID_PARAM', 'Expected a room id or alias');
  }

  private async memberContent(sql: Sql, userId: string, membership: string, reason?: string): Promise<JsonObject> {
    const content: JsonObject = { membership };
    if (membership === 'join' || membership === 'knock') {
      const u = await users.getUser(sql, userId);
      if (u?.displayname) content.displayname = u.displayname;
      if (u?.avatar_url) content.avatar_url = u.avatar_url;
    }
    if (reason !== undefined) content.reason = reason;
    return content;
  }

  /**
   * Appends a membership event. A new invite, knock or join also ends a `forget`: the room comes
   * back to the user's syncs and history (spec: "Leaving rooms").
   */
  private async appendMember(w: RoomWriter, roomId: string, sender: string, target: string, content: JsonObject): Promise<Appended> {
    const appended = await w.append(roomId, { type: 'm.room.member', sender, stateKey: target, content });
    if (content.membership === 'join' || content.membership === 'invite' || content.membership === 'knock') {
      await w.tx.query('delete from room_forgotten where user_id = ? and room_id = ?', [target, roomId]);
    }
    return appended;
  }

  /** Only users that exist can be invited (users of other servers cannot be checked before federation). */
  private async requireInvitee(sql: Sql, target: string): Promise<void> {
    if (parseUserId(target)!.serverName === this.deps.serverName && !(await users.getUser(sql, target))) throw notFound('Unknown user');
  }

  async join(userId: string, idOrAlias: string, reason?: string, via: string[] = []): Promise<string> {
    const remote = await this.remote?.join(userId, idOrAlias, reason, via);
    if (remote) return remote;
    return this.localJoin(userId, idOrAlias, reason).catch(async (err: unknown) => {
      if (!(err instanceof UnableToGrantJoin) || !this.remote) throw err;
      await this.remote.joinThroughResident(userId, err.roomId, reason);
      return err.roomId;
    });
  }

  private async localJoin(userId: string, idOrAlias: string, reason?: string): Promise<string> {
    return this.deps.timeline.write(async (w) => {
      const roomId = await this.resolveRoom(w.tx, idOrAlias);
      await w.roomVersion(roomId).catch(() => {
        throw notFound('Unknown room (joining rooms on other servers needs federation)');
      });
      // Joining a room you are already in is a no-op that still answers with the room id.
      if ((await state.getMembership(w.tx, roomId, userId)) === 'join') return roomId;
      const content = await this.memberContent(w.tx, userId, 'join', reason);
      // Restricted rooms: one of our members who may invite vouches for the join (restricted.ts).
      await authoriseLocalJoin(w.tx, this.deps.serverName, roomId, await w.roomVersion(roomId), userId, content);
      await this.appendMember(w, roomId, userId, userId, content);
      return roomId;
    });
  }

  async knock(userId: string, idOrAlias: string, reason?: string, via: string[] = []): Promise<string> {
    const remote = await this.remote?.knock(userId, idOrAlias, reason, via);
    if (remote) return remote;
    return this.deps.timeline.write(async (w) => {
      const roomId = await this.resolveRoom(w.tx, idOrAlias);
      await this.appendMember(w, roomId, userId, userId, await this.memberContent(w.tx, userId, 'knock', reason));
      return roomId;
    });
  }

  /**
   * After a profile change: a new join event with the current global displayname and avatar in
   * every joined room whose member event differs. Each room is its own write, so one room that
   * refuses (e.g. power levels) does not hold up the others; returns the rooms that failed.
   */
  async refreshProfile(userId: string): Promise<string[]> {
    const failed: string[] = [];
    const joined = await state.roomsWithMembership(this.deps.db, userId, 'join');
    for (const roomId of joined) {
      try {
        await this.deps.timeline.write(async (w) => {
          if ((await state.getMembership(w.tx, roomId, userId)) !== 'join') return;
          const content = await this.memberContent(w.tx, userId, 'join');
          const currentId = await state.getCurrentStateEventId(w.tx, roomId, 'm.room.member', userId);
          const current = currentId ? (await events.getEvent(w.tx, currentId))?.event.content : undefined;
          if (current && current.displayname === content.displayname && current.avatar_url === content.avatar_url) return;
          await w.append(roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content });
        });
      } catch {
        failed.push(roomId);
      }
    }
    return failed;
  }

  /** Leaving also rejects an invite or withdraws a knock; leaving a room already left is a no-op. */
  async leave(userId: string, roomId: string, reason?: string): Promise<void> {
    if (await this.remote?.leave(userId, roomId, reason)) return;
    await this.deps.timeline.write(async (w) => {
      await w.roomVersion(roomId);
      const current = await state.getMembership(w.tx, roomId, userId);
      if (current === 'leave') return;
      if (current === undefined || current === 'ban') throw forbidden('You are not in this room');
      await this.appendMember(w, roomId, userId, userId, await this.memberContent(w.tx, userId, 'leave', reason));
    });
  }

  /** invite, kick (→ leave), ban, unban (→ leave) of another user by `sender`. */
  async act(action: MembershipAction, sender: string, roomId: string, target: string, reason?: string): Promise<void> {
    if (!parseUserId(target)) throw new MatrixError(400, 'M_INVALID_PARAM', 'Not a valid user id');
    if (action === 'invite' && (await this.remote?.invite(sender, roomId, target, reason))) return;
    await this.deps.timeline.write(async (w) => {
      await w.roomVersion(roomId);
      const current = await state.getMembership(w.tx, roomId, target);
      // M_BAD_STATE (spec: "Other error codes"), with Synapse's status.
      if (action === 'unban' && current !== 'ban') throw new MatrixError(403, 'M_BAD_STATE', 'That user is not banned');
      if (action === 'kick' && (current === undefined || current === 'leave' || current === 'ban')) {
        throw forbidden('That user is not in the room');
      }
      if (action === 'invite' && current === 'join') throw forbidden('That user is already in the room');
      // inviting.yaml: 200 when the user "was already invited"; no second invite event.
      if (action === 'invite' && current === 'invite') return;
      if (action === 'invite') await this.requireInvitee(w.tx, target);
      const membership = action === 'kick' || action === 'unban' ? 'leave' : action;
      const content: JsonObject = { membership };
      if (reason !== undefined) content.reason = reason;
      await this.appendMember(w, roomId, sender, target, content);
    });
  }

  /**
   * `PUT state/m.room.member/{userId}`: any membership change with the client's content (e.g. a
   * per-room display name); the auth rules decide what is allowed, as for the endpoints above.
   * Repeating the current event (same sender and content) returns it instead of a new event.
   */
  async setMember(sender: string, roomId: string, target: string, content: JsonObject): Promise<string> {
    if (!parseUserId(target)) throw invalidParam('The state key of m.room.member must be a user ID');
    if (typeof content.membership !== 'string' || !MEMBERSHIPS.includes(content.membership)) {
      throw badJson(`'membership' must be one of ${MEMBERSHIPS.join(', ')}`);
    }
    // A third_party_invite claim is judged by auth rule 4.4.1 (the identity server's signature, services/identity/signed.ts).
    return this.deps.timeline.write(async (w) => {
      await w.roomVersion(roomId);
      const current = (await events.currentStateEvents(w.tx, roomId, ['m.room.member'], target)).get('m.room.member');
      if (current && current.event.sender === sender && sameJson(current.event.content, content)) {
        return current.event.event_id;
      }
      if (content.membership === 'invite') await this.requireInvitee(w.tx, target);
      return (await this.appendMember(w, roomId, sender, target, content)).event.event_id;
    });
  }

  /** Forgetting needs the user to have left; their view of the room's history goes away. */
  async forget(userId: string, roomId: string, sql: Sql): Promise<void> {
    const m = await state.getMembership(sql, roomId, userId);
    if (m === 'join' || m === 'invite' || m === 'knock') throw new MatrixError(400, 'M_UNKNOWN', 'Leave the room before forgetting it');
    if (m === undefined) throw notFound('You were never in this room');
    await sql.query('insert into room_forgotten (user_id, room_id) values (?, ?) on conflict do nothing', [userId, roomId]);
  }
}
