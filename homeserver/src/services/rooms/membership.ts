import { MatrixError, forbidden, notFound } from '../../core/errors.js';
import { parseUserId } from '../../core/ids.js';
import type { JsonObject } from '../../core/json.js';
import type { Sql } from '../../storage/db.js';
import * as aliases from '../../storage/aliases.js';
import * as state from '../../storage/state.js';
import * as users from '../../storage/users.js';
import type { TimelineService } from './timeline.js';

export type MembershipAction = 'invite' | 'kick' | 'ban' | 'unban';

/** Joins, invites, leaves, kicks, bans and knocks: membership events whose legality the auth rules decide. */
export class MembershipService {
  constructor(private readonly deps: { timeline: TimelineService; serverName: string }) {}

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

  async join(userId: string, idOrAlias: string, reason?: string): Promise<string> {
    return this.deps.timeline.write(async (w) => {
      const roomId = await this.resolveRoom(w.tx, idOrAlias);
      await w.roomVersion(roomId).catch(() => {
        throw notFound('Unknown room (joining rooms on other servers needs federation)');
      });
      // Joining a room you are already in is a no-op that still answers with the room id.
      if ((await state.getMembership(w.tx, roomId, userId)) === 'join') return roomId;
      await w.append(roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content: await this.memberContent(w.tx, userId, 'join', reason) });
      await w.tx.query('delete from room_forgotten where user_id = ? and room_id = ?', [userId, roomId]);
      return roomId;
    });
  }

  async knock(userId: string, idOrAlias: string, reason?: string): Promise<string> {
    return this.deps.timeline.write(async (w) => {
      const roomId = await this.resolveRoom(w.tx, idOrAlias);
      await w.append(roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content: await this.memberContent(w.tx, userId, 'knock', reason) });
      return roomId;
    });
  }

  /** Leaving also rejects an invite or withdraws a knock. */
  async leave(userId: string, roomId: string, reason?: string): Promise<void> {
    await this.deps.timeline.write(async (w) => {
      await w.roomVersion(roomId);
      const current = await state.getMembership(w.tx, roomId, userId);
      if (current === undefined || current === 'leave' || current === 'ban') {
        throw forbidden('You are not in this room');
      }
      await w.append(roomId, { type: 'm.room.member', sender: userId, stateKey: userId, content: await this.memberContent(w.tx, userId, 'leave', reason) });
    });
  }

  /** invite, kick (→ leave), ban, unban (→ leave) of another user by `sender`. */
  async act(action: MembershipAction, sender: string, roomId: string, target: string, reason?: string): Promise<void> {
    if (!parseUserId(target)) throw new MatrixError(400, 'M_INVALID_PARAM', 'Not a valid user id');
    await this.deps.timeline.write(async (w) => {
      await w.roomVersion(roomId);
      const current = await state.getMembership(w.tx, roomId, target);
      if (action === 'unban' && current !== 'ban') throw forbidden('That user is not banned');
      if (action === 'kick' && (current === undefined || current === 'leave' || current === 'ban')) {
        throw forbidden('That user is not in the room');
      }
      if (action === 'invite' && current === 'join') throw forbidden('That user is already in the room');
      if (action === 'invite' && parseUserId(target)!.serverName === this.deps.serverName && !(await users.getUser(w.tx, target))) {
        throw notFound('Unknown user');
      }
      const membership = action === 'kick' || action === 'unban' ? 'leave' : action;
      const content: JsonObject = { membership };
      if (reason !== undefined) content.reason = reason;
      await w.append(roomId, { type: 'm.room.member', sender, stateKey: target, content });
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
