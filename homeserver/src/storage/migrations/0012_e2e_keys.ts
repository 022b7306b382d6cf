import type { Migration } from './index.js';

/** (being written) */
export const e2eKeys: Migration = {
  version: 12,
  name: 'e2e_keys',
  up: [],
};
