import type { Migration } from './index.js';

/**
 * Push notifications (spec: "Push Notifications").
 *
 * `event_push_actions`: what a user's push rules decided for an event (written in the event's own
 * transaction), only for events that notify or highlight. `thread_id` is 'main' or the thread
 * root's event id (unread counts are partitioned per thread). `actions` is the JSON of the rule's
 * actions. Unread counts are the rows after the user's read receipt position.
 *
 * `push_rules_versions`: bumped with every push rule change, so each process's cache of a user's
 * rules knows when it is stale without any cross-process message.
 *
 * `pushers`: one per (user, app_id, pushkey). `last_stream_ordering` is the sender's durable cursor:
 * every notification at or below it was delivered (or given up on). `lease_*` let one process at a
 * time send a pusher's notifications; lease times are the database's clock (ms).
 */
export const pushNotifications: Migration = {
  version: 11,
  name: 'push_notifications',
  up: [
    `create table event_push_actions (
      user_id text not null,
      event_id text not null,
      room_id text not null,
      stream_ordering bigint not null,
      notify boolean not null,
      highlight boolean not null,
      thread_id text not null,
      actions text not null,
      ts bigint not null,
      primary key (user_id, event_id)
    )`,
    `create index event_push_actions_room on event_push_actions (user_id, room_id, stream_ordering)`,
    `create index event_push_actions_user on event_push_actions (user_id, stream_ordering)`,
    `create index event_push_actions_ts on event_push_actions (ts)`,
    `create table push_rules_versions (
      user_id text primary key,
      version bigint not null
    )`,
    `create table pushers (
      id bigserial primary key,
      user_id text not null,
      device_id text,
      kind text not null,
      app_id text not null,
      pushkey text not null,
      pushkey_ts bigint not null,
      app_display_name text not null,
      device_display_name text not null,
      profile_tag text,
      lang text not null,
      data text not null,
      last_stream_ordering bigint not null,
      lease_owner text,
      lease_token text,
      lease_until bigint,
      created_ts bigint not null,
      unique (user_id, app_id, pushkey)
    )`,
    `create index pushers_app_pushkey on pushers (app_id, pushkey)`,
  ],
};
