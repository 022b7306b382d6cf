/**
 * Which membership events a device already holds, so lazy-loading syncs can skip "redundant" ones
 * (spec: "Lazy-loading room members", `include_redundant_members: false`).
 *
 * Knowledge is only trusted along the chain of responses the client has proven it received: a
 * response computed from `since = X` that reaches position P is recorded as pending under P with
 * parent X, and becomes confirmed only when the device next syncs from P while its confirmed
 * position is still X. A retried request (same `since`), a lost response, a resumed WebSocket or a
 * request from another process all break the chain and the device starts again from nothing: the
 * cost of a mismatch is redundant member events, never missing ones.
 *
 * Per process and in memory: LRU over devices, each capped in entries.
 */

type RoomMembers = Map<string, string>; // user id → member event id
type Known = Map<string, RoomMembers>; // room id → members

interface DeviceEntry {
  /** Position the confirmed knowledge is valid at; -1 = nothing (before an initial sync). */
  base: number;
  confirmed: Known;
  size: number;
  pending: Map<number, Pending>;
}

interface Pending {
  parent: number;
  additions: [string, string, string][];
  resetRooms: string[];
}

const MAX_DEVICES = 5000;
const MAX_ENTRIES_PER_DEVICE = 50_000;
const MAX_PENDING = 8;

export class LazyMemberCache {
  private readonly devices = new Map<string, DeviceEntry>();

  constructor(
    private readonly maxDevices = MAX_DEVICES,
    private readonly maxEntries = MAX_ENTRIES_PER_DEVICE,
  ) {}

  /**
   * Starts a response for a device syncing from `since` (undefined: an initial sync). With
   * `skipKnown` false (`include_redundant_members`) nothing is skipped, but what is sent still counts.
   */
  begin(userId: string, deviceId: string, since: number | undefined, skipKnown = true): LazyMembersView {
    const key = `${userId}\u0000${deviceId}`;
    let e = this.devices.get(key);
    this.devices.delete(key); // re-inserted last: the map is oldest-first
    if (since === undefined) e = { base: -1, confirmed: new Map(), size: 0, pending: new Map() };
    else if (!e) e = { base: since, confirmed: new Map(), size: 0, pending: new Map() };
    else if (e.base !== since) {
      const p = e.pending.get(since);
      if (p && p.parent === e.base) e = this.advance(e, since, p);
      else e = { base: since, confirmed: new Map(), size: 0, pending: new Map() };
    }
    this.devices.set(key, e);
    while (this.devices.size > this.maxDevices) this.devices.delete(this.devices.keys().next().value!);
    return new LazyMembersView(this, key, e.base, skipKnown ? e.confirmed : new Map());
  }

  /** Confirmed knowledge plus a received response's additions; copy-on-write so running views keep theirs. */
  private advance(e: DeviceEntry, to: number, p: Pending): DeviceEntry {
    const confirmed: Known = new Map(e.confirmed);
    let size = e.size;
    const copied = new Set<string>();
    for (const roomId of p.resetRooms) {
      size -= confirmed.get(roomId)?.size ?? 0;
      confirmed.set(roomId, new Map());
      copied.add(roomId);
    }
    for (const [roomId, userId, eventId] of p.additions) {
      let room = confirmed.get(roomId);
      if (!copied.has(roomId)) {
        room = new Map(room ?? []);
        confirmed.set(roomId, room);
        copied.add(roomId);
      }
      if (!room!.has(userId)) size++;
      room!.set(userId, eventId);
    }
    for (const [roomId, room] of confirmed) if (room.size === 0) confirmed.delete(roomId);
    if (size > this.maxEntries) return { base: to, confirmed: new Map(), size: 0, pending: new Map() };
    return { base: to, confirmed, size, pending: new Map() };
  }

  /** Records what a response reaching `position` sent, if the device's chain has not moved meanwhile. */
  record(key: string, base: number, position: number, pending: Pending): void {
    const e = this.devices.get(key);
    if (!e || e.base !== base || position === base) return;
    e.pending.set(position, pending);
    while (e.pending.size > MAX_PENDING) e.pending.delete(e.pending.keys().next().value!);
  }

  get deviceCount(): number {
    return this.devices.size;
  }
}

/** One response's view: what the device is known to hold, and what this response sends. */
export class LazyMembersView {
  private readonly additions: [string, string, string][] = [];
  private readonly resetRooms = new Set<string>();

  constructor(
    private readonly cache: LazyMemberCache,
    private readonly key: string,
    private readonly base: number,
    private readonly confirmed: Known,
  ) {}

  /** The client is starting this room from scratch (joined it, or asked for its full state). */
  resetRoom(roomId: string): void {
    this.resetRooms.add(roomId);
  }

  /** Whether the device already holds exactly this member event. */
  holds(roomId: string, userId: string, eventId: string): boolean {
    if (this.resetRooms.has(roomId)) return false;
    return this.confirmed.get(roomId)?.get(userId) === eventId;
  }

  sent(roomId: string, userId: string, eventId: string): void {
    this.additions.push([roomId, userId, eventId]);
  }

  /** Call once the response reaching `position` is complete. */
  commit(position: number): void {
    this.cache.record(this.key, this.base, position, { parent: this.base, additions: this.additions, resetRooms: [...this.resetRooms] });
  }
}
