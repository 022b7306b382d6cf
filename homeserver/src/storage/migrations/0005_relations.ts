import type { Migration } from './index.js';

/**
 * Event relationships (spec: "Forming relationships between events"): one row per event whose
 * content carries an `m.relates_to` with a `rel_type`, written with the event and deleted when the
 * relating event is redacted (room versions 10 and 11 strip `m.relates_to`).
 */
export const relations: Migration = {
  version: 5,
  name: 'relations',
  up: [
    `create table event_relations (
      event_id text primary key,
      relates_to_id text not null,
      rel_type text not null,
      room_id text not null,
      sender text not null,
      type text not null,
      aggregation_key text,
      stream_ordering bigint not null
    )`,
    `create index event_relations_parent on event_relations(relates_to_id, rel_type, stream_ordering)`,
    `create index event_relations_threads on event_relations(room_id, stream_ordering) where rel_type = 'm.thread'`,
  ],
};
