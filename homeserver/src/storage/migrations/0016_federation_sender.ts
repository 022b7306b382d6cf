import type { Migration } from './index.js';

/**
 * The outgoing federation queue and the federated EDU state (protocol-spec/federation.md, "Sending").
 *
 * - `federation_destinations`: one row per server we send to. The events table is the source of
 *   truth for our own PDUs: `stream_cursor` is the last `events.stream_ordering` handled for that
 *   destination (sent, or not meant for it); it advances only after the destination answered a
 *   transaction with 200. `catch_up_target` is set while catching up after an outage (only the
 *   newest events of each room up to it are sent). `retry_count`/`retry_until_ts` are the back-off,
 *   `txn_seq` numbers transaction ids, `lease_owner`/`lease_until_ts` make sure only one process
 *   sends a destination's transactions at a time.
 * - `federation_outbox`: what the events table cannot say: remote PDUs we forward as the resident
 *   server (`event_id`) and EDUs (`edu_type`, `content`). An EDU with a `coalesce_key` replaces the
 *   previous one with the same key (typing, receipts, presence: only the latest matters); ids come
 *   from one sequence, and a replaced EDU takes a new id (it goes after what was queued before it).
 * - `federation_stream_cursors`: how far each local stream (typing, receipts, presence, device
 *   lists) has been turned into EDUs; advanced in the transaction that queues them.
 * - `federation_device_snapshots`/`federation_device_streams`: what we last told other servers about
 *   each local user's devices (a hash per device, '' for the cross-signing keys) and the user's
 *   `m.device_list_update` stream id.
 * - `remote_device_lists`: device lists of remote users we share a room with (kept up to date by
 *   their server's `m.device_list_update`; `stale` when an update did not follow on what we have).
 * - `federation_received_to_device`: `message_id`s of to-device EDUs already delivered (retries).
 * - `remote_media`: remote media fetched over federation and cached in the local media store.
 */
export const federationSender: Migration = {
  version: 16,
  name: 'federation_sender',
  up: [
    `create table federation_destinations (
      destination text primary key,
      stream_cursor bigint not null,
      catch_up_target bigint,
      retry_count integer not null default 0,
      retry_until_ts bigint not null default 0,
      last_success_ts bigint,
      txn_seq bigint not null default 0,
      lease_owner text,
      lease_until_ts bigint not null default 0
    )`,
    `create sequence federation_outbox_seq`,
    `create table federation_outbox (
      id bigint primary key default nextval('federation_outbox_seq'),
      destination text not null,
      event_id text,
      edu_type text,
      coalesce_key text,
      content text,
      created_ts bigint not null
    )`,
    `create index federation_outbox_destination on federation_outbox (destination, id)`,
    `create unique index federation_outbox_coalesce on federation_outbox (destination, coalesce_key) where coalesce_key is not null`,
    `create table federation_stream_cursors (
      stream text primary key,
      position bigint not null
    )`,
    `create table federation_device_snapshots (
      user_id text not null,
      device_id text not null,
      hash text not null,
      primary key (user_id, device_id)
    )`,
    `create table federation_device_streams (
      user_id text primary key,
      stream_id bigint not null
    )`,
    `create table remote_device_lists (
      user_id text primary key,
      stream_id bigint not null,
      stale boolean not null default false,
      devices text not null,
      master_key text,
      self_signing_key text,
      updated_ts bigint not null
    )`,
    `create table federation_received_to_device (
      origin text not null,
      message_id text not null,
      received_ts bigint not null,
      primary key (origin, message_id)
    )`,
    `create index federation_received_to_device_ts on federation_received_to_device (received_ts)`,
    `create table remote_media (
      server_name text not null,
      media_id text not null,
      content_type text,
      upload_name text,
      size bigint not null,
      sha256 text not null,
      fetched_ts bigint not null,
      primary key (server_name, media_id)
    )`,
  ],
};
