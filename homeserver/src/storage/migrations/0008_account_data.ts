import type { Migration } from './index.js';

/**
 * Account data (spec: "Client Config"), global (`room_id` '') and per room, tags (`m.tag` room
 * account data) included. `stream_id` is the row's position in the account-data stream, taken from
 * `account_data_stream` under the account-data lock so positions commit in order.
 */
export const accountData: Migration = {
  version: 8,
  name: 'account_data',
  up: [
    `create table account_data (
      user_id text not null,
      room_id text not null,
      type text not null,
      content text not null,
      stream_id bigint not null,
      primary key (user_id, room_id, type)
    )`,
    `create index account_data_user_stream on account_data (user_id, stream_id)`,
    `create sequence account_data_stream`,
  ],
};
