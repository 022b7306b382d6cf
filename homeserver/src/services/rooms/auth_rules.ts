/**
 * Event authorization rules for room versions 10 and 11 (spec: rooms/v10.md and rooms/v11.md
 * "Authorisation rules"; server-server API "Auth events selection" and "Checks performed on
 * receipt of a PDU"). Rule numbers in comments are those of the spec's numbered list.
 *
 * Two entry points, matching how the spec uses the rules:
 *  - `checkAuth(event, authState, ...)`: every rule except 2.1-2.3, against a given state
 *    (the event's own auth events, the state before the event, the current state, or the
 *    partially resolved state inside state resolution).
 *  - `checkAuthEvents(event, fetchEvent, ...)`: rules 2.1-2.5 on the event's `auth_events`
 *    list, which need the list itself (duplicates cannot survive a state map).
 *  `checkAuthAgainstAuthEvents` runs both: receipt check 4, "passes authorisation rules
 *  based on the event's auth events".
 *
 * What the caller still owns: whether an auth event was itself rejected (rule 2.3; pass
 * `isRejected`), signature verification (see AuthOptions), and event format validation.
 *
 * v10 → v11 differences in the rules: rule 1.4 (`creator` required) is gone in v11, and
 * rule 4.3.1 names the creator by the create event's sender instead of `content.creator`.
 *
 * v11 → v12 (rooms/v12.md): the create event has no `room_id` (new rule 1.2), every other
 * event's room id must name an accepted create event (new rule 2), the create event is not
 * in `auth_events` (rule 3.2; the callers add it to the auth state from the room id),
 * `additional_creators` is checked (1.4), creators have an infinite level (power_levels.ts)
 * and may not appear in power levels (10.4). The v12 spec inserts rule 2, so the rules below
 * carry v11 numbers and v12 denials are renumbered (v12Reason).
 * v11's other changes (redaction algorithm, `redacts` moving into content) do not change
 * the rules: a redaction is authorised like any other event (rule 7), and whether it is
 * *applied* is "Handling redactions" — see `redactionApplies` below.
 */
import { SUPPORTED_ROOM_VERSIONS, stateKey, type RoomEvent, type RoomVersionId, type StateKey } from './pdu.js';
export { SUPPORTED_ROOM_VERSIONS };
import {
  domainOf,
  isPlainObject,
  NAMED_LEVELS,
  ownGet,
  parsePowerLevels,
  powerLevelsContentProblem,
  rawNamedLevel,
  levelMap,
  requiredPowerLevel,
  userPowerLevel,
} from './power_levels.js';
import { additionalCreatorsProblem, createEventIdOfRoom, creatorsInPowerLevelsProblem, roomCreators, roomIdForCreateEvent, roomIdIsCreateHash, v12Reason } from './room_v12.js';
import {
  ALLOW,
  checkMemberEvent,
  CREATE_KEY,
  deny,
  JOIN_RULES_KEY,
  memberKey,
  membershipOf,
  POWER_LEVELS_KEY,
  thirdPartyInviteKey,
  type AuthOptions,
  type AuthResult,
  type AuthState,
} from './auth_rules_member.js';

export {
  CREATE_KEY,
  JOIN_RULES_KEY,
  POWER_LEVELS_KEY,
  joinRuleOf,
  memberKey,
  membershipOf,
  thirdPartyInviteKey,
} from './auth_rules_member.js';
export type { AuthOptions, AuthResult, AuthState } from './auth_rules_member.js';


/** The fields of an event that decide its auth events (an event being built has no id yet). */
export interface EventDraft {
  type: string;
  state_key?: string;
  sender: string;
  content: Record<string, unknown>;
}

/**
 * "Auth events selection" (server-server API): the (type, state_key) keys whose current
 * state events belong in the event's `auth_events` ("if any" — absent ones are skipped).
 * Also the allow-list for rule 2.2. Both v10 and v11 select the create event and support
 * restricted rooms, so the list is the same for both.
 */
