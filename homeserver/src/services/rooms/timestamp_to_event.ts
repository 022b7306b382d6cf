import { notFound } from '../../core/errors.js';
import type { Database } from '../../storage/db.js';
import { roomEventsByTimestamp, type TimestampCursor } from '../../storage/event_timestamps.js';
import { ignoredUsers, withoutIgnored } from '../ephemeral/ignored.js';
import { filterVisible } from './events_view.js';
import type { RoomReader, Viewer } from './reader.js';

export interface TimestampLookupLimits {
  /** Events read per query while skipping ones the user may not see. */
  batch: number;
  /** Events examined at most per request; past that the answer is 404 (bounds the work of one call). */
  maxScanned: number;
}

export const DEFAULT_TIMESTAMP_LOOKUP_LIMITS: TimestampLookupLimits = { batch: 100, maxScanned: 2000 };

/**
 * `GET /v1/rooms/{roomId}/timestamp_to_event` (spec v1.6): the event closest to a timestamp in one
 * direction, among the events the user may read (the same rules as `/messages`: membership,
 * history visibility, the end of a former member's history, ignored senders).
 */
export class TimestampLookup {
  constructor(private readonly deps: { db: Database; reader: RoomReader; limits?: TimestampLookupLimits }) {}

  async closest(viewer: Viewer, roomId: string, ts: number, dir: 'f' | 'b'): Promise<{ event_id: string; origin_server_ts: number }> {
    const db = this.deps.db;
    const limits = this.deps.limits ?? DEFAULT_TIMESTAMP_LOOKUP_LIMITS;
    const access = await this.deps.reader.access(db, viewer.userId, roomId);
    const ignored = await ignoredUsers(db, viewer.userId);
    let after: TimestampCursor | undefined;
    for (let scanned = 0; scanned < limits.maxScanned; ) {
      const limit = Math.min(limits.batch, limits.maxScanned - scanned);
      const page = await roomEventsByTimestamp(db, roomId, { ts, dir, upTo: access.upTo, limit, after });
      if (page.length === 0) break;
      scanned += page.length;
      const readable = withoutIgnored(await filterVisible(db, viewer.userId, page), ignored);
      const found = readable[0];
      if (found) return { event_id: found.event.event_id, origin_server_ts: found.event.origin_server_ts };
      if (page.length < limit) break;
      const last = page[page.length - 1]!;
      after = { ts: last.event.origin_server_ts, stream: last.streamOrdering! };
    }
    throw notFound(`Unable to find event from ${ts} in ${dir === 'f' ? 'forward' : 'backward'} direction`);
  }
}
