import { notFound } from '../core/errors.js';
import type { Database } from '../storage/db.js';
import * as events from '../storage/events.js';
import * as stateStore from '../storage/state.js';
import * as store from '../storage/reports.js';
import { filterVisible } from './rooms/events_view.js';

/**
 * Content reports (report_content.yaml), stored in `content_reports` for administrators. Every
 * "not there" case answers the same 404, so a report is no oracle for rooms or events one cannot see.
 */
export class ReportService {
  constructor(private readonly deps: { db: Database }) {}

  /** The reporter must be joined to the room (spec v1.8) and able to see the event. */
  async reportEvent(reporter: string, roomId: string, eventId: string, reason: string | undefined): Promise<void> {
    const db = this.deps.db;
    const missing = () => notFound('The event was not found or you are not joined to the room');
    if ((await stateStore.getMembership(db, roomId, reporter)) !== 'join') throw missing();
    const stored = await events.getEvent(db, eventId);
    if (!stored || stored.event.room_id !== roomId || stored.rejected || stored.redactedBy || stored.streamOrdering === null) throw missing();
    if ((await filterVisible(db, reporter, [stored])).length === 0) throw missing();
    await store.insertReport(db, { reporter, kind: 'event', roomId, eventId, reason });
  }

  /** Anyone may report a room this server knows, joined or not (spec v1.13). */
  async reportRoom(reporter: string, roomId: string, reason: string): Promise<void> {
    const rows = await this.deps.db.query('select 1 from rooms where room_id = ?', [roomId]);
    if (rows.length === 0) throw notFound('The room was not found');
    await store.insertReport(this.deps.db, { reporter, kind: 'room', roomId, reason });
  }

  /** A local user (spec v1.14); remote users are unknown until federation. */
  async reportUser(reporter: string, userId: string, reason: string): Promise<void> {
    const rows = await this.deps.db.query('select 1 from users where user_id = ?', [userId]);
    if (rows.length === 0) throw notFound('The user was not found');
    await store.insertReport(this.deps.db, { reporter, kind: 'user', targetUserId: userId, reason });
  }
}
