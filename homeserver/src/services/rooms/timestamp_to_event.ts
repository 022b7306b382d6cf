import { notFound } from '../../core/errors.js';
import type { Database } from '../../storage/db.js';
import type { StoredEvent } from '../../storage/events.js';
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
 * Asks other servers when our own answer may be incomplete (services/federation/timestamp_to_event.ts):
 * resolves to an event now held that is closer to `ts` than `local`, or undefined.
 */
export interface RemoteTimestampLookup {
  closer(roomId: string, ts: number, dir: 'f' | 'b', local: StoredEvent | undefined): Promise<StoredEvent | undefined>;
}

/**
 * The first event from `ts` in direction `dir` (at most position `upTo`) that `keep` lets through,
 * reading `limits.batch` events at a time and at most `limits.maxScanned` in all.
 */
export async function closestByTimestamp(
  db: Database,
  roomId: string,
  q: { ts: number; dir: 'f' | 'b'; upTo: number },
  keep: (page: StoredEvent[]) => Promise<StoredEvent[]>,
  limits: TimestampLookupLimits = DEFAULT_TIMESTAMP_LOOKUP_LIMITS,
): Promise<StoredEvent | undefined> {
  let after: TimestampCursor | undefined;
  for (let scanned = 0; scanned < limits.maxScanned; ) {
    const limit = Math.min(limits.batch, limits.maxScanned - scanned);
    const page = await roomEventsByTimestamp(db, roomId, { ...q, limit, after });
    if (page.length === 0) break;
    scanned += page.length;
    const found = (await keep(page))[0];
    if (found) return found;
    if (page.length < limit) break;
    const last = page[page.length - 1]!;
    after = { ts: last.event.origin_server_ts, stream: last.streamOrdering! };
  }
  return undefined;
}

/**
 * `GET /v1/rooms/{roomId}/timestamp_to_event` (spec v1.6): the event closest to a timestamp in one
 * direction, among the events the user may read (the same rules as `/messages`: membership,
 * history visibility, the end of a former member's history, ignored senders). With `remote` set
 * (federation on), other servers are asked when our history may have a gap there.
 */
export class TimestampLookup {
  constructor(private readonly deps: { db: Database; reader: RoomReader; limits?: TimestampLookupLimits; remote?: RemoteTimestampLookup }) {}

  async closest(viewer: Viewer, roomId: string, ts: number, dir: 'f' | 'b'): Promise<{ event_id: string; origin_server_ts: number }> {
    const db = this.deps.db;
    const access = await this.deps.reader.access(db, viewer.userId, roomId);
    const ignored = await ignoredUsers(db, viewer.userId);
    const readable = async (page: StoredEvent[]) => withoutIgnored(await filterVisible(db, viewer.userId, page), ignored);
    let found = await closestByTimestamp(db, roomId, { ts, dir, upTo: access.upTo }, readable, this.deps.limits);
    const remote = await this.deps.remote?.closer(roomId, ts, dir, found);
    if (remote && remote.streamOrdering !== null && remote.streamOrdering <= access.upTo && (await readable([remote])).length > 0) found = remote;
    if (found) return { event_id: found.event.event_id, origin_server_ts: found.event.origin_server_ts };
    throw notFound(`Unable to find event from ${ts} in ${dir === 'f' ? 'forward' : 'backward'} direction`);
  }
}
