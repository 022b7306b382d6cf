import type { Migration } from './index.js';

/**
 * Receipts (spec: "Receipts"): one row per (room, type, user, thread). `thread_id` is '' for an
 * unthreaded receipt, 'main' for the main timeline, else the thread root's event id.
 * `event_stream_ordering` is the receipted event's stream position (unread counts compare against
 * it). `stream_id` is the row's position in the receipts stream, taken from `receipts_stream` under
 * the receipts lock so positions commit in order. `data` is the receipt's JSON (`ts`, `thread_id`).
 *
 * Typing (spec: "Typing Notifications"): one row per (room, user) that has typed there. A start or
 * stop takes the next `typing_stream` position (under the typing lock); extending a notice that is
 * still running only moves `expires_ts`. Stopped rows stay (with `typing` false) so a sync can tell
 * the room's list changed; they are few (one per member who ever typed) and reused.
 */
export const receiptsTyping: Migration = {
  version: 9,
  name: 'receipts_typing',
  up: [
    `create table receipts (
      room_id text not null,
      receipt_type text not null,
      user_id text not null,
      thread_id text not null default '',
      event_id text not null,
      event_stream_ordering bigint not null,
      data text not null,
      stream_id bigint not null,
      primary key (room_id, receipt_type, user_id, thread_id)
    )`,
    `create index receipts_by_stream on receipts (stream_id)`,
    `create index receipts_user_room on receipts (user_id, room_id)`,
    `create sequence receipts_stream`,
    `create table typing (
      room_id text not null,
      user_id text not null,
      typing boolean not null,
      expires_ts bigint not null,
      stream_id bigint not null,
      primary key (room_id, user_id)
    )`,
    `create index typing_by_stream on typing (stream_id)`,
    `create index typing_expiring on typing (expires_ts) where typing`,
    `create sequence typing_stream`,
  ],
};
