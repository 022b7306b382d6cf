/**
 * Which servers are in which room, cached per process. Loaded once from `current_state`, then
 * kept up to date from `membership_changes` (an indexed range read per refresh): a room whose
 * membership changed is re-read. A server that joins at position p gets the room's events after
 * p; one that leaves at p still gets those up to p (so a kick or ban reaches the kicked server).
 */
import { parseUserId } from '../../../core/ids.js';
import type { Sql } from '../../../storage/db.js';
import * as store from '../../../storage/federation_queue.js';

/** The positions between which a server gets the room's events: (since, until]. */
export interface HostWindow {
  since: number;
  until: number;
}

const serverOf = (userId: string) => parseUserId(userId)?.serverName;

export class RoomHosts {
  private readonly rooms = new Map<string, Map<string, HostWindow>>();
  private readonly roomsByHost = new Map<string, Set<string>>();
  private loaded = false;
  private cursor = 0;
  private refreshing?: Promise<void>;

  constructor(
    private readonly db: Sql,
    private readonly serverName: string,
  ) {}

  /** Brings the cache up to the newest committed membership change (concurrent callers share one read). */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    if (!this.loaded) {
      // The position first: a change committed meanwhile is re-read by the next refresh.
      this.cursor = await store.maxMembershipChange(this.db);
      const byRoom = new Map<string, Set<string>>();
      for (const m of await store.joinedMembers(this.db)) {
        const server = serverOf(m.userId);
        if (!server) continue;
        let s = byRoom.get(m.roomId);
        if (!s) byRoom.set(m.roomId, (s = new Set()));
        s.add(server);
      }
      for (const [roomId, servers] of byRoom) this.apply(roomId, servers, 0);
      this.loaded = true;
      return;
    }
    const changed = await store.membershipChangesSince(this.db, this.cursor);
    if (changed.length === 0) return;
    const members = await store.joinedMembers(this.db, changed.map((c) => c.roomId));
    const byRoom = new Map<string, Set<string>>(changed.map((c) => [c.roomId, new Set<string>()]));
    for (const m of members) {
      const server = serverOf(m.userId);
      if (server) byRoom.get(m.roomId)!.add(server);
    }
    for (const c of changed) {
      this.apply(c.roomId, byRoom.get(c.roomId)!, c.position);
      this.cursor = Math.max(this.cursor, c.position);
    }
  }

  private apply(roomId: string, servers: Set<string>, position: number): void {
    let hosts = this.rooms.get(roomId);
    if (!hosts) this.rooms.set(roomId, (hosts = new Map()));
    for (const [host, w] of hosts) {
      if (!servers.has(host) && w.until === Infinity) w.until = position;
    }
    for (const host of servers) {
      const w = hosts.get(host);
      if (!w || w.until !== Infinity) hosts.set(host, { since: w && w.until >= position ? w.since : position, until: Infinity });
      let rooms = this.roomsByHost.get(host);
      if (!rooms) this.roomsByHost.set(host, (rooms = new Set()));
      rooms.add(roomId);
    }
  }

  /** Other servers joined to the room now. */
  current(roomId: string): string[] {
    const out: string[] = [];
    for (const [host, w] of this.rooms.get(roomId) ?? []) if (w.until === Infinity && host !== this.serverName) out.push(host);
    return out;
  }

  /** Other servers that get the room's events at `position`. */
  at(roomId: string, position: number): string[] {
    const out: string[] = [];
    for (const [host, w] of this.rooms.get(roomId) ?? []) if (host !== this.serverName && position > w.since && position <= w.until) out.push(host);
    return out;
  }

  /** Rooms whose events after `after` may concern the destination (joined now, or left after `after`). */
  roomsOf(host: string, after: number): string[] {
    const out: string[] = [];
    for (const roomId of this.roomsByHost.get(host) ?? []) {
      const w = this.rooms.get(roomId)?.get(host);
      if (!w) continue;
      if (w.until > after) out.push(roomId);
      // A departure every destination cursor has passed is forgotten.
      else if (w.until !== Infinity && w.until <= after) this.forget(roomId, host);
    }
    return out;
  }

  /** Whether the destination gets an event of the room at `position`. */
  includes(roomId: string, host: string, position: number): boolean {
    const w = this.rooms.get(roomId)?.get(host);
    return w !== undefined && position > w.since && position <= w.until;
  }

  private forget(roomId: string, host: string): void {
    this.rooms.get(roomId)?.delete(host);
    this.roomsByHost.get(host)?.delete(roomId);
  }
}
