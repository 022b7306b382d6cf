/**
 * History visibility for servers (what Synapse calls "filter events for server", the client
 * module's history visibility rules applied with a server in place of a user): an event of a room
 * whose `m.room.history_visibility` was `joined` (or `invited`) when it was sent may be seen by a
 * server only if one of its users was joined (or joined or invited) at that point. Other servers
 * still need the event to complete their DAG, so reads that return graphs (backfill,
 * get_missing_events, /event) serve the *redacted* copy instead (its signatures and hashes still
 * verify); reads of the state at such an event are refused.
 */
import type { Sql } from '../../storage/db.js';
import { parseUserId } from '../../core/ids.js';
import * as fed from '../../storage/federated_events.js';
import { stateKey, type StateMap } from '../rooms/pdu.js';

const HV_KEY = stateKey('m.room.history_visibility', '');
const MEMBER_PREFIX = stateKey('m.room.member', '');

function serverOf(userId: string | undefined): string | undefined {
  return userId === undefined ? undefined : parseUserId(userId)?.serverName;
}

/**
 * The stored PDUs' content, by id (rejected ones left out). Read whole even when redacted: the
 * keys used here (`history_visibility`, `membership`) are ones every room version's redaction keeps.
 */
async function contents(sql: Sql, ids: string[]): Promise<Map<string, Record<string, unknown>>> {
  const got = await fed.getEventJson(sql, ids);
  const out = new Map<string, Record<string, unknown>>();
  for (const [id, g] of got) {
    if (g.rejected) continue;
    const content = (JSON.parse(g.json) as { content?: unknown }).content;
    out.set(id, typeof content === 'object' && content !== null ? (content as Record<string, unknown>) : {});
  }
  return out;
}

/** The minimal event shape this needs. */
export interface VisibilityEvent {
  type: string;
  state_key?: string;
  content: Record<string, unknown>;
}

/**
 * Whether `origin` may see `ev`, given the room state before it. Unknown or missing visibility
 * counts as `shared` (spec default), which, like `world_readable`, any server in the room may see.
 */
export async function visibleToServer(sql: Sql, origin: string, ev: VisibilityEvent, stateBefore: StateMap): Promise<boolean> {
  // A server's own users' membership events are always theirs to see.
  if (ev.type === 'm.room.member' && serverOf(ev.state_key) === origin) return true;
  const hvId = stateBefore.get(HV_KEY);
  const before = hvId === undefined ? undefined : (await contents(sql, [hvId])).get(hvId)?.history_visibility;
  const levels = [before];
  // A history_visibility change is visible when the setting before or after it allows it.
  if (ev.type === 'm.room.history_visibility' && ev.state_key === '') levels.push(ev.content.history_visibility);
  const needs = new Set<string>();
  for (const hv of levels) {
    if (hv === 'joined') needs.add('join');
    else if (hv === 'invited') needs.add('invite');
    else return true; // world_readable, shared, unset or not understood
  }
  // `invited` also admits joined servers.
  const admitted = needs.has('invite') ? new Set(['join', 'invite']) : new Set(['join']);
  const memberIds: string[] = [];
  for (const [k, id] of stateBefore) {
    if (k.startsWith(MEMBER_PREFIX) && serverOf(k.slice(MEMBER_PREFIX.length)) === origin) memberIds.push(id);
  }
  if (memberIds.length === 0) return false;
  for (const content of (await contents(sql, memberIds)).values()) {
    if (typeof content.membership === 'string' && admitted.has(content.membership)) return true;
  }
  return false;
}