export function authEventTypesFor(event: EventDraft, _roomVersion: RoomVersionId): StateKey[] {
  if (event.type === 'm.room.create') return [];
  const keys = new Set<StateKey>([CREATE_KEY, POWER_LEVELS_KEY, memberKey(event.sender)]);
  if (event.type === 'm.room.member') {
    if (event.state_key !== undefined) keys.add(memberKey(event.state_key));
    const membership = ownGet(event.content, 'membership');
    if (membership === 'join' || membership === 'invite' || membership === 'knock') {
      keys.add(JOIN_RULES_KEY);
    }
    if (membership === 'invite') {
      const tpi = ownGet(event.content, 'third_party_invite');
      const signed = isPlainObject(tpi) ? ownGet(tpi, 'signed') : undefined;
      const token = isPlainObject(signed) ? ownGet(signed, 'token') : undefined;
      if (typeof token === 'string') keys.add(thirdPartyInviteKey(token));
    }
    if (membership === 'join') {
      const via = ownGet(event.content, 'join_authorised_via_users_server');
      if (typeof via === 'string') keys.add(memberKey(via));
    }
  }
  return [...keys];
}

/**
 * The keys whose current events go into a new event's `auth_events` list: the auth events
 * selection of its room version. Room version 12 leaves the create event out (its room id
 * names it); earlier versions list everything authEventTypesFor reads.
 */
export function authEventsSelection(event: EventDraft, roomVersion: RoomVersionId): StateKey[] {
  const keys = authEventTypesFor(event, roomVersion);
  return roomIdIsCreateHash(roomVersion) ? keys.filter((k) => k !== CREATE_KEY) : keys;
}

/**
 * Rules 2.1-2.5 on the event's own `auth_events`. `fetchEvent` must return the auth events
 * (rejected ones included — rule 2.3 needs to see them); a missing one fails the check,
 * since the event cannot be authorised without it. Create events have no auth events to
 * consider (rule 1 decides them alone), so they pass.
 */
export function checkAuthEvents(
  event: RoomEvent,
  fetchEvent: (eventId: string) => RoomEvent | undefined,
  roomVersion: RoomVersionId,
  isRejected: (eventId: string) => boolean = () => false,
): AuthResult {
  return v12Reason(checkAuthEventsList(event, fetchEvent, roomVersion, isRejected), roomVersion);
}

function checkAuthEventsList(
  event: RoomEvent,
  fetchEvent: (eventId: string) => RoomEvent | undefined,
  roomVersion: RoomVersionId,
  isRejected: (eventId: string) => boolean,
): AuthResult {
  if (event.type === 'm.room.create') return ALLOW;
  const v12 = roomIdIsCreateHash(roomVersion);
  if (v12) {
    // v12 rule 2: the room id must name an accepted create event.
    const create = fetchEvent(createEventIdOfRoom(event.room_id));
    if (!create || create.type !== 'm.room.create' || create.state_key !== '') {
      return deny('v12:rule 2: the room id does not name an available m.room.create event');
    }
    if (isRejected(create.event_id)) return deny('v12:rule 2: the m.room.create event the room id names was rejected');
  }
  const expected = new Set(authEventsSelection(event, roomVersion));
  const seen = new Set<StateKey>();
  for (const id of event.auth_events) {
    const authEvent = fetchEvent(id);
    if (!authEvent) return deny(`auth event ${id} is not available`);
    if (authEvent.room_id !== event.room_id) return deny(`rule 2.5: auth event ${id} is from another room`);
    if (authEvent.state_key === undefined) return deny(`rule 2.2: auth event ${id} is not a state event`);
    const key = stateKey(authEvent.type, authEvent.state_key);
    if (seen.has(key)) return deny(`rule 2.1: duplicate auth events for ${describe(key)}`);
    if (!expected.has(key)) return deny(`rule 2.2: unexpected auth event ${id} for ${describe(key)}`);
    if (isRejected(id)) return deny(`rule 2.3: auth event ${id} was rejected`);
    seen.add(key);
  }
  if (!v12 && !seen.has(CREATE_KEY)) return deny('rule 2.4: no m.room.create among the auth events');
  return ALLOW;
}

