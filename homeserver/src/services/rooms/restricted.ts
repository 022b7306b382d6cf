/**
 * Restricted rooms (client-server API "Restricted rooms", server-server API "Restricted rooms"):
 * join rule `restricted` / `knock_restricted` with `allow: [{type: 'm.room_membership', room_id}]`.
 * Whoever lets a user in without an invite must check, from its own view, that the user is joined
 * to one of the allow rooms, and name in `join_authorised_via_users_server` one of its own users
 * who is joined to the room and may invite (auth rule 4.3.5.2). Shared by local joins
 * (membership.ts) and the resident side of federated joins (federation/joins.ts). When we are in
 * the room but cannot vouch, a local join goes through a resident that can (UnableToGrantJoin).
 */
import type { Sql } from '../../storage/db.js';
import { MatrixError, forbidden } from '../../core/errors.js';
import type { JsonObject } from '../../core/json.js';
import * as events from '../../storage/events.js';
import * as stateStore from '../../storage/state.js';
import { redact } from './event_format.js';
import type { RoomEvent, RoomVersionId } from './pdu.js';
import { parsePowerLevels, userPowerLevel } from './power_levels.js';

export const RESTRICTED_RULES = ['restricted', 'knock_restricted'];

/**
 * What this server can say about a join without an invite:
 *  - `open`: no restriction applies (another join rule, or the user is invited or joined already);
 *  - `authorised`: the user is in an allow room and `via` (ours) may vouch for them;
 *  - `forbidden`: the user is in none of the allow rooms (or there are none);
 *  - `unable_to_authorise`: we are in none of the allow rooms the user might be in;
 *  - `unable_to_grant`: the user qualifies, but none of our users in the room may invite.
 */
export type RestrictedDecision =
  | { kind: 'open' }
  | { kind: 'authorised'; via: string }
  | { kind: 'forbidden' | 'unable_to_authorise' | 'unable_to_grant' };

/** The `m.room_membership` rooms of a join rules content (entries of any other shape are ignored). */
export function allowRooms(content: Record<string, unknown>): string[] {
  const allow = Array.isArray(content.allow) ? content.allow : [];
  const out: string[] = [];
  for (const a of allow) {
    if (typeof a !== 'object' || a === null || Array.isArray(a)) continue;
    const entry = a as Record<string, unknown>;
    if (entry.type === 'm.room_membership' && typeof entry.room_id === 'string') out.push(entry.room_id);
  }
  return [...new Set(out)];
}

/** Whether a user of `serverName` is joined to the room: only then is our view of it current. */
export async function serverInRoom(sql: Sql, roomId: string, serverName: string): Promise<boolean> {
  const suffix = `:${serverName}`;
  const rows = await sql.query(
    `select 1 from current_state where room_id = ? and type = 'm.room.member' and membership = 'join' and right(state_key, ?) = ? limit 1`,
    [roomId, suffix.length, suffix],
  );
  return rows.length > 0;
}

