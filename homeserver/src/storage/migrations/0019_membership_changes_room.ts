import type { Migration } from './index.js';

/**
 * A room's latest membership change by index: the push evaluator's per-room member cache is
 * keyed by it (services/push/evaluator.ts), read on every event.
 */
export const membershipChangesRoom: Migration = {
  version: 19,
  name: 'membership_changes_room',
  up: [`create index membership_changes_room on membership_changes(room_id, stream_ordering)`],
};