/** Receipt check 4: rules 2.x on the auth_events list, then every other rule against them. */
export function checkAuthAgainstAuthEvents(
  event: RoomEvent,
  fetchEvent: (eventId: string) => RoomEvent | undefined,
  roomVersion: RoomVersionId,
  options: AuthOptions & { isRejected?: (eventId: string) => boolean } = {},
): AuthResult {
  const listCheck = checkAuthEvents(event, fetchEvent, roomVersion, options.isRejected);
  if (!listCheck.allowed) return listCheck;
  const state = new Map<StateKey, RoomEvent>();
  if (event.type !== 'm.room.create') {
    for (const id of event.auth_events) {
      const e = fetchEvent(id) as RoomEvent; // present: checkAuthEvents verified it
      state.set(stateKey(e.type, e.state_key as string), e);
    }
    // v12: the create event is implied by the room id (checkAuthEvents found it).
    if (roomIdIsCreateHash(roomVersion)) state.set(CREATE_KEY, fetchEvent(createEventIdOfRoom(event.room_id)) as RoomEvent);
  }
  return checkAuth(event, state, roomVersion, options);
}

/**
 * The authorization rules (all but 2.1-2.3, see the file comment) for `event` against
 * `authState`. `roomVersion` must be the room's version, i.e. the create event's
 * `content.room_version`.
 */
export function checkAuth(
  event: RoomEvent,
  authState: AuthState,
  roomVersion: RoomVersionId,
  options: AuthOptions = {},
): AuthResult {
  return v12Reason(checkAuthRules(event, authState, roomVersion, options), roomVersion);
}

function checkAuthRules(
  event: RoomEvent,
  authState: AuthState,
  roomVersion: RoomVersionId,
  options: AuthOptions,
): AuthResult {
  if (!SUPPORTED_ROOM_VERSIONS.includes(roomVersion)) {
    return deny(`room version ${String(roomVersion)} is not supported`);
  }
  if (event.type === 'm.room.create') return checkCreate(event, roomVersion);

  // 2.4 / 2.5 on the state we were given, for the keys the rules can read (so passing a
  // whole room state costs nothing extra). Each entry must also sit under its own key;
  // anything else is a caller bug that would make the rules read the wrong event.
  const create = authState.get(CREATE_KEY);
  if (!create) {
    if (roomIdIsCreateHash(roomVersion)) return deny('v12:rule 2: no m.room.create event for the room id in the auth state');
    return deny('rule 2.4: no m.room.create event in the auth state');
  }
  // v12 rule 2: the room id is the create event's id (with `!`); a create event of another
  // room, or a room id derived some other way, fails here.
  if (roomIdIsCreateHash(roomVersion) && create.event_id !== createEventIdOfRoom(event.room_id)) {
    return deny('v12:rule 2: the room id is not the m.room.create event id');
  }
  for (const key of authEventTypesFor(event, roomVersion)) {
    const e = authState.get(key);
    if (!e) continue;
    if (e.state_key === undefined || stateKey(e.type, e.state_key) !== key) {
      return deny(`auth state entry ${describe(key)} holds ${e.event_id}, which has another key`);
    }
    if (e.room_id !== event.room_id) return deny(`rule 2.5: auth event ${e.event_id} is from another room`);
  }

  // 3: a room created with m.federate: false only accepts events from the creator's server.
  // Only the boolean false counts, as the rule says ("set to false").
  if (ownGet(create.content, 'm.federate') === false && domainOf(event.sender) !== domainOf(create.sender)) {
    return deny('rule 3: room is not federated and the sender is on another server');
  }

  // 4: membership changes have their own rules and never reach 5-10.
  if (event.type === 'm.room.member') {
    return checkMemberEvent(event, authState, create, roomVersion, options);
  }

  // 5
  if (membershipOf(authState, event.sender) !== 'join') return deny('rule 5: sender is not joined');

  const plEvent = authState.get(POWER_LEVELS_KEY);
  const pl = parsePowerLevels(plEvent?.content);
  const senderLevel = userPowerLevel(event.sender, plEvent, create, roomVersion);

  // 6: third-party invites need the invite level and nothing else (not even rule 8).
  if (event.type === 'm.room.third_party_invite') {
    if (senderLevel >= pl.levels.invite) return ALLOW;
    return deny('rule 6.1: sender is below the invite level');
  }

  // 7: the event type's required level. This is also the only rule a redaction meets:
  // the redact level is not an auth rule (see redactionApplies).
  const isState = event.state_key !== undefined;
  if (requiredPowerLevel(pl, event.type, isState) > senderLevel) {
    return deny(`rule 7: sender is below the level required for ${event.type}`);
  }

  // 8: state keyed by a user ID belongs to that user.
  if (event.state_key !== undefined && event.state_key.startsWith('@') && event.state_key !== event.sender) {
    return deny('rule 8: state_key is another user ID');
  }

  // 9
  if (event.type === 'm.room.power_levels') {
    // 10.4 (v12): creators are not listed in power levels.
    const creatorsListed = creatorsInPowerLevelsProblem(event.content, roomCreators(create, roomVersion));
    const shape = powerLevelsContentProblem(event.content);
    if (!shape && creatorsListed) return deny(`v12:${creatorsListed}`);
    return checkPowerLevels(event, plEvent, senderLevel);
  }

  return ALLOW; // 10
}

