/**
 * Power levels as the authorization rules of room versions 10 and 11 read them
 * (spec: m.room.power_levels event schema; server-server API "Definitions": required
 * power level, invite/kick/ban/redact level; rooms/v10.md, v11.md rule 9).
 *
 * Everything here is pure and works on already-parsed events. Lookups on event content
 * use own properties only: an event type or user ID such as `constructor` or `__proto__`
 * must never resolve to something inherited from Object.prototype.
 */
import type { RoomEvent, RoomVersionId } from './pdu.js';

/** The scalar levels of a power levels event. */
export type NamedLevel =
  | 'users_default'
  | 'events_default'
  | 'state_default'
  | 'ban'
  | 'kick'
  | 'redact'
  | 'invite';

/**
 * Defaults when a property (or the whole event) is absent. `state_default` is 50 even when
 * the room has no power levels event at all (event schema: "If there is no state_default in
 * the m.room.power_levels event, or there is no m.room.power_levels event, the state_default
 * is 50"); only the *user* levels change without an event (creator 100, everyone else 0).
 */
export const NAMED_LEVEL_DEFAULTS: Readonly<Record<NamedLevel, number>> = Object.freeze({
  users_default: 0,
  events_default: 0,
  state_default: 50,
  ban: 50,
  kick: 50,
  redact: 50,
  invite: 0,
});

export const NAMED_LEVELS = Object.freeze(Object.keys(NAMED_LEVEL_DEFAULTS) as NamedLevel[]);

/** The level a user gets when the room has no power levels event and they created it. */
export const CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100;

/** Parsed power levels with every default applied. */
export interface PowerLevels {
  readonly levels: Readonly<Record<NamedLevel, number>>;
  readonly users: ReadonlyMap<string, number>;
  readonly events: ReadonlyMap<string, number>;
  readonly notifications: ReadonlyMap<string, number>;
}

/**
 * Room versions 10+ only accept integers (rule 9.1-9.3). Canonical JSON further limits
 * integers to [-(2**53)+1, (2**53)-1], so anything outside the safe range is not an integer
 * any server could have signed.
 */
export const isPowerLevelInt = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v);

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export const ownGet = (obj: Record<string, unknown>, key: string): unknown =>
  Object.hasOwn(obj, key) ? obj[key] : undefined;

/** `content[name]` if it is present and an integer, else undefined. */
export function rawNamedLevel(
  content: Record<string, unknown> | undefined,
  name: NamedLevel,
): number | undefined {
  if (!content) return undefined;
  const v = ownGet(content, name);
  return isPowerLevelInt(v) ? v : undefined;
}

/** The integer entries of `content[prop]` (a map of string to level), ignoring anything else. */
export function levelMap(
  content: Record<string, unknown> | undefined,
  prop: 'users' | 'events' | 'notifications',
): Map<string, number> {
  const out = new Map<string, number>();
  const obj = content ? ownGet(content, prop) : undefined;
  if (!isPlainObject(obj)) return out;
  for (const [k, v] of Object.entries(obj)) if (isPowerLevelInt(v)) out.set(k, v);
  return out;
}

/**
 * Parse power levels content with the defaults applied. Lenient on purpose: a power levels
 * event that is already part of room state passed rule 9.1-9.3 (integers only) in v10+, so
 * a non-integer value can only reach here from a malformed caller, and falls back to the
 * default rather than throwing in the middle of state resolution.
 */
export function parsePowerLevels(content: Record<string, unknown> | undefined): PowerLevels {
  const levels = { ...NAMED_LEVEL_DEFAULTS };
  for (const name of NAMED_LEVELS) {
    const v = rawNamedLevel(content, name);
    if (v !== undefined) levels[name] = v;
  }
  return {
    levels,
    users: levelMap(content, 'users'),
    events: levelMap(content, 'events'),
    notifications: levelMap(content, 'notifications'),
  };
}

/**
 * The room creator: v10 names it in `content.creator` (rule 1.4 requires the property);
 * v11 removed `creator` and the creator is the create event's `sender` (v11 "Remove the
 * creator property of m.room.create events"; rule 4.3.1 "changed-in v=11"). In v12 this is
 * the creator whose own first join rule 5.3.1 allows; see roomCreators for all of them.
 */
export function roomCreator(create: RoomEvent, roomVersion: RoomVersionId): string | undefined {
  if (roomVersion === '10') {
    const creator = ownGet(create.content, 'creator');
    return typeof creator === 'string' ? creator : undefined;
  }
  return create.sender;
}

/** Room versions whose creators have an infinite, immutable power level (v12 onwards). */
export function hasInfiniteCreators(roomVersion: RoomVersionId): boolean {
  return roomVersion === '12';
}