/** Our joined members of the room who may invite, highest power first (ties: by user id). */
export async function localAuthorisers(sql: Sql, roomId: string, serverName: string, version: RoomVersionId): Promise<string[]> {
  const suffix = `:${serverName}`;
  const rows = await sql.query<{ state_key: string }>(
    `select state_key from current_state where room_id = ? and type = 'm.room.member' and membership = 'join' and right(state_key, ?) = ?`,
    [roomId, suffix.length, suffix],
  );
  if (rows.length === 0) return [];
  const got = await events.currentStateEvents(sql, roomId, ['m.room.power_levels', 'm.room.create']);
  // A redacted power levels event counts in its redacted form, as the auth rules see it.
  const plStored = got.get('m.room.power_levels');
  const pl: RoomEvent | undefined = plStored ? (plStored.redactedBy ? ({ ...redact(plStored.event, version), event_id: plStored.event.event_id } as RoomEvent) : plStored.event) : undefined;
  const create = got.get('m.room.create')?.event;
  const inviteLevel = parsePowerLevels(pl?.content).levels.invite;
  return rows
    .map((r) => ({ user: r.state_key, level: userPowerLevel(r.state_key, pl, create, version) }))
    .filter((u) => u.level >= inviteLevel)
    .sort((a, b) => b.level - a.level || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
    .map((u) => u.user);
}

/** The room's current join rule and allow rooms. */
export async function currentJoinRule(sql: Sql, roomId: string): Promise<{ rule: string; allow: string[] }> {
  const ev = (await events.currentStateEvents(sql, roomId, ['m.room.join_rules'])).get('m.room.join_rules');
  const content = ev && !ev.redactedBy ? ev.event.content : {};
  // No join rules event reads as `invite`, as the auth rules do.
  const rule = typeof content.join_rule === 'string' ? content.join_rule : 'invite';
  return { rule, allow: allowRooms(content) };
}

/**
 * Decides a join of `userId` into `roomId` (a room we are in) by the rules above. A local joiner's
 * memberships are always known to us; for a remote one, allow rooms we are not in leave the
 * question open (`unable_to_authorise`) unless another allow room already settles it.
 */
export async function decideRestrictedJoin(sql: Sql, serverName: string, roomId: string, version: RoomVersionId, userId: string): Promise<RestrictedDecision> {
  const { rule, allow } = await currentJoinRule(sql, roomId);
  if (!RESTRICTED_RULES.includes(rule)) return { kind: 'open' };
  const current = await stateStore.getMembership(sql, roomId, userId);
  if (current === 'join' || current === 'invite') return { kind: 'open' };
  let unknown = false;
  let member = false;
  for (const allowed of allow) {
    if (!(await serverInRoom(sql, allowed, serverName))) {
      unknown = true;
      continue;
    }
    if ((await stateStore.getMembership(sql, allowed, userId)) === 'join') {
      member = true;
      break;
    }
  }
  if (!member) return { kind: unknown ? 'unable_to_authorise' : 'forbidden' };
  const [via] = await localAuthorisers(sql, roomId, serverName, version);
  return via ? { kind: 'authorised', via } : { kind: 'unable_to_grant' };
}

/** The spec's error for a refused decision, as the resident side of make_join/send_join answers it. */
export function restrictedJoinError(kind: 'forbidden' | 'unable_to_authorise' | 'unable_to_grant'): MatrixError {
  if (kind === 'unable_to_authorise') {
    return new MatrixError(400, 'M_UNABLE_TO_AUTHORISE_JOIN', "This server is in none of the rooms the room's join rules allow: it cannot check your memberships");
  }
  if (kind === 'unable_to_grant') {
    return new MatrixError(400, 'M_UNABLE_TO_GRANT_JOIN', 'No user of this server in the room may invite: try another server');
  }
  return forbidden('You are not a joined member of any room this restricted room allows');
}

/**
 * A local user may join a restricted room we are in, but none of our members there may invite, so
 * we cannot vouch. A 403 without federation; with it, membership.ts joins through a server in the
 * room that can vouch instead (federation/remote_membership.ts `joinThroughResident`).
 */
export class UnableToGrantJoin extends MatrixError {
  constructor(readonly roomId: string) {
    super(403, 'M_FORBIDDEN', 'You may join this restricted room, but no member of this server in it may invite, so none can authorise the join');
  }
}

/**
 * A local user's join: adds `join_authorised_via_users_server` when the room is restricted and the
 * user is not invited (throws 403 when no allow room admits them, UnableToGrantJoin when none of
 * our members can vouch).
 */
export async function authoriseLocalJoin(sql: Sql, serverName: string, roomId: string, version: RoomVersionId, userId: string, content: JsonObject): Promise<void> {
  const d = await decideRestrictedJoin(sql, serverName, roomId, version, userId);
  if (d.kind === 'open') return;
  if (d.kind === 'authorised') {
    content.join_authorised_via_users_server = d.via;
    return;
  }
  if (d.kind === 'unable_to_grant') throw new UnableToGrantJoin(roomId);
  throw forbidden('This room is restricted: you must be invited or be a joined member of one of the rooms its join rules allow');
}
