import type { Migration } from './index.js';

/**
 * OpenID tokens (`/user/{userId}/openid/request_token`, checked by other servers through
 * `/_matrix/federation/v1/openid/userinfo`): only a SHA-256 of each token is kept, with its expiry.
 * Erased users (`/account/deactivate` with `erase: true`): their events are served redacted to
 * users who were not joined when they were sent (services/rooms/events_view.ts).
 */
export const openidErasure: Migration = {
  version: 18,
  name: 'openid_erasure',
  up: [
    `create table openid_tokens (
      token_hash text primary key,
      user_id text not null,
      expires_ts bigint not null
    )`,
    `create index openid_tokens_expiry on openid_tokens(expires_ts)`,
    `create table erased_users (
      user_id text primary key,
      erased_ts bigint not null
    )`,
  ],
};
