import { MatrixError, forbidden, invalidParam } from '../core/errors.js';
import { parseUserId } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import type { PresenceConfig } from '../core/config.js';
import type { Database, Sql } from '../storage/db.js';
import type { Notifier } from '../bus/notifier.js';
import * as store from '../storage/presence.js';
import type { PresenceRow, PresenceState } from '../storage/presence.js';
import * as stateStore from '../storage/state.js';
import { eventPasses } from './sync/filter.js';
import type { SyncPrepareRequest, SyncStream, SyncStreamContext, SyncStreamPart } from './sync/streams.js';

type Json = Record<string, unknown>;

/** Key of the advisory lock presence writers hold until they commit ("presnc"). */
const PRESENCE_LOCK = 0x707265736e63;
/** Key of the lock one sweeper holds (other processes skip that round) ("prswep"). */
const SWEEP_LOCK = 0x707273776570;
/** Users one sweep transaction changes at most; the rest wait for the next round. */
const SWEEP_BATCH = 500;

export const PRESENCE_STATES: readonly PresenceState[] = ['online', 'unavailable', 'offline'];

/** What GET /presence/{userId}/status answers and an m.presence event carries. */
export interface PresenceContent {
  presence: PresenceState;
  last_active_ago?: number;
  currently_active?: boolean;
  status_msg?: string | null;
}

export interface PresenceDeps {
  db: Database;
  notifier: Notifier;
  logger: Logger;
  config: PresenceConfig;
  /** How long one /sync request may count as syncing (the longest long-poll wait). */
  longPollWindowMs: number;
  /** How long a WebSocket sync counts as syncing after each ping (a missed ping drops the socket). */
  socketWindowMs: number;
}

/**
 * Presence (spec: "Presence"), and its /sync stream. Rules (Synapse's, simplified):
 * - PUT sets the state and status message; `online` also bumps the last active time.
 * - A sync (set_presence `online`, the default, or `unavailable`) marks the user as syncing, and brings
 *   an offline user to that state; it does not override `unavailable` (only activity does, as the spec
 *   says). `set_presence=offline` leaves presence alone.
 * - Activity (room actions: sends, receipts, joins...) bumps the last active time and sets `online`.
 * - A sweeper in every process (one at a time, under a lock) turns online users idle for `idleMs`
 *   unavailable, users whose syncing ended `syncGraceMs` ago offline, and clears `currently_active`
 *   `activeWindowMs` after the last activity.
 * Only what clients see (state, status message, currently_active) takes a stream position; the
 * last active time and the syncing window are bumped in place, and at most every so often per
 * process (so a busy client costs no write per request).
 */
export class PresenceService implements SyncStream {
  readonly name = 'presence' as const;
  /** When this process last extended each user's syncing window / recorded their activity. */
  private readonly syncWritten = new Map<string, number>();
  private readonly activeWritten = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;

  constructor(private readonly deps: PresenceDeps) {}

  get enabled(): boolean {
    return this.deps.config.enabled;
  }

  /** Starts the periodic sweeper (nothing when presence is disabled). */
  start(): void {
    if (!this.enabled || this.timer) return;
    this.timer = setInterval(() => {
      if (this.sweeping) return;
      this.sweeping = this.sweep()
        .catch((err: unknown) => this.deps.logger.warn({ err }, 'presence sweep failed'))
        .finally(() => (this.sweeping = undefined));
    }, this.deps.config.sweepIntervalMs);
    this.timer.unref();
  }

  /** Stops the sweeper and waits for a sweep in progress. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }

  /** GET: the user themself, or someone sharing a joined room with them. */
  async get(viewerId: string, userId: string): Promise<PresenceContent> {
    if (!parseUserId(userId)) throw invalidParam('Invalid user id');
    if (viewerId !== userId && !(await store.shareRoom(this.deps.db, viewerId, userId))) {
      throw forbidden('You are not allowed to see their presence');
    }
    if (!this.enabled) return { presence: 'offline' };
    const row = await store.get(this.deps.db, userId);
    return row ? this.content(row, Date.now()) : { presence: 'offline' };
  }

  /** PUT: only for oneself. `statusMsg` undefined clears the message (the body replaces the status). */
  async set(requesterId: string, userId: string, state: PresenceState, statusMsg: string | undefined, now = Date.now()): Promise<void> {
    if (requesterId !== userId) throw forbidden('You cannot set the presence state of another user');
    if (statusMsg !== undefined && [...statusMsg].length > this.deps.config.maxStatusMsgLength) {
      throw new MatrixError(400, 'M_INVALID_PARAM', `'status_msg' may be at most ${this.deps.config.maxStatusMsgLength} characters`);
    }
    if (!this.enabled) return;
    // An explicit state: the next sync or activity of this process re-evaluates from it at once.
    this.syncWritten.delete(userId);
    this.activeWritten.delete(userId);
    await this.write(userId, (cur) => {
      const online = state === 'online';
      return {
        ...cur,
        state,
        statusMsg: statusMsg ?? null,
        lastActiveTs: online ? now : cur.lastActiveTs,
        currentlyActive: online,
        // Setting presence counts as a sign of life: the user goes offline only once the grace runs out.
        syncUntilTs: Math.max(cur.syncUntilTs, now),
      };
    });
  }

