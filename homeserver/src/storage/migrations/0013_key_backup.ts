import type { Migration } from './index.js';

/**
 * Server-side room key backups (spec: "Server-side key backups"). The server stores what clients
 * encrypted and never reads it.
 *
 * - `key_backup_versions`: a user's backups. `version` counts up per user and is never reused
 *   (deleted backups keep their row, flagged, so deleting one twice succeeds and its number stays
 *   taken). `etag` goes up whenever the backup's keys change; `key_count` is the number of keys,
 *   kept in the same transaction as the keys (both under this row's lock).
 * - `key_backup_keys`: one encrypted Megolm session key per (user, version, room, session).
 */
export const keyBackup: Migration = {
  version: 13,
  name: 'key_backup',
  up: [
    `create table key_backup_versions (
      user_id text not null,
      version bigint not null,
      algorithm text not null,
      auth_data text not null,
      etag bigint not null default 0,
      key_count bigint not null default 0,
      deleted boolean not null default false,
      primary key (user_id, version)
    )`,
    `create table key_backup_keys (
      user_id text not null,
      version bigint not null,
      room_id text not null,
      session_id text not null,
      first_message_index bigint not null,
      forwarded_count bigint not null,
      is_verified boolean not null,
      session_data text not null,
      primary key (user_id, version, room_id, session_id)
    )`,
  ],
};
