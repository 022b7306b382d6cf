import type { Migration } from './index.js';

/**
 * Server-side search (spec: "Server Side Search") and content reports (report_content.yaml).
 * `event_search` holds one row per searchable event (m.room.message `content.body`, m.room.name
 * `content.name`, m.room.topic `content.topic`), written with the event and deleted when it is
 * redacted. The 'simple' configuration lowercases words without stemming, so any language works.
 */
export const search: Migration = {
  version: 7,
  name: 'search',
  up: [
    `create table event_search (
      event_id text primary key,
      room_id text not null,
      key text not null,
      type text not null,
      sender text not null,
      vector tsvector not null,
      stream_ordering bigint not null,
      origin_server_ts bigint not null
    )`,
    `create index event_search_vector on event_search using gin (vector)`,
    `create index event_search_room on event_search (room_id, stream_ordering)`,
    `create table content_reports (
      report_id bigserial primary key,
      reporter text not null,
      kind text not null,
      room_id text,
      event_id text,
      target_user_id text,
      reason text,
      received_ts bigint not null
    )`,
  ],
};