  /** SyncStream.prepare: a /sync or WebSocket batch marks the user as syncing (unless set_presence=offline). */
  async prepare(req: SyncPrepareRequest): Promise<void> {
    if (req.setPresence === 'offline') return;
    // Syncing until this request's wait could end (capped by the server's longest long-poll).
    await this.syncing(req.userId, req.setPresence ?? 'online', Math.min(req.timeoutMs, this.deps.longPollWindowMs));
  }

  /** A WebSocket sync connection is alive (called on each ping): the user keeps counting as syncing. */
  socketAlive(userId: string): Promise<void> {
    return this.syncing(userId, 'online', this.deps.socketWindowMs);
  }

  /**
   * The user is syncing for up to `windowMs` from now. Writes at most every half grace period per
   * user and process: a user syncing continuously rewrites the window long before it runs out.
   */
  private async syncing(userId: string, wanted: 'online' | 'unavailable', windowMs: number, now = Date.now()): Promise<void> {
    if (!this.enabled) return;
    const last = this.syncWritten.get(userId);
    if (last !== undefined && now - last < this.deps.config.syncGraceMs / 2) return;
    this.syncWritten.set(userId, now);
    const until = now + windowMs;
    try {
      if (await store.extendSync(this.deps.db, userId, until)) return;
      await this.write(userId, (cur) => {
        const syncUntilTs = Math.max(cur.syncUntilTs, until);
        if (cur.state !== 'offline') return { ...cur, syncUntilTs };
        if (wanted === 'online') return { ...cur, state: 'online', lastActiveTs: now, currentlyActive: true, syncUntilTs };
        return { ...cur, state: 'unavailable', currentlyActive: false, syncUntilTs };
      });
    } catch (err) {
      // Presence must never fail a sync: log, and try again on the next one.
      this.syncWritten.delete(userId);
      this.deps.logger.warn({ err, user: userId }, 'could not record syncing presence');
    }
  }

  /**
   * A remote user's presence from their server's `m.presence` EDU (services/federation/edus.ts).
   * Not offline: they count as syncing for `remoteTimeoutMs` (their server re-announces changes;
   * without news they go offline then, like Synapse's federation timeout).
   */
  async setRemote(userId: string, c: PresenceContent, remoteTimeoutMs: number, now = Date.now()): Promise<void> {
    if (!this.enabled) return;
    await this.write(userId, (cur) => ({
      ...cur,
      state: c.presence,
      statusMsg: c.status_msg ?? null,
      lastActiveTs: c.last_active_ago !== undefined ? now - c.last_active_ago : cur.lastActiveTs,
      currentlyActive: c.currently_active === true,
      syncUntilTs: c.presence === 'offline' ? 0 : now + remoteTimeoutMs,
    }));
  }

  /** A pro-active action of the user (spec: "Last active ago"): online, active now. Never throws. */
  async activity(userId: string, now = Date.now()): Promise<void> {
    if (!this.enabled) return;
    const last = this.activeWritten.get(userId);
    if (last !== undefined && now - last < this.deps.config.activeWindowMs / 4) return;
    this.activeWritten.set(userId, now);
    try {
      if (await store.bumpActive(this.deps.db, userId, now, now)) return;
      await this.write(userId, (cur) => ({
        ...cur,
        state: 'online',
        lastActiveTs: now,
        currentlyActive: true,
        syncUntilTs: Math.max(cur.syncUntilTs, now),
      }));
    } catch (err) {
      this.activeWritten.delete(userId);
      this.deps.logger.warn({ err, user: userId }, 'could not record presence activity');
    }
  }

  /**
   * One sweep: the transitions due at `now`, each a new stream position. One process sweeps at a
   * time (the others skip the round); rows a writer holds are left for the next round. Returns how
   * many users changed.
   */
  async sweep(now = Date.now()): Promise<number> {
    const cfg = this.deps.config;
    for (const map of [this.syncWritten, this.activeWritten]) {
      for (const [user, ts] of map) if (now - ts > Math.max(cfg.syncGraceMs, cfg.activeWindowMs)) map.delete(user);
    }
    const changes = await this.deps.db.transaction(async (tx) => {
      const [got] = await tx.query<{ ok: boolean }>('select pg_try_advisory_xact_lock(?) as ok', [SWEEP_LOCK]);
      if (!got?.ok) return [];
      await tx.query('select pg_advisory_xact_lock(?)', [PRESENCE_LOCK]);
      const due = await store.dueForSweep(tx, now, cfg, SWEEP_BATCH);
      const out: Change[] = [];
      for (const row of due) {
        const next = { ...this.swept(row, now), streamId: await store.nextStreamId(tx) };
        await store.upsert(tx, next);
        out.push({ userId: row.userId, streamId: next.streamId, rooms: await stateStore.roomsWithMembership(tx, row.userId, 'join') });
      }
      return out;
    });
    for (const c of changes) this.announce(c);
    return changes.length;
  }

