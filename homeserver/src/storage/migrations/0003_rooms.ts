import type { Migration } from './index.js';

export const rooms: Migration = {
  version: 3,
  name: 'rooms',
  up: [
    `create table rooms (
      room_id text primary key,
      room_version text not null,
      creator text not null,
      visibility text not null default 'private',
      created_ts bigint not null
    )`,
    // The room event graph. `json` is the exact canonical JSON of the signed PDU (never jsonb: jsonb
    // reorders keys and rejects \\u0000). `stream_ordering` is the sync position, allocated while holding
    // the stream lock so positions commit in order; outliers have none.
    `create sequence events_stream_seq`,
    `create table events (
      event_id text primary key,
      room_id text not null references rooms(room_id),
      stream_ordering bigint unique,
      depth bigint not null,
      type text not null,
      state_key text,
      sender text not null,
      origin_server_ts bigint not null,
      json text not null,
      state_after bigint,
      outlier boolean not null default false,
      rejected_reason text,
      soft_failed boolean not null default false,
      redacted_by text,
      replaces_state text,
      created_ts bigint not null
    )`,
    `create index events_room_stream on events(room_id, stream_ordering)`,
    `create index events_room_depth on events(room_id, depth)`,
    `create table event_edges (
      event_id text not null,
      prev_event_id text not null,
      room_id text not null,
      primary key (event_id, prev_event_id)
    )`,
    `create index event_edges_prev on event_edges(prev_event_id)`,
    `create table event_auth (
      event_id text not null,
      auth_event_id text not null,
      primary key (event_id, auth_event_id)
    )`,
    `create table forward_extremities (
      room_id text not null,
      event_id text not null,
      primary key (room_id, event_id)
    )`,
    // Client sends are idempotent per (user, device, txn id), also across restarts.
    `create table event_txns (
      user_id text not null,
      device_id text not null,
      txn_id text not null,
      event_id text not null,
      created_ts bigint not null,
      primary key (user_id, device_id, txn_id)
    )`,
    `create index event_txns_event on event_txns(event_id)`,
    // Room state after an event: a snapshot is either full or a delta over prev_snapshot;
    // chain_length bounds how many deltas a read walks before a full snapshot.
    `create table state_snapshots (
      snapshot_id bigserial primary key,
      room_id text not null,
      prev_snapshot bigint,
      chain_length integer not null
    )`,
    `create table state_snapshot_entries (
      snapshot_id bigint not null,
      type text not null,
      state_key text not null,
      event_id text not null,
      primary key (snapshot_id, type, state_key)
    )`,
    `create table current_state (
      room_id text not null,
      type text not null,
      state_key text not null,
      event_id text not null,
      membership text,
      primary key (room_id, type, state_key)
    )`,
    `create index current_state_membership on current_state(state_key, membership) where type = 'm.room.member'`,
    // Every membership change in stream order: sync finds rooms joined, left or invited since a token.
    `create table membership_changes (
      stream_ordering bigint primary key,
      room_id text not null,
      user_id text not null,
      membership text not null,
      event_id text not null
    )`,
    `create index membership_changes_user on membership_changes(user_id, stream_ordering)`,
    `create table room_aliases (
      alias text primary key,
      room_id text not null references rooms(room_id),
      creator text not null,
      created_ts bigint not null
    )`,
    `create index room_aliases_room on room_aliases(room_id)`,
    `create table user_filters (
      filter_id bigserial primary key,
      user_id text not null,
      json text not null
    )`,
    `create index user_filters_user on user_filters(user_id)`,
    `create table room_forgotten (
      user_id text not null,
      room_id text not null,
      primary key (user_id, room_id)
    )`,
  ],
};
