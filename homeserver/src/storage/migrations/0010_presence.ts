import type { Migration } from './index.js';

/**
 * Presence (spec: "Presence"): one row per local user that ever had a presence state.
 * `stream_id` is the row's position in the presence stream (from `presence_stream`, taken under the
 * presence lock so positions commit in order); it changes only with what clients see (state,
 * status message, `currently_active`). `last_active_ts` and `sync_until_ts` may be bumped in place
 * between stream positions. `sync_until_ts`: the user counts as syncing until then (a long-poll's
 * longest wait, a WebSocket's ping window); the sweeper turns a user offline once it is over by the
 * grace period.
 */
export const presence: Migration = {
  version: 10,
  name: 'presence',
  up: [
    `create table presence (
      user_id text primary key,
      state text not null check (state in ('online', 'unavailable', 'offline')),
      status_msg text,
      last_active_ts bigint not null default 0,
      currently_active boolean not null default false,
      sync_until_ts bigint not null default 0,
      stream_id bigint not null
    )`,
    `create index presence_by_stream on presence (stream_id)`,
    // The sweeper and initial syncs only look at users who are not offline.
    `create index presence_not_offline on presence (user_id) where state <> 'offline'`,
    `create sequence presence_stream`,
  ],
};
