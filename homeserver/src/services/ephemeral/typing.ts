import { forbidden } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { TypingConfig } from '../../core/config.js';
import type { Database, Sql } from '../../storage/db.js';
import type { Notifier, StreamChange } from '../../bus/notifier.js';
import * as store from '../../storage/typing.js';
import * as stateStore from '../../storage/state.js';
import type { SyncStream, SyncStreamContext, SyncStreamPart } from '../sync/streams.js';
import { ignoredUsers } from './ignored.js';
import { WakeTimer } from '../../core/wake_timer.js';

type Json = Record<string, unknown>;

/** Key of the advisory lock typing writers hold until they commit ("typing"). */
const TYPING_LOCK = 0x747970696e67;
/** Notices one expiry transaction stops at most; the rest go in the next round. */
const EXPIRY_BATCH = 500;

/**
 * Typing notifications (spec: "Typing Notifications") and their /sync stream (`m.typing`, the full
 * list of the room's typists whenever it changes).
 *
 * Notices live in PostgreSQL so every homeserver process serves the same lists. A start or stop
 * takes a typing stream position under the typing lock; renewing a running notice only moves its
 * expiry (clients see no change). Expiry needs no client: each process keeps one timer for the
 * earliest expiry it knows of and stops due notices when it fires, and every `sweepIntervalMs` (and
 * at start) it stops any notice whose timer died with another process. Leaving the room stops the
 * member's notice (seen through the notifier's membership changes).
 */
export class TypingService implements SyncStream {
  readonly name = 'typing' as const;
  private readonly wake = new WakeTimer(() => this.expireNow());
  private interval?: NodeJS.Timeout;
  private expiring?: Promise<unknown>;
  private unlisten?: () => void;
  private closed = false;

  constructor(private readonly deps: { db: Database; notifier: Notifier; logger: Logger; config: TypingConfig }) {}

