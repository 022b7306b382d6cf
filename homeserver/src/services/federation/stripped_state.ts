/**
 * The room state that travels with invites and knocks (spec v1.16: server-server invites-v2 and
 * knocks `invite_room_state` / `knock_room_state`; client-server "Stripped state"; MSC4311):
 *  - sent: whole PDUs of the room's version, `m.room.create` included (roomStateForInvitee);
 *  - received: each PDU is verified (signatures, format) and must be of the invite's room; in room
 *    version 12 that binds the create event to the room id, the room id being its hash. What fails
 *    is reported, and the caller refuses the invite or only drops the entry (checkInviteeRoomState);
 *  - kept for clients: stripped events (type, state_key, sender, content), except that in room
 *    version 12 the create event stays the whole PDU, so a client or safety tool can hash it and
 *    compare it with the room id, which no longer names the creating server (Synapse does the same).
 */
import type { Database } from '../../storage/db.js';
import { invalidParam, MatrixError } from '../../core/errors.js';
import { parseStrictJson, type JsonObject } from '../../core/canonical_json.js';
import * as events from '../../storage/events.js';
import * as fed from '../../storage/federated_events.js';
import { isSupportedRoomVersion, redact } from '../rooms/event_format.js';
import type { RoomVersionId } from '../rooms/pdu.js';
import type { VerifiedEvent } from '../rooms/federated_events.js';
import { roomIdIsCreateHash } from '../rooms/room_v12.js';

/** The state event types sent with invites and knocks (client-server "Stripped state"). */
const STRIPPED_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

type Verify = (raw: unknown, version: RoomVersionId) => Promise<VerifiedEvent & { redacted: boolean }>;

export interface InviteeRoomStateCheck {
  /** The entries to keep for clients (stripped; see the file comment), bad ones left out. */
  kept: unknown[];
  /** Everything that is not as spec v1.16 asks (for the log). */
  problems: string[];
  /**
   * Set when the state contradicts the room (an entry of another room, a create event of another
   * version), or, in room version 12, lacks a verified create PDU or has an entry that fails its
   * signature check: an invite carrying it is refused (invites-v2.yaml, MSC4311 "Migration").
   */
  refusal?: MatrixError;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The client-server form of a (verified or stripped) entry: see the file comment. */
export function clientStrippedEntry(e: Record<string, unknown>, version: RoomVersionId): Record<string, unknown> {
  if (roomIdIsCreateHash(version) && e.type === 'm.room.create' && e.state_key === '' && isObject(e.signatures)) return e;
  const { type, state_key, sender, content } = e;
  return { type, state_key, sender, content };
}

/**
 * Checks `invite_room_state` / `knock_room_state` received for `roomId`. Room versions 1-11 are
 * checked leniently (entries that fail are dropped, a stripped or missing create event tolerated,
 * as servers before spec v1.16 send them); entries that are plain stripped events are tolerated in
 * every version except as the v12 create event (Synapse 1.163 sends only the create event whole).
 */
export async function checkInviteeRoomState(
  verify: Verify,
  roomId: string,
  version: RoomVersionId,
  entries: unknown[],
  field: 'invite_room_state' | 'knock_room_state',
): Promise<InviteeRoomStateCheck> {
  const strict = roomIdIsCreateHash(version);
  const kept: unknown[] = [];
  const problems: string[] = [];
  let contradiction: string | undefined;
  let unverified: string | undefined;
  let createPdu = false;
  for (const e of entries) {
    if (!isObject(e) || typeof e.type !== 'string' || typeof e.state_key !== 'string') {
      problems.push('an entry is not a state event');
      continue;
    }
    const what = `${e.type} (${e.state_key})`;
    const isCreate = e.type === 'm.room.create' && e.state_key === '';
    if (e.room_id !== undefined && e.room_id !== roomId) {
      contradiction ??= `${what} is of another room`;
      continue;
    }
    if (!isObject(e.signatures)) {
      problems.push(`${what} is not a PDU`);
      if (!(strict && isCreate)) kept.push(clientStrippedEntry(e, version));
      continue;
    }
    let v: VerifiedEvent;
    try {
      v = await verify(e, version);
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
      unverified ??= `${what} fails its checks: ${(err as Error).message}`;
      continue;
    }
    // v12: the create event's room id is its own hash, so this is where a forged create event shows.
    if (v.event.room_id !== roomId || v.event.type !== e.type || v.event.state_key !== e.state_key) {
      contradiction ??= `${what} is of another room`;
      continue;
    }
    if (isCreate) {
      const declared = v.event.content.room_version ?? '1';
      if (declared !== version) {
        contradiction ??= `the create event is of room version ${String(declared)}, not ${version}`;
        continue;
      }
      createPdu = true;
    }
    kept.push(clientStrippedEntry(parseStrictJson(v.json) as JsonObject, version));
  }
  if (!createPdu) problems.push('no m.room.create PDU');
  if (contradiction) return { kept, problems: [...problems, contradiction], refusal: invalidParam(`${field}: ${contradiction}`) };
  if (strict && unverified) return { kept, problems, refusal: invalidParam(`${field}: ${unverified}`) };
  if (strict && !createPdu) return { kept, problems, refusal: new MatrixError(400, 'M_MISSING_PARAM', `${field} must carry the m.room.create event as a PDU`) };
  return { kept, problems };
}

/**
 * `invite_room_state` / `knock_room_state` of a room we hold: the stripped-state event types, but
 * (spec v1.16) as whole PDUs formatted per the room version, redacted where a redaction applies,
 * `m.room.create` included; the receiving server strips them for its clients.
 */
export async function roomStateForInvitee(db: Database, roomId: string): Promise<JsonObject[]> {
  const ids = [...(await events.currentStateEvents(db, roomId, STRIPPED_TYPES)).values()].map((s) => s.event.event_id);
  const version = await fed.roomExists(db, roomId);
  return [...(await fed.getEventJson(db, ids)).values()].map((g) => {
    const pdu = parseStrictJson(g.json) as JsonObject;
    return g.redactedBy !== null && isSupportedRoomVersion(version) ? (redact(pdu, version) as JsonObject) : pdu;
  });
}
