import type { Migration } from './index.js';

/**
 * Push rules (spec: client-server API, "Push Rules"). `push_rules` holds user-defined rules, one row
 * per (user, kind, rule id), ordered within a kind by `position` (lower is more important).
 * `push_rule_default_changes` holds a user's changes to server-default rules (`enabled`, `actions`;
 * null keeps the default), which are otherwise not stored.
 */
export const pushRules: Migration = {
  version: 6,
  name: 'push_rules',
  up: [
    `create table push_rules (
      user_id text not null,
      kind text not null,
      rule_id text not null,
      position bigint not null,
      enabled boolean not null default true,
      actions text not null,
      conditions text,
      pattern text,
      primary key (user_id, kind, rule_id)
    )`,
    `create table push_rule_default_changes (
      user_id text not null,
      kind text not null,
      rule_id text not null,
      enabled boolean,
      actions text,
      primary key (user_id, kind, rule_id)
    )`,
  ],
};
