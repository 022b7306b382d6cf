/**
 * Which servers are in which room, cached per process. Loaded once from `current_state` (with the
 * position it is at, in one statement), then kept up to date from `membership_changes`, the log
 * every process appends to under the stream lock (positions commit in order), so a change made by
 * any process is read once, in order, by an indexed range read per refresh. The cache counts the
 * joined members per server and room and applies each change as a delta (the row carries the
 * user's previous membership): a server is in the room from its first member's join, out of it at
 * its last member's departure — the room's members are never re-read. A server that joins at
 * position p gets the room's events after p; one that leaves at p still gets those up to p (so a
 * kick or ban reaches the kicked server).
 */
import { parseUserId } from '../../../core/ids.js';
import type { Sql } from '../../../storage/db.js';
import * as store from '../../../storage/room_hosts.js';

/** The positions between which a server gets the room's events: (since, until]. */
export interface HostWindow {
  since: number;
  until: number;
}

const serverOf = (userId: string) => parseUserId(userId)?.serverName;

export class RoomHosts {
  private readonly rooms = new Map<string, Map<string, HostWindow>>();
  private readonly roomsByHost = new Map<string, Set<string>>();
  /** Joined members per room and server (only servers with at least one). */
  private readonly counts = new Map<string, Map<string, number>>();
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
      const { position, members } = await store.joinedMembersAt(this.db);
      this.cursor = position;
      for (const m of members) this.count(m.roomId, m.userId, 1, 0);
      this.loaded = true;
      return;
    }
    for (const c of await store.membershipDeltasSince(this.db, this.cursor)) {
      const was = c.before === 'join';
      const now = c.membership === 'join';
      if (was !== now) this.count(c.roomId, c.userId, now ? 1 : -1, c.position);
      this.cursor = Math.max(this.cursor, c.position);
    }
  }

  /** One member more (or fewer) of the user's server in the room, at `position`. */
  private count(roomId: string, userId: string, delta: 1 | -1, position: number): void {
    const server = serverOf(userId);
    if (!server) return;
    let perServer = this.counts.get(roomId);
    if (!perServer) this.counts.set(roomId, (perServer = new Map()));
    const n = (perServer.get(server) ?? 0) + delta;
    if (n > 0) {
      perServer.set(server, n);
      if (n === 1 && delta === 1) this.join(roomId, server, position);
      return;
    }
    perServer.delete(server);
    if (perServer.size === 0) this.counts.delete(roomId);
    this.leave(roomId, server, position);
  }

  /** The server's first member joined at `position`. */
  private join(roomId: string, host: string, position: number): void {
    let hosts = this.rooms.get(roomId);
    if (!hosts) this.rooms.set(roomId, (hosts = new Map()));
    const w = hosts.get(host);
    if (!w || w.until !== Infinity) hosts.set(host, { since: w && w.until >= position ? w.since : position, until: Infinity });
    let rooms = this.roomsByHost.get(host);
    if (!rooms) this.roomsByHost.set(host, (rooms = new Set()));
    rooms.add(roomId);
  }

  /** The server's last member left at `position`. */
  private leave(roomId: string, host: string, position: number): void {
    const w = this.rooms.get(roomId)?.get(host);
    if (w && w.until === Infinity) w.until = position;
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
