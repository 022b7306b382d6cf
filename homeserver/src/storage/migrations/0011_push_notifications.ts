import type { Migration } from './index.js';

/** (being written) */
export const pushNotifications: Migration = {
  version: 11,
  name: 'push_notifications',
  up: [],
};
