import type { Sql } from './db.js';
import { E_COLUMNS, toStored, type EventRow, type StoredEvent } from './events.js';

/** Where a walk by timestamp stopped: the last (origin_server_ts, stream_ordering) it returned. */
export interface TimestampCursor {
  ts: number;
  stream: number;
}

/**
 * A room's events (in the stream, not rejected, at most `upTo`) ordered by `origin_server_ts`, ties
 * broken by stream position: `dir` 'f' from `ts` upwards, 'b' from `ts` downwards, continuing after
 * `after` when given (keyset paging over the `events_room_ts` index).
 */
export async function roomEventsByTimestamp(
  sql: Sql,
  roomId: string,
  opts: { ts: number; dir: 'f' | 'b'; upTo: number; limit: number; after?: TimestampCursor },
): Promise<StoredEvent[]> {
  const forward = opts.dir === 'f';
  const params: unknown[] = [roomId, opts.upTo, opts.ts];
  let where = `e.room_id = ? and e.stream_ordering is not null and e.stream_ordering <= ? and e.rejected_reason is null
    and e.origin_server_ts ${forward ? '>=' : '<='} ?`;
  if (opts.after) {
    where += ` and (e.origin_server_ts, e.stream_ordering) ${forward ? '>' : '<'} (?, ?)`;
    params.push(opts.after.ts, opts.after.stream);
  }
  params.push(opts.limit);
  const order = forward ? 'asc' : 'desc';
  const rows = await sql.query<EventRow>(
    `select ${E_COLUMNS} from events e where ${where} order by e.origin_server_ts ${order}, e.stream_ordering ${order} limit ?`,
    params,
  );
  return rows.map(toStored);
}
