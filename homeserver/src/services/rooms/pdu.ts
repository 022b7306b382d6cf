/**
 * Persistent data units (room events) as room versions 10, 11 and 12 define them
 * (spec: rooms/v10.md, rooms/v11.md, rooms/v12.md, server-server API "PDUs").
 */
export type RoomVersionId = '10' | '11' | '12';

/** The room versions this server implements (events, auth rules, redaction, state resolution). */
export const SUPPORTED_ROOM_VERSIONS: readonly RoomVersionId[] = Object.freeze(['10', '11', '12']);

export interface PduContentHashes {
  sha256: string;
}

/** A PDU as it travels between servers (no event_id: it is derived from the reference hash). */
export interface Pdu {
  auth_events: string[];
  content: Record<string, unknown>;
  depth: number;
  hashes: PduContentHashes;
  origin_server_ts: number;
  prev_events: string[];
  /**
   * A room version 12 `m.room.create` event has no `room_id` on the wire (the room id is its
   * event id with `!`); in memory it is attached like `event_id` (room_v12.ts, withImpliedRoomId).
   */
  room_id: string;
  sender: string;
  signatures: Record<string, Record<string, string>>;
  state_key?: string;
  type: string;
  unsigned?: Record<string, unknown>;
  /** Room versions 1-10 carry `redacts` at the top level of redaction events; v11 moves it into content. */
  redacts?: string;
  /** Present in v10 events only (removed in v11). */
  origin?: string;
}

/** A PDU with its event id, as the rules and the rest of the server handle it. */
export interface RoomEvent extends Pdu {
  event_id: string;
}

/** A key into room state: (type, state_key). */
export type StateKey = `${string}\u0000${string}`;
export const stateKey = (type: string, key: string): StateKey => `${type}\u0000${key}` as StateKey;

/** Room state: each (type, state_key) maps to an event id. */
export type StateMap = Map<StateKey, string>;