/** Rule 1 (v11 drops 1.4; v12 replaces 1.2 and adds `additional_creators` as 1.4). */
function checkCreate(event: RoomEvent, roomVersion: RoomVersionId): AuthResult {
  if (event.prev_events.length > 0) return deny('rule 1.1: m.room.create has prev_events'); // 1.1
  if (roomIdIsCreateHash(roomVersion)) {
    // v12 1.2: no room_id. In memory the id is attached as `!` + the event's hash; a room_id
    // that came with the event is part of that hash, so can never equal it.
    if (event.room_id !== roomIdForCreateEvent(event.event_id)) return deny('v12:rule 1.2: m.room.create has a room_id');
  } else {
    const roomDomain = domainOf(event.room_id);
    if (roomDomain === undefined || roomDomain !== domainOf(event.sender)) {
      return deny('rule 1.2: room_id domain does not match the sender domain'); // 1.2
    }
  }
  // 1.3: "recognised" = a version this server implements.
  const declared = ownGet(event.content, 'room_version');
  if (declared !== undefined && !(typeof declared === 'string' && (SUPPORTED_ROOM_VERSIONS as string[]).includes(declared))) {
    return deny(`rule 1.3: unrecognised room_version ${JSON.stringify(declared)}`);
  }
  // Not a numbered rule: the room's version *is* content.room_version (default "1"), so
  // applying v10/v11 rules to a create event declaring anything else is a caller error.
  if ((declared ?? '1') !== roomVersion) {
    return deny(`m.room.create declares room version ${JSON.stringify(declared ?? '1')}, not ${roomVersion}`);
  }
  if (roomIdIsCreateHash(roomVersion)) {
    const problem = additionalCreatorsProblem(event.content); // v12 1.4
    if (problem) return deny(`v12:${problem}`);
  }
  // 1.4 (v10 only): content.creator must be present.
  if (roomVersion === '10' && !Object.hasOwn(event.content, 'creator')) {
    return deny('rule 1.4: m.room.create has no creator (required in room version 10)');
  }
  return ALLOW; // 1.5 (v10) / 1.4 (v11)
}

