/**
 * Space hierarchy between servers (spec: server-server API "Spaces", space_hierarchy.yaml; client
 * spaces module, "Server behaviour").
 *
 * Serving `GET /_matrix/federation/v1/hierarchy/{roomId}`: the room (which we must be in) and
 * those of its children we are in, as far as the asking server "could feasibly peek/join" them:
 * world-readable, public or knockable rooms, rooms where it has a joined or invited user, and
 * restricted rooms whose allow list names a room where it has a joined user. Children it may not
 * see are listed in `inaccessible_children`; children we are not in are left out. Restricted
 * rooms carry `allowed_room_ids` so the asking server can judge its own users.
 *
 * Asking (HierarchyService's `remote`): a room we are not in is asked of the servers in its `via`
 * in turn; answers (and 404s: "not for you") are cached per (room, suggested_only) for a few
 * minutes, and one client request makes at most `maxRequests` requests to other servers.
 */
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { notFound } from '../../core/errors.js';
import { isObject } from '../../core/json.js';
import { serverMemberships } from '../../storage/federation_lookups.js';
import { describeRoom, type HierarchyRoom, type RemoteHierarchyEntry, type RemoteHierarchySource, type RemoteSpaceAnswer, type RoomDescription } from '../rooms/hierarchy.js';
import { roomAclAllows } from './acl.js';
import { FederationError, type FederationClient } from './client.js';
import { parseServerName } from './server_name.js';

export interface FederationHierarchyLimits {
  /** How long another server's answer is reused. */
  cacheMs: number;
  cacheEntries: number;
  /** Requests to other servers one client request may make. */
  maxRequests: number;
  /** Most children of one space looked at when serving. */
  maxChildren: number;
}

/** A federation `/hierarchy` room entry: the client's entry plus `allowed_room_ids` for restricted rooms. */
type ServedRoom = HierarchyRoom & { allowed_room_ids?: string[] };

export class FederationHierarchy implements RemoteHierarchySource {
  /** Answers by (room, suggested_only); `null`: a server said it cannot show us the room (404). */
  private readonly cache = new Map<string, { answer: RemoteSpaceAnswer | null; expires: number }>();

  constructor(private readonly deps: { db: Database; serverName: string; client: FederationClient; logger: Logger; limits: FederationHierarchyLimits }) {}

  // --- serving ---

  async serve(origin: string, roomId: string, suggestedOnly: boolean): Promise<{ room: ServedRoom; children: ServedRoom[]; inaccessible_children: string[] }> {
    const db = this.deps.db;
    const root = await this.describeHeld(roomId, suggestedOnly);
    // The spec's 404: unknown to us, or not something the asking server could peek or join.
    if (!root || !(await this.serverMaySee(origin, roomId, root))) throw notFound('Room does not exist or your server cannot see it');
    const ids = root.children.slice(0, this.deps.limits.maxChildren).map((c) => c.state_key);
    const ours = await serverMemberships(db, ids, this.deps.serverName);
    const children: ServedRoom[] = [];
    const inaccessible: string[] = [];
    for (const id of ids) {
      // Rooms we are not in: we cannot tell anything current about them, so they are left out.
      if (!ours.get(id)?.has('join')) continue;
      const d = await describeRoom(db, id, suggestedOnly);
      if (!d) continue;
      if (await this.serverMaySee(origin, id, d)) children.push(served(d));
      else inaccessible.push(id);
    }
    return { room: served(root), children, inaccessible_children: inaccessible };
  }

  /** Our description of a room we are in (a user of ours joined); undefined otherwise. */
  private async describeHeld(roomId: string, suggestedOnly: boolean): Promise<RoomDescription | undefined> {
    if (!(await this.isJoined(roomId))) return undefined;
    return describeRoom(this.deps.db, roomId, suggestedOnly);
  }

  /** Whether `origin` could peek or join the room (see the header), and the room's ACL lets it in. */
  private async serverMaySee(origin: string, roomId: string, d: RoomDescription): Promise<boolean> {
    const db = this.deps.db;
    if (!(await roomAclAllows(db, roomId, origin))) return false;
    if (d.worldReadable || d.joinRule === 'public' || d.joinRule === 'knock' || d.joinRule === 'knock_restricted') return true;
    const members = await serverMemberships(db, [roomId, ...d.allowedRoomIds], origin);
    if (members.get(roomId) !== undefined) return true;
    return d.joinRule === 'restricted' && d.allowedRoomIds.some((id) => members.get(id)?.has('join'));
  }

  // --- asking (RemoteHierarchySource) ---

