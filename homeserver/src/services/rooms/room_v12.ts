/**
 * What room version 12 changes about room ids, the create event and creators (spec: rooms/v12.md
 * "Event format", "Authorisation rules"; MSC4289 / MSC4291 / MSC4297 as merged into the spec).
 *
 *  - The room id is the create event's id with `!` instead of `$` (a hash, no server name), and
 *    the create event itself has no `room_id` on the wire. In memory every RoomEvent has a
 *    `room_id`: for such a create event it is attached, as `event_id` is (withImpliedRoomId).
 *  - The create event is no longer listed in `auth_events`: the room id names it. Code that
 *    loads an event's auth events for the rules adds it back (ruleAuthEventIds).
 *  - The create event's sender and `content.additional_creators` are the room's creators, with
 *    an infinite power level that power levels events may not name.
 */
import type { RoomEvent, RoomVersionId } from './pdu.js';
import { deny, type AuthResult } from './auth_rules_member.js';
import { isPlainObject, isValidUserId, ownGet } from './power_levels.js';
export { hasInfiniteCreators, roomCreators } from './power_levels.js';

/** Room versions whose room id is the create event's reference hash (v12 onwards). */
export function roomIdIsCreateHash(version: RoomVersionId): boolean {
  return version === '12';
}

/** `!` + the create event's hash: the room id of a room version 12 room. */
export const roomIdForCreateEvent = (createEventId: string): string => `!${createEventId.slice(1)}`;

/** The create event id a room version 12 room id names. */
export const createEventIdOfRoom = (roomId: string): string => `$${roomId.slice(1)}`;

/** Whether `event` is a room version 12 create event (one without a wire `room_id`). */
export function isImpliedRoomCreate(event: { type: string; state_key?: string }, version: RoomVersionId): boolean {
  return roomIdIsCreateHash(version) && event.type === 'm.room.create' && event.state_key === '';
}

/**
 * Attaches the implied `room_id` to a room version 12 create event that has none (the form
 * the rest of the server handles). An event that came with a `room_id` keeps it, so rule 1.2
 * can still see and reject it.
 */
export function withImpliedRoomId<T extends { type: string; state_key?: string; event_id: string; room_id?: string }>(event: T, version: RoomVersionId): T {
  if (!isImpliedRoomCreate(event, version) || event.room_id !== undefined) return event;
  return { ...event, room_id: roomIdForCreateEvent(event.event_id) };
}

/**
 * The ids of the events the rules read for `event`: its `auth_events`, plus in room version 12
 * the create event its room id names (which is never listed).
 */
export function ruleAuthEventIds(event: Pick<RoomEvent, 'type' | 'state_key' | 'room_id' | 'auth_events'>, version: RoomVersionId): string[] {
  if (!roomIdIsCreateHash(version) || event.type === 'm.room.create') return event.auth_events;
  return [...event.auth_events, createEventIdOfRoom(event.room_id)];
}

/** Rule 1.4 (v12): `additional_creators`, if present, must be an array of valid user ids. */
export function additionalCreatorsProblem(content: Record<string, unknown>): string | undefined {
  if (!Object.hasOwn(content, 'additional_creators')) return undefined;
  const list = content.additional_creators;
  if (!Array.isArray(list) || !list.every((u) => typeof u === 'string' && isValidUserId(u))) {
    return 'rule 1.4: additional_creators is not an array of user IDs';
  }
  return undefined;
}

/** Rule 10.4 (v12): a power levels event may not list a creator in `users`. */
export function creatorsInPowerLevelsProblem(content: Record<string, unknown>, creators: ReadonlySet<string>): string | undefined {
  const users = ownGet(content, 'users');
  if (!isPlainObject(users)) return undefined;
  for (const user of Object.keys(users)) {
    if (creators.has(user)) return `rule 10.4: power levels may not list the room creator ${user}`;
  }
  return undefined;
}

/**
 * Denial reasons name rules by number. The v12 list inserts a rule 2 (and a 10.4), so a reason
 * written with v11 numbers is renumbered for a v12 room; reasons of rules new in v12 are
 * written with their v12 numbers behind a `v12:` marker, which is dropped.
 */
export function v12Reason(result: AuthResult, roomVersion: RoomVersionId): AuthResult {
  if (result.allowed || !roomIdIsCreateHash(roomVersion)) return result;
  if (result.reason.startsWith('v12:')) return deny(result.reason.slice(4));
  return deny(
    result.reason.replace(/rule (\d+)((?:\.\d+)*)/g, (_m, major: string, rest: string) => {
      const n = Number(major);
      if (n < 2) return `rule ${major}${rest}`;
      // v11 9.4-9.10 are v12 10.5-10.11 (10.4 is new)
      const sub = /^\.(\d+)(.*)$/.exec(rest);
      if (n === 9 && sub && Number(sub[1]) >= 4) return `rule 10.${Number(sub[1]) + 1}${sub[2]}`;
      return `rule ${n + 1}${rest}`;
    }),
  );
}
