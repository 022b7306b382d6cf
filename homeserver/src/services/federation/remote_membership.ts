/**
 * Routes membership changes about rooms this server is not in (or users of other servers) over
 * federation: MembershipService calls these hooks first and does the local write only when they
 * answer "not mine" (undefined / false). `joinThroughResident` is its fallback for restricted
 * rooms we are in but cannot vouch for.
 */
import type { Database } from '../../storage/db.js';
import { notFound } from '../../core/errors.js';
import * as stateStore from '../../storage/state.js';
import * as aliases from '../../storage/aliases.js';
import * as events from '../../storage/events.js';
import * as fed from '../../storage/federated_events.js';
import { domainOf } from '../rooms/power_levels.js';
import { parseRoomAlias } from '../rooms/directory.js';
import type { RemoteMembership } from '../rooms/membership.js';
import type { RemoteQueries } from './remote_queries.js';
import { isResident } from './membership_templates.js';
import { UnableToGrantJoin } from '../rooms/restricted.js';
import type { JoinService } from './joins.js';
import type { InviteService } from './invites.js';

export class FederatedMembership implements RemoteMembership {
  constructor(private readonly deps: { db: Database; serverName: string; queries: RemoteQueries; joins: JoinService; invites: InviteService }) {}

  /** The room and the servers to ask, when the room is not one we hold. */
  private async remoteTarget(idOrAlias: string, via: string[]): Promise<{ roomId: string; servers: string[] } | undefined> {
    let roomId = idOrAlias;
    let servers = [...via];
    if (idOrAlias.startsWith('#')) {
      const parsed = parseRoomAlias(idOrAlias);
      if (!parsed) return undefined;
      if (parsed.serverName === this.deps.serverName) {
        const local = await aliases.getAlias(this.deps.db, idOrAlias);
        if (!local) return undefined;
        roomId = local.room_id;
      } else {
        const r = await this.deps.queries.resolveAlias(idOrAlias);
        roomId = r.room_id;
        servers = [...servers, ...r.servers, parsed.serverName];
      }
    }
    if (!roomId.startsWith('!') || (await isResident(this.deps.db, roomId))) return undefined;
    // The room id's server may still be in the room (the inviter's is added by the callers).
    const extra: string[] = [];
    const domain = roomId.includes(':') ? roomId.slice(roomId.indexOf(':') + 1) : undefined;
    if (domain) extra.push(domain);
    return { roomId, servers: [...new Set([...servers, ...extra])] };
  }

  private async inviterServers(roomId: string, userId: string): Promise<string[]> {
    const id = await stateStore.getCurrentStateEventId(this.deps.db, roomId, 'm.room.member', userId);
    const ev = id ? await events.getEvent(this.deps.db, id) : undefined;
    const d = ev ? domainOf(ev.event.sender) : undefined;
    return d && d !== this.deps.serverName ? [d] : [];
  }

  async join(userId: string, idOrAlias: string, reason: string | undefined, via: string[]): Promise<string | undefined> {
    const t = await this.remoteTarget(idOrAlias, via);
    if (!t) return undefined;
    await this.deps.joins.joinRemote(userId, t.roomId, [...new Set([...(await this.inviterServers(t.roomId, userId)), ...t.servers])], reason);
    return t.roomId;
  }

  /**
   * A restricted room we are in, whose join rules admit the user (from our view), but none of our
   * members there may invite: like Synapse, join through a server in the room that can vouch — the
   * room id's server first, then the other servers with joined members (joins.ts).
   */
  async joinThroughResident(userId: string, roomId: string, reason: string | undefined): Promise<void> {
    const joined = (await fed.joinedServers(this.deps.db, roomId)).filter((s) => s !== this.deps.serverName).sort();
    const i = roomId.indexOf(':');
    const home = i > 0 ? roomId.slice(i + 1) : undefined;
    const servers = home !== undefined && joined.includes(home) ? [home, ...joined.filter((s) => s !== home)] : joined;
    // Nobody else to ask: the refusal stands as it was.
    if (servers.length === 0) throw new UnableToGrantJoin(roomId);
    await this.deps.joins.joinThroughResident(userId, roomId, servers, reason);
  }

  async knock(userId: string, idOrAlias: string, reason: string | undefined, via: string[]): Promise<string | undefined> {
    const t = await this.remoteTarget(idOrAlias, via);
    if (!t) return undefined;
    await this.deps.joins.knockRemote(userId, t.roomId, t.servers, reason);
    return t.roomId;
  }

  async leave(userId: string, roomId: string, reason: string | undefined): Promise<boolean> {
    if (await isResident(this.deps.db, roomId)) return false;
    const membership = await stateStore.getMembership(this.deps.db, roomId, userId);
    if (membership === undefined) throw notFound('You are not in this room');
    if (membership === 'leave') return true;
    const t = await this.remoteTarget(roomId, []);
    await this.deps.joins.leaveRemote(userId, roomId, [...new Set([...(await this.inviterServers(roomId, userId)), ...(t?.servers ?? [])])], reason);
    return true;
  }

  async invite(sender: string, roomId: string, target: string, reason: string | undefined): Promise<boolean> {
    if (domainOf(target) === this.deps.serverName) return false;
    await this.deps.invites.inviteRemote(sender, roomId, target, reason);
    return true;
  }
}