  budget(): { remaining: number } {
    return { remaining: this.deps.limits.maxRequests };
  }

  async isJoined(roomId: string): Promise<boolean> {
    return (await serverMemberships(this.deps.db, [roomId], this.deps.serverName)).get(roomId)?.has('join') ?? false;
  }

  async fetch(roomId: string, via: string[], suggestedOnly: boolean, budget: { remaining: number }): Promise<RemoteSpaceAnswer | undefined> {
    const key = `${roomId}\u0000${suggestedOnly}`;
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) return hit.answer ?? undefined;
    if (hit) this.cache.delete(key);
    const servers = [...new Set(via)].filter((s) => s !== this.deps.serverName && parseServerName(s) !== null);
    let refused = false;
    for (const server of servers) {
      if (budget.remaining <= 0) break;
      budget.remaining--;
      let res;
      try {
        res = await this.deps.client.request({
          destination: server,
          method: 'GET',
          path: `/_matrix/federation/v1/hierarchy/${encodeURIComponent(roomId)}`,
          query: { suggested_only: suggestedOnly ? 'true' : 'false' },
        });
      } catch (err) {
        // A 404 is an answer ("unknown, or not for you"): not asked again while cached.
        if (err instanceof FederationError && err.status === 404) refused = true;
        else this.deps.logger.debug({ err, server, roomId }, 'hierarchy: no answer');
        continue;
      }
      const answer = parseAnswer(res, roomId);
      if (!answer) {
        this.deps.logger.info({ server, roomId }, 'hierarchy: malformed answer');
        continue;
      }
      this.remember(key, answer, now);
      return answer;
    }
    if (refused) this.remember(key, null, now);
    return undefined;
  }

  private remember(key: string, answer: RemoteSpaceAnswer | null, now: number): void {
    if (this.deps.limits.cacheMs === 0) return;
    this.cache.delete(key);
    this.cache.set(key, { answer, expires: now + this.deps.limits.cacheMs });
    // Oldest first in a Map: drop from the front past the bound.
    while (this.cache.size > this.deps.limits.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
  }
}

function served(d: RoomDescription): ServedRoom {
  return d.allowedRoomIds.length > 0 ? { ...d.room, allowed_room_ids: d.allowedRoomIds } : d.room;
}

// --- checking another server's answer: only well-formed fields are kept ---

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function parseEntry(v: unknown): RemoteHierarchyEntry | undefined {
  if (!isObject(v) || typeof v.room_id !== 'string' || !v.room_id.startsWith('!')) return undefined;
  if (!Number.isSafeInteger(v.num_joined_members) || typeof v.world_readable !== 'boolean' || typeof v.guest_can_join !== 'boolean') return undefined;
  const children = (Array.isArray(v.children_state) ? v.children_state : []).filter(
    (c): c is HierarchyRoom['children_state'][number] =>
      isObject(c) && c.type === 'm.space.child' && typeof c.state_key === 'string' && isObject(c.content) && typeof c.sender === 'string' && Number.isSafeInteger(c.origin_server_ts),
  );
  const room: HierarchyRoom = {
    room_id: v.room_id,
    num_joined_members: v.num_joined_members as number,
    world_readable: v.world_readable,
    guest_can_join: v.guest_can_join,
    name: str(v.name),
    topic: str(v.topic),
    canonical_alias: str(v.canonical_alias),
    avatar_url: str(v.avatar_url),
    join_rule: str(v.join_rule),
    room_type: str(v.room_type),
    children_state: children.map((c) => ({ type: 'm.space.child', state_key: c.state_key, content: c.content, sender: c.sender, origin_server_ts: c.origin_server_ts })),
  };
  for (const k of Object.keys(room) as (keyof HierarchyRoom)[]) if (room[k] === undefined) delete room[k];
  const allowed = Array.isArray(v.allowed_room_ids) ? v.allowed_room_ids.filter((x): x is string => typeof x === 'string') : [];
  return { room, allowedRoomIds: allowed };
}

function parseAnswer(res: unknown, roomId: string): RemoteSpaceAnswer | undefined {
  if (!isObject(res)) return undefined;
  const room = parseEntry(res.room);
  if (!room || room.room.room_id !== roomId) return undefined;
  const children = new Map<string, RemoteHierarchyEntry>();
  for (const c of Array.isArray(res.children) ? res.children : []) {
    const e = parseEntry(c);
    if (e) children.set(e.room.room_id, e);
  }
  const inaccessible = new Set((Array.isArray(res.inaccessible_children) ? res.inaccessible_children : []).filter((x): x is string => typeof x === 'string'));
  return { room, children, inaccessible };
}
