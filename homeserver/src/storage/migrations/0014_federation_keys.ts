import type { Migration } from './index.js';

/**
 * Other servers' signing keys (spec: server-server API, "Retrieving server keys").
 *
 * `server_keys`: one row per (server, key id) we have seen in a self-signed `/_matrix/key/v2/server`
 * response (fetched directly or through a notary). `valid_until_ts` is that response's; `expired_ts`
 * is set when the key was listed in `old_verify_keys`. `response_json` is the response itself
 * (canonical JSON, only the origin's signatures kept), so we can serve it as a notary. A row is only
 * replaced by a response at least as fresh (`valid_until_ts` not lower), so a notary's older copy
 * cannot undo what we learnt directly.
 */
export const federationKeys: Migration = {
  version: 14,
  name: 'federation_keys',
  up: [
    `create table server_keys (
      server_name text not null,
      key_id text not null,
      public_key text not null,
      valid_until_ts bigint not null,
      expired_ts bigint,
      fetched_ts bigint not null,
      response_json text not null,
      primary key (server_name, key_id)
    )`,
  ],
};
