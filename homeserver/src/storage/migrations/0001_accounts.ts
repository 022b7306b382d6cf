import type { Migration } from './index.js';

export const accounts: Migration = {
  version: 1,
  name: 'accounts',
  up: [
    `create table server_secrets (
      name text primary key,
      value text not null,
      created_ts bigint not null
    )`,
    `create table users (
      user_id text primary key,
      localpart text not null unique,
      password_hash text,
      displayname text,
      avatar_url text,
      is_admin boolean not null default false,
      deactivated boolean not null default false,
      created_ts bigint not null
    )`,
    `create table devices (
      user_id text not null references users(user_id),
      device_id text not null,
      display_name text,
      created_ts bigint not null,
      last_seen_ts bigint,
      last_seen_ip text,
      primary key (user_id, device_id)
    )`,
    // One row per logged-in device. For refreshable sessions, latest_refresh_id is the newest
    // refresh token handed out and confirmed_refresh_id the newest whose access token was used:
    // tokens older than confirmed are rotated out, and presenting one revokes the session.
    `create table access_sessions (
      session_id text primary key,
      user_id text not null references users(user_id),
      device_id text not null,
      refreshable boolean not null,
      latest_refresh_id bigint,
      confirmed_refresh_id bigint,
      created_ts bigint not null,
      unique (user_id, device_id)
    )`,
    `create table refresh_tokens (
      refresh_id bigserial primary key,
      session_id text not null references access_sessions(session_id) on delete cascade,
      token_hash text not null unique,
      created_ts bigint not null
    )`,
    `create index refresh_tokens_session on refresh_tokens(session_id)`,
    `create table uia_sessions (
      session_id text primary key,
      endpoint text not null,
      user_id text,
      completed jsonb not null default '[]',
      threepid jsonb,
      registration_token text,
      created_ts bigint not null,
      expires_ts bigint not null
    )`,
    // An email validation in progress (requestToken -> link or code -> used once).
    `create table threepid_validations (
      sid text primary key,
      client_secret text not null,
      medium text not null,
      address text not null,
      purpose text not null,
      token_hash text not null,
      send_attempt bigint not null,
      created_ts bigint not null,
      expires_ts bigint not null,
      validated_ts bigint,
      consumed_ts bigint,
      failed_attempts integer not null default 0
    )`,
    `create index uia_sessions_expires on uia_sessions(expires_ts)`,
    `create index threepid_validations_secret on threepid_validations(client_secret, medium, address, purpose)`,
    `create table user_threepids (
      medium text not null,
      address text not null,
      user_id text not null references users(user_id),
      validated_ts bigint not null,
      added_ts bigint not null,
      primary key (medium, address)
    )`,
    `create index user_threepids_user on user_threepids(user_id)`,
    `create table registration_tokens (
      token text primary key,
      uses_allowed integer,
      pending integer not null default 0,
      completed integer not null default 0,
      expiry_ts bigint,
      created_ts bigint not null
    )`,
  ],
};