  /** The state a due row moves to (dueForSweep's conditions, in priority order). */
  private swept(row: PresenceRow, now: number): PresenceRow {
    const cfg = this.deps.config;
    if (row.syncUntilTs < now - cfg.syncGraceMs) return { ...row, state: 'offline', currentlyActive: false };
    if (row.state === 'online' && row.lastActiveTs < now - cfg.idleMs) return { ...row, state: 'unavailable', currentlyActive: false };
    return { ...row, currentlyActive: false };
  }

  /**
   * Changes the user's row to `fn(current)` under the presence lock. What clients see changed: a new
   * stream position and a wake-up of the syncs of everyone sharing a room with the user.
   */
  private async write(userId: string, fn: (cur: PresenceRow) => PresenceRow): Promise<void> {
    const change = await this.deps.db.transaction(async (tx): Promise<Change | null> => {
      await tx.query('select pg_advisory_xact_lock(?)', [PRESENCE_LOCK]);
      const cur = await store.getForUpdate(tx, userId);
      const next = fn(cur ?? blank(userId));
      const visible = !cur || cur.state !== next.state || cur.statusMsg !== next.statusMsg || cur.currentlyActive !== next.currentlyActive;
      const row = { ...next, streamId: visible ? await store.nextStreamId(tx) : cur.streamId };
      await store.upsert(tx, row);
      return visible ? { userId, streamId: row.streamId, rooms: await stateStore.roomsWithMembership(tx, userId, 'join') } : null;
    });
    if (change) this.announce(change);
  }

  private announce(c: Change): void {
    this.deps.notifier.notify({ position: 0, streams: { presence: c.streamId }, roomIds: c.rooms, userIds: [c.userId] });
  }

  private content(row: PresenceRow, now: number): PresenceContent {
    const c: PresenceContent = { presence: row.state };
    if (row.lastActiveTs > 0) c.last_active_ago = Math.max(0, now - row.lastActiveTs);
    if (row.state === 'online') c.currently_active = row.currentlyActive;
    if (row.statusMsg !== null) c.status_msg = row.statusMsg;
    return c;
  }

  // --- SyncStream ---

  position(sql: Sql): Promise<number> {
    return store.maxStreamId(sql);
  }

  /**
   * `presence.events`: for an initial sync the current presence (not offline) of the user and of
   * everyone sharing a joined room with them; for an incremental one the changes since, plus the
   * current presence of the members of rooms the client has just joined.
   */
  async collect(ctx: SyncStreamContext): Promise<SyncStreamPart> {
    if (!this.enabled) return { nonEmpty: false };
    const rows = new Map<string, PresenceRow>();
    if (ctx.since === undefined) {
      for (const r of await store.visibleRows(ctx.sql, ctx.userId, ctx.joinedRooms, undefined, ctx.upTo)) rows.set(r.userId, r);
    } else {
      if (ctx.since < ctx.upTo) for (const r of await store.visibleRows(ctx.sql, ctx.userId, ctx.joinedRooms, ctx.since, ctx.upTo)) rows.set(r.userId, r);
      if (ctx.newRooms.size > 0) {
        for (const r of await store.visibleRows(ctx.sql, ctx.userId, [...ctx.newRooms], undefined, ctx.upTo)) if (!rows.has(r.userId)) rows.set(r.userId, r);
      }
    }
    const now = Date.now();
    let events: Json[] = [...rows.values()]
      .filter((r) => eventPasses(ctx.filter.presence, { type: 'm.presence', sender: r.userId }))
      .map((r) => ({ type: 'm.presence', sender: r.userId, content: this.content(r, now) }));
    const limit = ctx.filter.presence.limit;
    if (limit !== undefined && events.length > limit) events = events.slice(events.length - limit);
    return { top: { presence: { events } }, nonEmpty: events.length > 0 };
  }
}

interface Change {
  userId: string;
  streamId: number;
  rooms: string[];
}

function blank(userId: string): PresenceRow {
  return { userId, state: 'offline', statusMsg: null, lastActiveTs: 0, currentlyActive: false, syncUntilTs: 0, streamId: 0 };
}
