import type { Migration } from './index.js';

/**
 * `/rooms/{roomId}/timestamp_to_event` (spec v1.6) walks a room's events in `origin_server_ts`
 * order; without this index every lookup would read the whole room. Only events in the stream
 * (not outliers) are ever answered, hence the partial index.
 */
export const eventTimestamps: Migration = {
  version: 17,
  name: 'event_timestamps',
  up: [`create index events_room_ts on events(room_id, origin_server_ts, stream_ordering) where stream_ordering is not null`],
};