/** Rule 9. `current` is the power levels event in the auth state, if any. */
function checkPowerLevels(event: RoomEvent, current: RoomEvent | undefined, senderLevel: number): AuthResult {
  const problem = powerLevelsContentProblem(event.content); // 9.1-9.3
  if (problem) return deny(problem);
  if (!current) return ALLOW; // 9.4

  const before = current.content;
  const after = event.content;

  // 9.5: scalar levels added, changed or removed. An absent side has no value to compare
  // (as Synapse reads it), so e.g. adding `kick: 30` only checks 30.
  for (const name of NAMED_LEVELS) {
    const old = rawNamedLevel(before, name);
    const neu = rawNamedLevel(after, name);
    if (old === neu) continue;
    if (old !== undefined && old > senderLevel) return deny(`rule 9.5.1: current ${name} is above the sender's level`);
    if (neu !== undefined && neu > senderLevel) return deny(`rule 9.5.2: new ${name} is above the sender's level`);
  }

  // 9.6 / 9.7: entries of `events` and `notifications`.
  for (const prop of ['events', 'notifications'] as const) {
    const oldMap = levelMap(before, prop);
    const newMap = levelMap(after, prop);
    for (const key of new Set([...oldMap.keys(), ...newMap.keys()])) {
      const old = oldMap.get(key);
      const neu = newMap.get(key);
      if (old === neu) continue;
      if (old !== undefined && old > senderLevel) return deny(`rule 9.6: current ${prop}.${key} is above the sender's level`);
      if (neu !== undefined && neu > senderLevel) return deny(`rule 9.7: new ${prop}.${key} is above the sender's level`);
    }
  }

  // 9.8 / 9.9: entries of `users`. Nobody may change a peer's (or superior's) level, but
  // anyone may lower their own.
  const oldUsers = levelMap(before, 'users');
  const newUsers = levelMap(after, 'users');
  for (const user of new Set([...oldUsers.keys(), ...newUsers.keys()])) {
    const old = oldUsers.get(user);
    const neu = newUsers.get(user);
    if (old === neu) continue;
    if (old !== undefined && user !== event.sender && old >= senderLevel) {
      return deny(`rule 9.8: cannot change the level of ${user}, who is at or above the sender's level`);
    }
    if (neu !== undefined && neu > senderLevel) return deny(`rule 9.9: cannot raise ${user} above the sender's level`);
  }
  return ALLOW; // 9.10
}

/**
 * The event a redaction targets: a top-level `redacts` in v10, `content.redacts` in v11
 * (v11 "Moving the redacts property of m.room.redaction events to a content property").
 */
export function redactsOf(event: RoomEvent, roomVersion: RoomVersionId): string | undefined {
  if (event.type !== 'm.room.redaction') return undefined;
  const target = roomVersion === '10' ? event.redacts : ownGet(event.content, 'redacts'); // v11+: in content
  return typeof target === 'string' ? target : undefined;
}

/**
 * "Handling redactions" (v3+; unchanged in v10/v11): an authorised redaction is *applied*
 * to `original` only if the redacter has the redact level, or is on the same server as
 * the original's sender. `authState` is the state to read power levels from.
 */
export function redactionApplies(
  redaction: RoomEvent,
  original: RoomEvent,
  authState: AuthState,
  roomVersion: RoomVersionId,
): boolean {
  if (redactsOf(redaction, roomVersion) !== original.event_id) return false;
  if (redaction.room_id !== original.room_id) return false;
  const plEvent = authState.get(POWER_LEVELS_KEY);
  const level = userPowerLevel(redaction.sender, plEvent, authState.get(CREATE_KEY), roomVersion);
  if (level >= parsePowerLevels(plEvent?.content).levels.redact) return true;
  const domain = domainOf(redaction.sender);
  return domain !== undefined && domain === domainOf(original.sender);
}

const describe = (key: StateKey): string => {
  const [type, sk] = key.split('\u0000');
  return `(${type}, ${JSON.stringify(sk)})`;
};