/**
 * The room's creators in room version 12 (rooms/v12.md): the create event's sender plus the
 * string entries of `content.additional_creators` (rule 1.4 made sure they are user ids).
 * Empty for earlier versions, where no one has an infinite level.
 */
export function roomCreators(create: RoomEvent | undefined, roomVersion: RoomVersionId): Set<string> {
  if (!create || !hasInfiniteCreators(roomVersion)) return new Set();
  const extra = ownGet(create.content, 'additional_creators');
  const list = Array.isArray(extra) ? extra.filter((u): u is string => typeof u === 'string') : [];
  return new Set([create.sender, ...list]);
}

/** The level of a room version 12 creator: above any integer a power levels event can hold. */
export const CREATOR_LEVEL_V12 = Number.POSITIVE_INFINITY;

/**
 * A user's power level. In room version 12 a creator's is infinite whatever the power levels
 * say. Otherwise, with a power levels event: its `users` entry, else `users_default`.
 * Without one: the creator has 100 and everyone else 0 (event schema description).
 */
export function userPowerLevel(
  userId: string,
  powerLevelsEvent: RoomEvent | undefined,
  createEvent: RoomEvent | undefined,
  roomVersion: RoomVersionId,
): number {
  if (hasInfiniteCreators(roomVersion) && roomCreators(createEvent, roomVersion).has(userId)) return CREATOR_LEVEL_V12;
  if (powerLevelsEvent) {
    const pl = parsePowerLevels(powerLevelsEvent.content);
    return pl.users.get(userId) ?? pl.levels.users_default;
  }
  if (createEvent && roomCreator(createEvent, roomVersion) === userId) {
    return CREATOR_LEVEL_WITHOUT_POWER_LEVELS;
  }
  return 0;
}

/**
 * The "required power level" of an event type (server-server API definitions): the `events`
 * entry for the type, else `state_default` for state events and `events_default` otherwise.
 */
export function requiredPowerLevel(pl: PowerLevels, eventType: string, isState: boolean): number {
  return pl.events.get(eventType) ?? (isState ? pl.levels.state_default : pl.levels.events_default);
}

/** The part of an identifier after the first `:` (user IDs and v10/v11 room IDs). */
export function domainOf(id: string): string | undefined {
  const i = id.indexOf(':');
  return i < 0 ? undefined : id.slice(i + 1);
}

/**
 * A user ID as federation must accept it (appendices, "Historical User IDs"): `@`, a
 * localpart of any code points except `:` and NUL (possibly empty), `:`, a server name.
 * Deliberately no stricter than that: rejecting a user ID another server accepts would
 * make servers disagree about which power levels events are valid.
 */
export function isValidUserId(id: string): boolean {
  if (!id.startsWith('@') || id.includes('\u0000')) return false;
  const server = domainOf(id);
  return server !== undefined && server.length > 0;
}

/**
 * Rules 9.1-9.3 (v10 and v11 are identical here): the shape of new power levels content.
 * Returns a reason when the content must be rejected, else undefined.
 */
export function powerLevelsContentProblem(content: Record<string, unknown>): string | undefined {
  // 9.1: the scalar levels, when present, must be integers (no "50" strings since v10).
  for (const name of NAMED_LEVELS) {
    if (Object.hasOwn(content, name) && !isPowerLevelInt(content[name])) {
      return `rule 9.1: power levels property "${name}" is not an integer`;
    }
  }
  // 9.2: `events` and `notifications`, when present, must map to integers.
  for (const prop of ['events', 'notifications'] as const) {
    if (!Object.hasOwn(content, prop)) continue;
    const obj = content[prop];
    if (!isPlainObject(obj)) return `rule 9.2: power levels property "${prop}" is not an object`;
    for (const [k, v] of Object.entries(obj)) {
      if (!isPowerLevelInt(v)) return `rule 9.2: "${prop}.${k}" is not an integer`;
    }
  }
  // 9.3: `users` must map valid user IDs to integers. An absent `users` is read as empty
  // (as every implementation does); a present non-object is rejected.
  if (Object.hasOwn(content, 'users')) {
    const users = content.users;
    if (!isPlainObject(users)) return 'rule 9.3: power levels property "users" is not an object';
    for (const [k, v] of Object.entries(users)) {
      if (!isValidUserId(k)) return `rule 9.3: "users" key ${JSON.stringify(k)} is not a user ID`;
      if (!isPowerLevelInt(v)) return `rule 9.3: "users.${k}" is not an integer`;
    }
  }
  return undefined;
}
