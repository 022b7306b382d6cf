import type { Database, Sql } from '../../storage/db.js';
import type { Notifier } from '../../bus/notifier.js';
import * as store from '../../storage/device_lists.js';
import type { SyncPrepareRequest, SyncStream, SyncStreamContext, SyncStreamPart } from '../sync/streams.js';

/** Key of the advisory lock device-lists writers hold until they commit ("devlst"). */
const DEVICE_LIST_LOCK = 0x6465766c7374;

export interface DeviceListDelta {
  changed: string[];
  left: string[];
}

/**
 * Device-list tracking (spec: "Tracking the device list for a user"). The stream holds a row when a
 * user's devices or cross-signing keys change, and a copy of every join/leave/ban: a client must
 * re-fetch the keys of users who changed or who newly share a room with it (`changed`), and may
 * stop tracking those it no longer shares any room with (`left`). Membership changes are copied
 * from `membership_changes` by the reads (each sync's prepare step and /keys/changes), so the
 * room write path needs no hook; a change copied after a sync's snapshot shows in the next one.
 */
export class DeviceListService {
  constructor(private readonly deps: { db: Database; notifier: Notifier }) {}

  /**
   * Records that these users' devices or keys changed, inside the caller's transaction (which then
   * holds the device-lists lock until it commits). Call `notify` with the result after the commit.
   */
  async record(tx: Sql, changes: { userId: string; visibleTo?: string }[]): Promise<number> {
    if (changes.length === 0) return 0;
    await tx.query('select pg_advisory_xact_lock(?)', [DEVICE_LIST_LOCK]);
    return store.appendChanges(tx, changes);
  }

  /** Wakes the syncs that may see the recorded changes: those of the users' rooms' members. */
  async notify(position: number, changes: { userId: string; visibleTo?: string }[]): Promise<void> {
    if (position === 0) return;
    const roomIds = new Set<string>();
    const userIds = new Set<string>();
    for (const c of changes) {
      if (c.visibleTo !== undefined) {
        userIds.add(c.visibleTo);
        continue;
      }
      userIds.add(c.userId);
      for (const r of await store.joinedRooms(this.deps.db, c.userId)) roomIds.add(r);
    }
    this.deps.notifier.notify({ position: 0, streams: { deviceLists: position }, roomIds: [...roomIds], userIds: [...userIds] });
  }

  /** Records and announces one change of the user's devices in its own transaction. */
  async changed(userId: string): Promise<void> {
    const position = await this.deps.db.transaction((tx) => this.record(tx, [{ userId }]));
    await this.notify(position, [{ userId }]);
  }

  /** Copies membership changes not yet in the stream (cheap when there are none). */
  async catchUp(): Promise<void> {
    if (!(await store.membershipsBehind(this.deps.db))) return;
    await this.deps.db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(?)', [DEVICE_LIST_LOCK]);
      await store.copyMembershipChanges(tx);
    });
  }

  position(sql: Sql): Promise<number> {
    return store.maxStreamId(sql);
  }

  /** Who `userId` should re-fetch keys of (`changed`) or stop tracking (`left`) for stream positions (after, upTo]. */
  async delta(sql: Sql, userId: string, after: number, upTo: number): Promise<DeviceListDelta> {
    const rows = await store.changesBetween(sql, after, upTo);
    if (rows.length === 0) return { changed: [], left: [] };
    const shared = await store.usersSharingRooms(sql, userId);
    const myRooms = new Set(await store.joinedRooms(sql, userId));
    const changed = new Set<string>();
    const leaving = new Set<string>();
    const joinedByMe: string[] = [];
    const leftByMe: string[] = [];
    for (const r of rows) {
      if (r.roomId === null) {
        if (r.visibleTo !== null ? r.visibleTo === userId : r.userId === userId || shared.has(r.userId)) changed.add(r.userId);
      } else if (r.userId === userId) {
        (r.membership === 'join' ? joinedByMe : leftByMe).push(r.roomId);
      } else if (myRooms.has(r.roomId)) {
        (r.membership === 'join' ? changed : leaving).add(r.userId);
      }
    }
    for (const u of await store.joinedMembers(sql, joinedByMe)) changed.add(u);
    for (const u of await store.joinedMembers(sql, leftByMe)) leaving.add(u);
    const left = [...leaving].filter((u) => u !== userId && !shared.has(u)).sort();
    for (const u of left) changed.delete(u);
    // Own device changes concern the user's other devices; membership alone never lists oneself.
    const ownDevices = rows.some((r) => r.roomId === null && r.userId === userId && r.visibleTo === null);
    if (!ownDevices) changed.delete(userId);
    return { changed: [...changed].filter((u) => u === userId || shared.has(u)).sort(), left };
  }

  /** GET /keys/changes: the delta between two sync tokens' device-lists positions (`upTo` capped at the newest). */
  async changes(userId: string, after: number, upTo: number): Promise<DeviceListDelta> {
    await this.catchUp();
    return this.deps.db.transaction(async (tx) => {
      await tx.query('set transaction isolation level repeatable read, read only');
      return this.delta(tx, userId, after, Math.min(upTo, await this.position(tx)));
    });
  }

  /** The `deviceLists` sync stream. */
  stream(): SyncStream {
    return new DeviceListsStream(this);
  }
}

class DeviceListsStream implements SyncStream {
  readonly name = 'deviceLists' as const;
  constructor(private readonly lists: DeviceListService) {}

  position(sql: Sql): Promise<number> {
    return this.lists.position(sql);
  }

  async prepare(_req: SyncPrepareRequest): Promise<void> {
    await this.lists.catchUp();
  }

  async collect(ctx: SyncStreamContext): Promise<SyncStreamPart> {
    // An initial sync has nothing to compare against: the client fetches the keys it needs.
    if (ctx.since === undefined) return { nonEmpty: false };
    if (ctx.since >= ctx.upTo) return { top: { device_lists: { changed: [], left: [] } }, nonEmpty: false };
    const d = await this.lists.delta(ctx.sql, ctx.userId, ctx.since, ctx.upTo);
    return { top: { device_lists: d }, nonEmpty: d.changed.length > 0 || d.left.length > 0 };
  }
}
