import { invalidParam } from '../../core/errors.js';
import type { PushConfig } from '../../core/config.js';
import type { Database, Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as syncStore from '../../storage/sync.js';
import * as store from '../../storage/push_actions.js';
import { toClientEvents } from '../rooms/events_view.js';
import type { Filter } from '../sync/filter.js';
import type { RoomDecorator } from '../sync/streams.js';

type Json = Record<string, unknown>;

export const DEFAULT_NOTIFICATIONS_LIMIT = 20;

/**
 * Unread notification counts in /sync (spec: "Receiving notifications") and GET /notifications
 * ("Listing Notifications"). Counts are the push actions after the user's read receipt position:
 * a new event's count commits with the event, a receipt brings the room into the next sync (as an
 * ephemeral event) and the count drops there.
 */
export class NotificationService implements RoomDecorator {
  constructor(private readonly deps: { db: Database; config: PushConfig }) {}

  /**
   * `unread_notifications` of every joined room of a response: the sum over threads, or with the
   * filter's `unread_thread_notifications` the main timeline's alone plus `unread_thread_notifications`
   * per thread root (threads without notifications omitted, the object always present so clients
   * can reset threads that were read).
   */
  async decorate(sql: Sql, userId: string, joinedRooms: Map<string, Json>, filter: Filter): Promise<void> {
    if (joinedRooms.size === 0) return;
    const threaded = filter.room.timeline.unreadThreadNotifications;
    const counts = await store.unreadCounts(sql, userId, [...joinedRooms.keys()]);
    for (const [roomId, room] of joinedRooms) {
      let n = 0;
      let h = 0;
      const threads: Json = {};
      for (const c of counts) {
        if (c.roomId !== roomId) continue;
        if (threaded && c.threadId !== 'main') {
          if (c.notifications > 0 || c.highlights > 0) threads[c.threadId] = { notification_count: c.notifications, highlight_count: c.highlights };
          continue;
        }
        n += c.notifications;
        h += c.highlights;
      }
      room.unread_notifications = { notification_count: n, highlight_count: h };
      if (threaded) room.unread_thread_notifications = threads;
    }
  }

  /** The user's unread notifications over all rooms (a push gateway's badge, `counts.unread`). */
  async totalUnread(sql: Sql, userId: string): Promise<number> {
    const rooms = await store.roomsWithActions(sql, userId);
    return (await store.unreadCounts(sql, userId, rooms)).reduce((sum, c) => sum + c.notifications, 0);
  }

  /** GET /notifications: newest first, paged by stream position. */
  async list(viewer: { userId: string; deviceId: string }, q: { from?: string; limit?: number; only?: string }): Promise<Json> {
    let before: number | undefined;
    if (q.from !== undefined) {
      if (!/^\d{1,16}$/.test(q.from)) throw invalidParam("'from' is not a token this server handed out");
      before = Number(q.from);
    }
    const limit = Math.min(Math.max(q.limit ?? DEFAULT_NOTIFICATIONS_LIMIT, 1), this.deps.config.notificationsMaxLimit);
    const sql = this.deps.db;
    const rows = await store.notificationsPage(sql, viewer.userId, { before, limit, onlyHighlight: q.only === 'highlight' });
    const stored = await events.getEvents(sql, rows.map((r) => r.eventId));
    const versions = await syncStore.roomVersions(sql, [...new Set(rows.map((r) => r.roomId))]);
    const present = rows.filter((r) => stored.has(r.eventId));
    const formatted = await toClientEvents(sql, present.map((r) => stored.get(r.eventId)!), versions, { viewer, omitRoomId: true });
    const out: Json = {
      notifications: present.map((r, i) => ({
        actions: JSON.parse(r.actions) as unknown,
        event: formatted[i],
        read: r.read,
        room_id: r.roomId,
        ts: r.ts,
      })),
    };
    if (rows.length === limit) out.next_token = String(rows[rows.length - 1]!.streamOrdering);
    return out;
  }
}
