import type { Sql } from '../../storage/db.js';
import * as accountData from '../../storage/account_data.js';
import type { StoredEvent } from '../../storage/events.js';

/**
 * Ignoring users (spec: "Ignoring Users"): the users in the `m.ignored_user_list` account data. A
 * sync computation or a read loads the list once and filters with it, so a change applies from the
 * next sync on (the spec: "immediately start ignoring").
 */
export async function ignoredUsers(sql: Sql, userId: string): Promise<ReadonlySet<string>> {
  const row = await accountData.get(sql, userId, '', 'm.ignored_user_list');
  const list = row?.content.ignored_users;
  if (typeof list !== 'object' || list === null || Array.isArray(list)) return EMPTY;
  // One cannot ignore oneself: one's own events always show.
  const out = new Set(Object.keys(list).filter((u) => u !== userId));
  return out.size === 0 ? EMPTY : out;
}

const EMPTY: ReadonlySet<string> = new Set();

/** Drops events of ignored users, except state events (the spec keeps those, e.g. room names). */
export function withoutIgnored<T extends StoredEvent>(evs: T[], ignored: ReadonlySet<string> | undefined): T[] {
  if (!ignored || ignored.size === 0) return evs;
  return evs.filter((s) => s.event.state_key !== undefined || !ignored.has(s.event.sender));
}
