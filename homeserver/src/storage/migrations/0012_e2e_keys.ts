import type { Migration } from './index.js';

/**
 * End-to-end encryption support (the server stores and relays keys; it never decrypts).
 *
 * - `e2e_device_keys`: each device's identity keys, kept as the uploaded JSON text.
 * - `e2e_one_time_keys`: unclaimed one-time keys; `id` orders them by upload, claims take the oldest.
 * - `e2e_fallback_keys`: one per (device, algorithm); `used` once claimed while no one-time key was left.
 * - `e2e_cross_signing_keys`: a user's master / self_signing / user_signing keys.
 * - `e2e_signatures`: signatures uploaded through /keys/signatures/upload, merged into the signed
 *   objects when they are queried (`target_key_id` is a device id or a master key's public key).
 * - `to_device_inbox`: send-to-device messages waiting for their device, `stream_id` from
 *   `to_device_stream` under the to-device lock; `to_device_positions` is each device's newest
 *   position ever (its sync-token part must not go back when delivered messages are deleted).
 * - `to_device_txns`: (user, device, txn id) of /sendToDevice requests already applied.
 * - `device_list_changes`: the device-lists stream: a user's devices or cross-signing keys changed
 *   (`room_id` null), or a membership change copied from `membership_changes` (room and membership
 *   set; `device_list_membership_cursor` is how far they are copied). `visible_to`, when set, limits
 *   the row to that user (a signature they made of another user's key).
 */
export const e2eKeys: Migration = {
  version: 12,
  name: 'e2e_keys',
  up: [
    `create table e2e_device_keys (
      user_id text not null,
      device_id text not null,
      key_json text not null,
      primary key (user_id, device_id)
    )`,
    `create table e2e_one_time_keys (
      id bigserial not null,
      user_id text not null,
      device_id text not null,
      algorithm text not null,
      key_id text not null,
      key_json text not null,
      primary key (user_id, device_id, algorithm, key_id)
    )`,
    `create index e2e_one_time_keys_claim on e2e_one_time_keys (user_id, device_id, algorithm, id)`,
    `create table e2e_fallback_keys (
      user_id text not null,
      device_id text not null,
      algorithm text not null,
      key_id text not null,
      key_json text not null,
      used boolean not null default false,
      primary key (user_id, device_id, algorithm)
    )`,
    `create table e2e_cross_signing_keys (
      user_id text not null,
      key_type text not null,
      public_key text not null,
      key_json text not null,
      primary key (user_id, key_type)
    )`,
    `create table e2e_signatures (
      signer_user_id text not null,
      signer_key_id text not null,
      target_user_id text not null,
      target_key_id text not null,
      signature text not null,
      primary key (target_user_id, target_key_id, signer_user_id, signer_key_id)
    )`,
    `create table to_device_inbox (
      user_id text not null,
      device_id text not null,
      stream_id bigint not null,
      sender text not null,
      type text not null,
      content text not null,
      primary key (user_id, device_id, stream_id)
    )`,
    `create sequence to_device_stream`,
    `create table to_device_positions (
      user_id text not null,
      device_id text not null,
      stream_id bigint not null,
      primary key (user_id, device_id)
    )`,
    `create table to_device_txns (
      user_id text not null,
      device_id text not null,
      txn_id text not null,
      created_ts bigint not null,
      primary key (user_id, device_id, txn_id)
    )`,
    `create index to_device_txns_age on to_device_txns (created_ts)`,
    `create table device_list_changes (
      stream_id bigint primary key,
      user_id text not null,
      room_id text,
      membership text,
      visible_to text
    )`,
    `create sequence device_list_stream`,
    `create table device_list_membership_cursor (
      id int primary key check (id = 1),
      stream_ordering bigint not null
    )`,
    `insert into device_list_membership_cursor (id, stream_ordering) values (1, 0)`,
  ],
};
