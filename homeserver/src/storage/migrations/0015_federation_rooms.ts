import type { Migration } from './index.js';

/**
 * Room events received over federation (protocol-spec/federation.md, "Room events between servers").
 *
 * - `event_dag_state`: the state *at* (before) and *after* a remote event in the event graph. Local
 *   events need no row: their `events.state_after` is the room state they were built on plus
 *   themselves. For remote events `events.state_after` keeps its sync meaning instead — the room's
 *   current state once the event was applied (after state resolution of the forward extremities) —
 *   so a fork's event never makes sync show the other fork's state rolled back.
 * - `events_backfill_seq`: negative stream positions for backfilled history (older than anything
 *   in the live stream: never "new" to a sync, found by /messages paging backwards).
 * - `federation_txns`: the answer to each transaction an origin sent, so a retry gets it again.
 * - `remote_invite_state`: the stripped state a remote server sent with an invite of a local user.
 */
export const federationRooms: Migration = {
  version: 15,
  name: 'federation_rooms',
  up: [
    `create table event_dag_state (
      event_id text primary key,
      room_id text not null,
      state_before bigint,
      state_after bigint
    )`,
    `create sequence events_backfill_seq increment by -1 maxvalue -1 start with -1`,
    `create table federation_txns (
      origin text not null,
      txn_id text not null,
      response text not null,
      created_ts bigint not null,
      primary key (origin, txn_id)
    )`,
    `create index federation_txns_created on federation_txns(created_ts)`,
    `create table remote_invite_state (
      room_id text not null,
      user_id text not null,
      event_id text not null,
      stripped_json text not null,
      primary key (room_id, user_id)
    )`,
    `create index events_room_outlier on events(room_id) where outlier`,
  ],
};
