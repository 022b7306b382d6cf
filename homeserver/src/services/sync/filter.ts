import { badJson } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';

/** An event filter (spec: "Filtering"): which events pass, and how many. */
export interface EventFilter {
  limit?: number;
  types?: string[];
  notTypes?: string[];
  senders?: string[];
  notSenders?: string[];
}

export interface RoomEventFilter extends EventFilter {
  rooms?: string[];
  notRooms?: string[];
  lazyLoadMembers: boolean;
  includeRedundantMembers: boolean;
  containsUrl?: boolean;
  /** Unread counts per thread in /sync (`unread_thread_notifications`, spec v1.4). */
  unreadThreadNotifications: boolean;
}

export interface Filter {
  room: {
    rooms?: string[];
    notRooms?: string[];
    includeLeave: boolean;
    timeline: RoomEventFilter;
    state: RoomEventFilter;
    ephemeral: RoomEventFilter;
    accountData: RoomEventFilter;
  };
  presence: EventFilter;
  accountData: EventFilter;
  eventFields?: string[];
  eventFormat: 'client' | 'federation';
}

/** Hard ceiling on a timeline limit, whatever a filter asks for. */
export const MAX_TIMELINE_LIMIT = 1000;
export const DEFAULT_TIMELINE_LIMIT = 10;

function strings(o: JsonObject, key: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string') || v.length > 10_000) {
    throw badJson(`filter: '${key}' must be an array of strings`);
  }
  return v as string[];
}

function obj(o: JsonObject, key: string): JsonObject {
  const v = o[key];
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw badJson(`filter: '${key}' must be an object`);
  return v;
}

function eventFilter(o: JsonObject): EventFilter {
  const limit = o.limit;
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0)) {
    throw badJson("filter: 'limit' must be a non-negative integer");
  }
  return {
    limit: limit === undefined ? undefined : Math.min(limit as number, MAX_TIMELINE_LIMIT),
    types: strings(o, 'types'),
    notTypes: strings(o, 'not_types'),
    senders: strings(o, 'senders'),
    notSenders: strings(o, 'not_senders'),
  };
}

export function roomEventFilter(o: JsonObject): RoomEventFilter {
  const bool = (k: string) => {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw badJson(`filter: '${k}' must be a boolean`);
    return v;
  };
  return {
    ...eventFilter(o),
    rooms: strings(o, 'rooms'),
    notRooms: strings(o, 'not_rooms'),
    lazyLoadMembers: bool('lazy_load_members') ?? false,
    includeRedundantMembers: bool('include_redundant_members') ?? false,
    containsUrl: bool('contains_url'),
    unreadThreadNotifications: bool('unread_thread_notifications') ?? false,
  };
}

/** Parses a filter definition (from POST /filter, or inline JSON in /sync or /messages). */
export function parseFilter(raw: unknown): Filter {
  if (!isObject(raw)) throw badJson('filter must be a JSON object');
  const room = obj(raw, 'room');
  const format = raw.event_format ?? 'client';
  if (format !== 'client' && format !== 'federation') throw badJson("filter: 'event_format' must be client or federation");
  const includeLeave = room.include_leave;
  if (includeLeave !== undefined && typeof includeLeave !== 'boolean') throw badJson("filter: 'include_leave' must be a boolean");
  return {
    room: {
      rooms: strings(room, 'rooms'),
      notRooms: strings(room, 'not_rooms'),
      includeLeave: includeLeave ?? false,
      timeline: roomEventFilter(obj(room, 'timeline')),
      state: roomEventFilter(obj(room, 'state')),
      ephemeral: roomEventFilter(obj(room, 'ephemeral')),
      accountData: roomEventFilter(obj(room, 'account_data')),
    },
    presence: eventFilter(obj(raw, 'presence')),
    accountData: eventFilter(obj(raw, 'account_data')),
    eventFields: strings(raw, 'event_fields'),
    eventFormat: format,
  };
}

/** `*` in a filter's type or sender lists matches any run of characters. */
function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
  return re.test(value);
}

export function eventPasses(f: EventFilter, ev: { type: string; sender: string; content?: Record<string, unknown> }): boolean {
  if (f.types && !f.types.some((t) => globMatch(t, ev.type))) return false;
  if (f.notTypes && f.notTypes.some((t) => globMatch(t, ev.type))) return false;
  if (f.senders && !f.senders.includes(ev.sender)) return false;
  if (f.notSenders && f.notSenders.includes(ev.sender)) return false;
  const rf = f as RoomEventFilter;
  if (rf.containsUrl !== undefined && ev.content) {
    const has = typeof ev.content.url === 'string';
    if (has !== rf.containsUrl) return false;
  }
  return true;
}

export function roomPasses(f: { rooms?: string[]; notRooms?: string[] }, roomId: string): boolean {
  if (f.rooms && !f.rooms.includes(roomId)) return false;
  if (f.notRooms && f.notRooms.includes(roomId)) return false;
  return true;
}