  /** Starts expiry (at once: notices left running by a process that stopped) and the leave watcher. */
  start(): void {
    if (this.interval) return;
    this.interval = setInterval(() => this.expireNow(), this.deps.config.sweepIntervalMs);
    this.interval.unref();
    this.unlisten = this.deps.notifier.listen('all', (c) => this.onChange(c));
    this.expireNow();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.interval);
    this.wake.stop();
    this.unlisten?.();
    await this.expiring;
  }

  /**
   * PUT /rooms/{roomId}/typing/{userId}: only for oneself, only in a room one is joined to.
   * `timeoutMs` is capped at the configured maximum (undefined: the default).
   */
  async set(requesterId: string, roomId: string, userId: string, typing: boolean, timeoutMs: number | undefined, now = Date.now()): Promise<void> {
    if (requesterId !== userId) throw forbidden("You cannot set another user's typing state");
    if ((await stateStore.getMembership(this.deps.db, roomId, userId)) !== 'join') throw forbidden('You are not in this room');
    const cfg = this.deps.config;
    const expiresTs = now + Math.min(Math.max(timeoutMs ?? cfg.defaultTimeoutMs, 0), cfg.maxTimeoutMs);
    const pos = await this.deps.db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(?)', [TYPING_LOCK]);
      const cur = await store.getForUpdate(tx, roomId, userId);
      const running = cur?.typing === true && cur.expiresTs > now;
      if (typing && running) {
        await store.extend(tx, roomId, userId, expiresTs);
        return undefined;
      }
      // Stopping what is not running changes nothing anyone sees (a due notice is the sweep's).
      if (!typing && !running && !cur?.typing) return undefined;
      const streamId = await store.nextStreamId(tx);
      await store.upsert(tx, { roomId, userId, typing, expiresTs: typing ? expiresTs : now, streamId });
      return streamId;
    });
    if (typing) this.wake.at(expiresTs);
    if (pos !== undefined) this.announce(pos, [roomId]);
  }

  /** Stops every notice due at `now`; returns how many. Safe in several processes at once. */
  async expire(now = Date.now()): Promise<number> {
    let total = 0;
    for (;;) {
      const stopped = await this.deps.db.transaction(async (tx) => {
        await tx.query('select pg_advisory_xact_lock(?)', [TYPING_LOCK]);
        return store.stopDue(tx, now, EXPIRY_BATCH);
      });
      if (stopped.length > 0) this.announce(Math.max(...stopped.map((r) => r.streamId)), [...new Set(stopped.map((r) => r.roomId))]);
      total += stopped.length;
      if (stopped.length < EXPIRY_BATCH) return total;
    }
  }

  /** Runs one expiry round (at most one at a time), then re-arms the timer for the next expiry. */
  private expireNow(): void {
    if (this.expiring || this.closed) return;
    this.expiring = (async () => {
      await this.expire();
      const next = await store.nextExpiry(this.deps.db);
      if (next !== undefined) this.wake.at(next);
    })()
      .catch((err: unknown) => this.deps.logger.warn({ err }, 'typing expiry failed'))
      .finally(() => (this.expiring = undefined));
  }


  /** A membership change committed: stop the notices of members who are no longer joined. */
  private onChange(c: StreamChange): void {
    if (c.position === 0 || c.userIds.length === 0 || c.roomIds.length === 0) return;
    this.stopLeavers(c.roomIds, c.userIds).catch((err: unknown) => this.deps.logger.warn({ err }, 'stopping typing after leave failed'));
  }

  private async stopLeavers(roomIds: string[], userIds: string[]): Promise<void> {
    const db = this.deps.db;
    for (const r of await store.running(db, roomIds, userIds)) {
      if ((await stateStore.getMembership(db, r.roomId, r.userId)) === 'join') continue;
      const pos = await db.transaction(async (tx) => {
        await tx.query('select pg_advisory_xact_lock(?)', [TYPING_LOCK]);
        const cur = await store.getForUpdate(tx, r.roomId, r.userId);
        if (!cur?.typing) return undefined;
        const streamId = await store.nextStreamId(tx);
        await store.upsert(tx, { ...cur, typing: false, expiresTs: Date.now(), streamId });
        return streamId;
      });
      if (pos !== undefined) this.announce(pos, [r.roomId]);
    }
  }

  /** Wakes the syncs of every member of the rooms. */
  private announce(pos: number, roomIds: string[]): void {
    this.deps.notifier.notify({ position: 0, streams: { typing: pos }, roomIds, userIds: [] });
  }

  // --- SyncStream ---

  position(sql: Sql): Promise<number> {
    return store.maxStreamId(sql);
  }

  /**
   * `m.typing` for each joined room whose list changed in (since, upTo], and for rooms new to the
   * client when someone types there. Ignored users are left out of the lists.
   */
  async collect(ctx: SyncStreamContext): Promise<SyncStreamPart> {
    const changed = ctx.since === undefined || ctx.since >= ctx.upTo ? [] : await store.roomsChangedBetween(ctx.sql, ctx.joinedRooms, ctx.since, ctx.upTo);
    const rooms = new Set([...changed, ...ctx.newRooms]);
    if (rooms.size === 0) return { nonEmpty: false };
    const lists = await store.typingIn(ctx.sql, [...rooms], Date.now());
    const ignored = lists.size > 0 ? await ignoredUsers(ctx.sql, ctx.userId) : new Set<string>();
    const ephemeral = new Map<string, Json[]>();
    for (const roomId of rooms) {
      const users = (lists.get(roomId) ?? []).filter((u) => !ignored.has(u));
      // A room new to the client needs an event only when someone types there.
      if (users.length === 0 && !changed.includes(roomId)) continue;
      ephemeral.set(roomId, [{ type: 'm.typing', content: { user_ids: users } }]);
    }
    return { ephemeral, nonEmpty: ephemeral.size > 0 };
  }
}
