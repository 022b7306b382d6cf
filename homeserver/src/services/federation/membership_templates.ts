/**
 * Membership events built by one server for another (make_join / make_leave / make_knock, and our
 * own invites of remote users): a template on top of the room's forward extremities with the auth
 * events the rules select from current state, checked against current state before it is handed out.
 */
import type { Sql } from '../../storage/db.js';
import { forbidden, notFound } from '../../core/errors.js';
import * as events from '../../storage/events.js';
import * as fed from '../../storage/federated_events.js';
import * as stateStore from '../../storage/state.js';
import { authEventsSelection, checkAuth } from '../rooms/auth_rules.js';
import { ruleAuthEventIds } from '../rooms/room_v12.js';
import { isSupportedRoomVersion } from '../rooms/event_format.js';
import { stateKey, type RoomEvent, type RoomVersionId, type StateKey, type StateMap } from '../rooms/pdu.js';
import { loadRuleEvents } from '../rooms/state_loader.js';
import type { UnsignedPdu } from '../rooms/signer.js';
import { THIRD_PARTY_AUTH } from '../identity/signed.js'; // auth rule 4.4.1.7's signature check

const MAX_PREV = 10;

export interface Template {
  version: RoomVersionId;
  pdu: UnsignedPdu;
  /** Current state when the template was built (the state before the event, for our own sends). */
  stateBefore: StateMap;
  base: { snapshot: number | null; map: StateMap };
}

/** Whether we hold the room's state (a resident server), not only an invite or knock of one user. */
export async function isResident(sql: Sql, roomId: string): Promise<boolean> {
  const rows = await sql.query('select 1 from current_state where room_id = ? and type = ? and state_key = ?', [roomId, 'm.room.create', '']);
  return rows.length > 0;
}

export async function buildTemplate(
  sql: Sql,
  roomId: string,
  ev: { type: string; sender: string; stateKey: string; content: Record<string, unknown> },
): Promise<Template> {
  const version = await fed.roomExists(sql, roomId);
  if (version === undefined || !(await isResident(sql, roomId))) throw notFound('Unknown room');
  if (!isSupportedRoomVersion(version)) throw notFound('Unknown room');
  const extremities = (await events.getForwardExtremities(sql, roomId)).slice(0, MAX_PREV);
  const rows = await stateStore.getCurrentState(sql, roomId);
  const current: StateMap = new Map(rows.map((r) => [stateKey(r.type, r.state_key), r.event_id]));
  const authIds = [...new Set(authEventsSelection({ type: ev.type, state_key: ev.stateKey, sender: ev.sender, content: ev.content }, version).map((k) => current.get(k)).filter((x): x is string => !!x))];
  const depth = extremities.length === 0 ? 1 : Math.min(Number.MAX_SAFE_INTEGER, Math.max(...extremities.map((p) => p.depth)) + 1);
  const pdu: UnsignedPdu = {
    room_id: roomId,
    sender: ev.sender,
    type: ev.type,
    state_key: ev.stateKey,
    content: ev.content,
    prev_events: extremities.map((p) => p.event_id),
    auth_events: authIds,
    depth,
    origin_server_ts: Date.now(),
  };
  const { events: authEvents, rejected } = await loadRuleEvents(sql, ruleAuthEventIds(pdu, version), version); // v12: + the implied create
  const authState = new Map<StateKey, RoomEvent>();
  for (const e of authEvents.values()) if (!rejected.has(e.event_id) && e.state_key !== undefined) authState.set(stateKey(e.type, e.state_key), e);
  // Signatures come later (the joining server's, and ours for join_authorised_via_users_server): the check is of the state rules.
  const verdict = checkAuth({ ...pdu, hashes: { sha256: '' }, signatures: {}, event_id: '$template' }, authState, version, { ...THIRD_PARTY_AUTH, isSignedBy: () => true });
  if (!verdict.allowed) throw forbidden(`Not allowed: ${verdict.reason}`);
  return { version, pdu, stateBefore: current, base: { snapshot: await fed.latestStateSnapshot(sql, roomId), map: current } };
}
