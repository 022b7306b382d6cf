import { forbidden, invalidParam, notFound } from '../../core/errors.js';
import type { Database, Sql } from '../../storage/db.js';
import type { Notifier } from '../../bus/notifier.js';
import * as store from '../../storage/receipts.js';
import * as events from '../../storage/events.js';
import * as accountDataStore from '../../storage/account_data.js';
import * as stateStore from '../../storage/state.js';
import { relationOf } from '../../storage/relations.js';
import type { StoredEvent } from '../../storage/events.js';
import { filterVisible } from '../rooms/events_view.js';
import { RECURSION_DEPTH } from '../rooms/relations.js';
import type { AccountDataService } from '../account_data.js';
import type { SyncStream, SyncStreamContext, SyncStreamPart } from '../sync/streams.js';
import { ignoredUsers } from './ignored.js';

type Json = Record<string, unknown>;

/** Key of the advisory lock receipt writers hold until they commit ("receipt"). */
const RECEIPTS_LOCK = 0x72656365697074;

export const RECEIPT_TYPES = ['m.read', 'm.read.private', 'm.fully_read'] as const;
export type ReceiptType = (typeof RECEIPT_TYPES)[number];
/** The thread id of the main timeline in threaded receipts. */
export const MAIN_THREAD = 'main';

export interface ReceiptsDeps {
  db: Database;
  notifier: Notifier;
  accountData: AccountDataService;
}

/**
 * Receipts (spec: "Receipts") and the fully read marker (spec: "Read and unread markers"), and the
 * receipts /sync stream (`m.receipt`).
 *
 * Rules (as Synapse): the user must be joined and the event must be one of the room's events they
 * may see; a receipt never moves back (one for an event before the current one of the same type and
 * thread is accepted and ignored), nor does the fully read marker. `m.read.private` goes to its
 * owner only. A threaded receipt's event must belong to that thread (400 otherwise).
 */
export class ReceiptService implements SyncStream {
  readonly name = 'receipts' as const;

  constructor(private readonly deps: ReceiptsDeps) {}

  /** POST /rooms/{roomId}/receipt/{receiptType}/{eventId}. */
  async receipt(userId: string, roomId: string, receiptType: string, eventId: string, threadId: unknown, now = Date.now()): Promise<void> {
    if (!(RECEIPT_TYPES as readonly string[]).includes(receiptType)) throw invalidParam(`Receipt type must be one of ${RECEIPT_TYPES.join(', ')}`);
    if (threadId !== undefined) {
      if (typeof threadId !== 'string' || threadId === '') throw invalidParam("'thread_id' must be a non-empty string");
      if (receiptType === 'm.fully_read') throw invalidParam("'thread_id' is not compatible with m.fully_read");
    }
    const target = await this.target(userId, roomId, eventId);
    if (threadId !== undefined && !(await this.inThread(target, threadId as string))) {
      throw invalidParam(`Event ${eventId} is not related to thread ${threadId as string}`);
    }
    if (receiptType === 'm.fully_read') await this.setFullyRead(userId, roomId, target);
    else await this.write(userId, roomId, receiptType, target, (threadId as string | undefined) ?? '', now);
  }

  /** POST /rooms/{roomId}/read_markers: each present marker as its own request would set it. */
  async readMarkers(userId: string, roomId: string, body: Json, now = Date.now()): Promise<void> {
    for (const type of RECEIPT_TYPES) {
      const v = body[type];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string' || !v.startsWith('$')) throw invalidParam(`'${type}' must be an event id`);
    }
    // Check everything before writing anything: a bad id fails the request without half-applying it.
    const targets = new Map<ReceiptType, StoredEvent>();
    if ((await stateStore.getMembership(this.deps.db, roomId, userId)) !== 'join') throw forbidden('You are not in this room');
    for (const type of RECEIPT_TYPES) if (typeof body[type] === 'string') targets.set(type, await this.target(userId, roomId, body[type]));
    if (targets.size === 0) return;
    for (const [type, target] of targets) {
      if (type === 'm.fully_read') await this.setFullyRead(userId, roomId, target);
      else await this.write(userId, roomId, type, target, '', now);
    }
  }

  /** The event a receipt names: one of the room's events the (joined) user may see. */
  private async target(userId: string, roomId: string, eventId: string): Promise<StoredEvent> {
    const db = this.deps.db;
    if (!eventId.startsWith('$')) throw invalidParam('Invalid event id');
    if ((await stateStore.getMembership(db, roomId, userId)) !== 'join') throw forbidden('You are not in this room');
    const ev = await events.getEvent(db, eventId);
    if (!ev || ev.event.room_id !== roomId || ev.rejected || ev.streamOrdering === null) throw notFound('Event not found');
    if ((await filterVisible(db, userId, [ev])).length === 0) throw notFound('Event not found');
    return ev;
  }

