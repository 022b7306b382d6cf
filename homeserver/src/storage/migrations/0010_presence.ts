import type { Migration } from './index.js';

/** (being written) */
export const presence: Migration = {
  version: 10,
  name: 'presence',
  up: [],
};
