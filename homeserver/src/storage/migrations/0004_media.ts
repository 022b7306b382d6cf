import type { Migration } from './index.js';

/**
 * The media repository: one row per media id. A row with `sha256` null is a `create`d id still
 * waiting for its upload (until `unused_expires_ts`); the file itself lives content-addressed under
 * the data dir and the row (or its sha256) is written only once the file is in place.
 */
export const media: Migration = {
  version: 4,
  name: 'media',
  up: [
    `create table media (
      media_id text primary key,
      server_name text not null,
      user_id text not null,
      content_type text,
      upload_name text,
      size bigint,
      sha256 text,
      created_ts bigint not null,
      uploaded_ts bigint,
      unused_expires_ts bigint
    )`,
    `create index media_pending on media(user_id, unused_expires_ts) where sha256 is null`,
  ],
};