  /**
   * Whether `ev` belongs to `threadId` (spec: "Threaded read receipts"). `main`: the event is in no
   * thread (following relations up to RECURSION_DEPTH hops). A thread root: the event is the root,
   * in its thread, or relates (by any relation) to the root.
   */
  private async inThread(ev: StoredEvent, threadId: string): Promise<boolean> {
    let id = ev.event.event_id;
    for (let hop = 0; hop < RECURSION_DEPTH; hop++) {
      if (id === threadId) return true;
      const rel = await relationOf(this.deps.db, id);
      if (!rel) break;
      if (rel.relType === 'm.thread') return rel.relatesToId === threadId;
      id = rel.relatesToId;
    }
    return threadId === MAIN_THREAD ? true : id === threadId;
  }

  /** Stores the receipt unless the user's current one of that type and thread is at or after it. */
  private async write(userId: string, roomId: string, receiptType: string, target: StoredEvent, threadId: string, now: number): Promise<void> {
    const pos = await this.deps.db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(?)', [RECEIPTS_LOCK]);
      const cur = await store.get(tx, roomId, receiptType, userId, threadId);
      if (cur && cur.eventStreamOrdering >= target.streamOrdering!) return undefined;
      const streamId = await store.nextStreamId(tx);
      const data: Json = { ts: now, ...(threadId !== '' ? { thread_id: threadId } : {}) };
      await store.upsert(tx, { roomId, receiptType, userId, threadId, eventId: target.event.event_id, eventStreamOrdering: target.streamOrdering!, data, streamId });
      return streamId;
    });
    if (pos === undefined) return;
    // A private receipt concerns its owner only: the other members have nothing to wake for.
    const isPrivate = receiptType === 'm.read.private';
    this.deps.notifier.notify({ position: 0, streams: { receipts: pos }, roomIds: isPrivate ? [] : [roomId], userIds: [userId] });
  }

  /**
   * The fully read marker (room account data `m.fully_read`): moves forward only. (Two requests of
   * one user racing may both pass the check; the marker then ends where the later write puts it.)
   */
  private async setFullyRead(userId: string, roomId: string, target: StoredEvent): Promise<void> {
    const current = await currentMarker(this.deps.db, userId, roomId);
    if (current !== undefined && current >= target.streamOrdering!) return;
    await this.deps.accountData.update(userId, roomId, 'm.fully_read', () => ({ event_id: target.event.event_id }));
  }

  // --- SyncStream ---

  position(sql: Sql): Promise<number> {
    return store.maxStreamId(sql);
  }

  /**
   * `m.receipt` per joined room: every receipt for rooms new to the client, else those changed in
   * (since, upTo]. Others' private receipts and ignored users' receipts are left out.
   */
  async collect(ctx: SyncStreamContext): Promise<SyncStreamPart> {
    const { sql, userId } = ctx;
    const rows = await store.inRooms(sql, [...ctx.newRooms], userId, ctx.upTo);
    // Nothing new in the stream: no query (this runs on every sync).
    if (ctx.since !== undefined && ctx.since < ctx.upTo) {
      const rest = ctx.joinedRooms.filter((r) => !ctx.newRooms.has(r));
      for (const r of await store.changedBetween(sql, rest, ctx.since, ctx.upTo)) {
        if (r.receiptType !== 'm.read.private' || r.userId === userId) rows.push(r);
      }
    }
    if (rows.length === 0) return { nonEmpty: false };
    const ignored = rows.some((r) => r.userId !== userId) ? await ignoredUsers(sql, userId) : new Set<string>();
    const byRoom = new Map<string, Json>();
    for (const r of rows) {
      if (ignored.has(r.userId)) continue;
      let content = byRoom.get(r.roomId);
      if (!content) byRoom.set(r.roomId, (content = {}));
      const forEvent = (content[r.eventId] ??= {}) as Json;
      const forType = (forEvent[r.receiptType] ??= {}) as Json;
      forType[r.userId] = r.data;
    }
    const ephemeral = new Map<string, Json[]>();
    for (const [roomId, content] of byRoom) ephemeral.set(roomId, [{ type: 'm.receipt', content }]);
    return { ephemeral, nonEmpty: ephemeral.size > 0 };
  }
}

/** The stream position of the event the user's fully read marker points at, if any. */
async function currentMarker(db: Database, userId: string, roomId: string): Promise<number | undefined> {
  const eventId = (await accountDataStore.get(db, userId, roomId, 'm.fully_read'))?.content.event_id;
  if (typeof eventId !== 'string') return undefined;
  return (await events.getEvent(db, eventId))?.streamOrdering ?? undefined;
}
