/**
 * Event hashing, ids, redaction, signing and format checks for room versions 10, 11 and 12
 * (spec: server-server API "Signing Events"; rooms/v10, rooms/v11, rooms/v12; fragments
 * v9-redactions, v11-redactions, v4-event-ids, v12-event-format; client-server API "Size limits").
 * Room version 12 redacts, hashes and signs as v11 does; only room ids and the create event change.
 *
 * All functions take plain JSON objects (a Pdu or anything shaped like one) and never modify
 * their input: the exact JSON that was hashed and signed is what must be stored and sent.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { canonicalJsonBytes } from '../../core/canonical_json.js';
import { MatrixError } from '../../core/errors.js';
import {
  decodeBase64,
  encodeBase64,
  encodeBase64Url,
  signJson,
  verifyJsonSignature,
  type Signatures,
} from '../../core/signing.js';
import { SUPPORTED_ROOM_VERSIONS, type RoomVersionId } from './pdu.js';
import { isImpliedRoomCreate, roomIdIsCreateHash } from './room_v12.js';
export { SUPPORTED_ROOM_VERSIONS };

type Json = Record<string, unknown>;


export function isSupportedRoomVersion(v: unknown): v is RoomVersionId {
  return typeof v === 'string' && (SUPPORTED_ROOM_VERSIONS as readonly string[]).includes(v);
}

// ---------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------

/** Top-level keys that survive redaction in v10 (the v9 list, unchanged since v1). */
const TOP_LEVEL_V10 = new Set([
  'event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures',
  'depth', 'prev_events', 'prev_state', 'auth_events', 'origin', 'origin_server_ts', 'membership',
]);
/** v11 stops protecting `origin`, `membership` and `prev_state`. */
const TOP_LEVEL_V11 = new Set([
  'event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures',
  'depth', 'prev_events', 'auth_events', 'origin_server_ts',
]);

/** Content keys that survive redaction, per event type; `'all'` keeps the whole content. */
const CONTENT_V10: Record<string, readonly string[]> = {
  'm.room.member': ['membership', 'join_authorised_via_users_server'],
  'm.room.create': ['creator'],
  'm.room.join_rules': ['join_rule', 'allow'],
  'm.room.power_levels': ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'],
  'm.room.history_visibility': ['history_visibility'],
};
const CONTENT_V11: Record<string, readonly string[] | 'all'> = {
  // plus third_party_invite.signed, handled below
  'm.room.member': ['membership', 'join_authorised_via_users_server'],
  'm.room.create': 'all',
  'm.room.join_rules': ['join_rule', 'allow'],
  'm.room.power_levels': [
    'ban', 'events', 'events_default', 'invite', 'kick', 'redact', 'state_default', 'users', 'users_default',
  ],
  'm.room.history_visibility': ['history_visibility'],
  'm.room.redaction': ['redacts'],
};

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const pick = (obj: Json, keys: Iterable<string>): Json => {
  const out: Json = {};
  for (const k of keys) if (Object.hasOwn(obj, k)) out[k] = obj[k];
  return out;
};

/**
 * The redaction algorithm of the room version: strips every top-level key not on the
 * version's list and every content key not allowed for the event's type. The result always
 * has a `content` object (as Synapse does), so a redacted copy hashes the same everywhere.
 * Kept values are deep copies.
 */
export function redact<T extends object>(event: T, roomVersion: RoomVersionId): Json {
  const ev = event as Json;
  const v11 = roomVersion !== '10'; // v12 keeps v11's algorithm
  const top = v11 ? TOP_LEVEL_V11 : TOP_LEVEL_V10;
  const out: Json = {};
  for (const k of Object.keys(ev)) if (top.has(k)) out[k] = ev[k];

  const content = isObject(ev.content) ? ev.content : {};
  const type = typeof ev.type === 'string' ? ev.type : '';
  const rules = v11 ? CONTENT_V11 : CONTENT_V10;
  // hasOwn: an event type such as "constructor" must not find Object.prototype members.
  const allowed = Object.hasOwn(rules, type) ? rules[type]! : [];
  let newContent: Json = allowed === 'all' ? { ...content } : pick(content, allowed);
  if (v11 && type === 'm.room.member') {
    // v11 keeps only the `signed` part of a third-party invite (needed to re-run the auth rules).
    const tpi = content.third_party_invite;
    if (isObject(tpi) && Object.hasOwn(tpi, 'signed')) {
      newContent = { ...newContent, third_party_invite: { signed: tpi.signed } };
    }
  }
  out.content = newContent;
  return structuredClone(out);
}

// ---------------------------------------------------------------------------------------------
// Hashes and ids
// ---------------------------------------------------------------------------------------------

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest();

/**
 * SHA-256 of the complete event without `unsigned`, `signatures` and `hashes`. The event is
 * hashed as given: pass the federation form (room versions 10/11 PDUs carry no `event_id`).
 */
export function computeContentHash(pdu: object): Buffer {
  const { unsigned: _u, signatures: _s, hashes: _h, ...rest } = pdu as Json;
  return sha256(canonicalJsonBytes(rest));
}

/**
 * SHA-256 of the redacted event without `signatures` and `unsigned`. An `event_id` member is
 * dropped too: in room versions 4+ the id is derived from this hash, so it can never be part
 * of its input, and dropping it lets a RoomEvent (id attached locally) be passed as is.
 */
export function computeReferenceHash(pdu: object, roomVersion: RoomVersionId): Buffer {
  const { signatures: _s, unsigned: _u, event_id: _e, ...rest } = redact(pdu, roomVersion);
  return sha256(canonicalJsonBytes(rest));
}

/** `$` + URL-safe unpadded base64 of the reference hash (v4-event-ids). */
export function eventIdFor(pdu: object, roomVersion: RoomVersionId): string {
  return `$${encodeBase64Url(computeReferenceHash(pdu, roomVersion))}`;
}

// ---------------------------------------------------------------------------------------------
// Signing and verification
// ---------------------------------------------------------------------------------------------

/**
 * Adds the content hash (replacing any `hashes`) and this server's signature over the
 * redacted event; existing signatures from other servers are kept, `unsigned` is carried
 * over. Returns a new object.
 */
export function signEvent<T extends object>(
  pdu: T,
  roomVersion: RoomVersionId,
  serverName: string,
  keyId: string,
  privateKey: KeyObject,
): Omit<T, 'hashes' | 'signatures'> & { hashes: { sha256: string }; signatures: Signatures } {
  const hashed = { ...pdu, hashes: { sha256: encodeBase64(computeContentHash(pdu)) } };
  const signed = signJson(redact(hashed, roomVersion), serverName, keyId, privateKey);
  return { ...hashed, signatures: signed.signatures };
}

/** Whether the signature by `serverName`/`keyId` on the redacted event verifies. */
export function verifyEventSignature(
  pdu: object,
  roomVersion: RoomVersionId,
  serverName: string,
  keyId: string,
  publicKeyBase64: string,
): boolean {
  try {
    return verifyJsonSignature(redact(pdu, roomVersion), serverName, keyId, publicKeyBase64);
  } catch {
    return false;
  }
}

/** Whether `hashes.sha256` decodes to the event's content hash (padding tolerated, as the spec asks). */
export function checkContentHash(pdu: object): boolean {
  const hashes = (pdu as Json).hashes;
  if (!isObject(hashes) || typeof hashes.sha256 !== 'string') return false;
  try {
    return decodeBase64(hashes.sha256).equals(computeContentHash(pdu));
  } catch {
    return false;
  }
}

/**
 * Both receipt checks, reported separately because the spec treats them differently: a bad
 * signature drops the event, while a bad content hash (with a good signature) means the
 * event must be replaced by its redacted form.
 */
export function verifyEventHashAndSignature(
  pdu: object,
  roomVersion: RoomVersionId,
  serverName: string,
  keyId: string,
  publicKeyBase64: string,
): { signatureValid: boolean; hashValid: boolean } {
  const signatureValid = verifyEventSignature(pdu, roomVersion, serverName, keyId, publicKeyBase64);
  return { signatureValid, hashValid: checkContentHash(pdu) };
}

// ---------------------------------------------------------------------------------------------
// Format checks
// ---------------------------------------------------------------------------------------------

export const MAX_PDU_BYTES = 65_536;
export const MAX_ID_BYTES = 255;
/** Limits from the PDU schema (auth_events_prev_events_v4). */
export const MAX_AUTH_EVENTS = 10;
export const MAX_PREV_EVENTS = 20;

/**
 * A PDU that breaks the room version's event format. Over federation such events are dropped;
 * on the client API it answers 400 M_BAD_JSON or 413 M_TOO_LARGE, hence a MatrixError.
 */
export class EventFormatError extends MatrixError {
  constructor(message: string, errcode: 'M_BAD_JSON' | 'M_TOO_LARGE' = 'M_BAD_JSON') {
    super(errcode === 'M_TOO_LARGE' ? 413 : 400, errcode, message);
    this.name = 'EventFormatError';
  }
}

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** The whole event, signatures and unsigned included, is at most 65,536 bytes of canonical JSON. */
export function checkEventSize(pdu: object): void {
  const size = canonicalJsonBytes(pdu).length;
  if (size > MAX_PDU_BYTES) {
    throw new EventFormatError(`event is ${size} bytes as canonical JSON; the limit is ${MAX_PDU_BYTES}`, 'M_TOO_LARGE');
  }
}

function idField(ev: Json, key: string, sigil: string, required: boolean, serverName = sigil !== '$'): void {
  const v = ev[key];
  if (v === undefined && !required) return;
  if (typeof v !== 'string') throw new EventFormatError(`'${key}' must be a string`);
  if (bytes(v) > MAX_ID_BYTES) throw new EventFormatError(`'${key}' exceeds ${MAX_ID_BYTES} bytes`, 'M_TOO_LARGE');
  if (!v.startsWith(sigil)) throw new EventFormatError(`'${key}' must start with '${sigil}'`);
  if (serverName && !v.includes(':')) throw new EventFormatError(`'${key}' must contain a server name`);
}

function eventIdList(ev: Json, key: string, max: number): void {
  const v = ev[key];
  if (!Array.isArray(v)) throw new EventFormatError(`'${key}' must be an array of event ids`);
  if (v.length > max) throw new EventFormatError(`'${key}' has ${v.length} entries; at most ${max} are allowed`);
  for (const id of v) {
    if (typeof id !== 'string' || !id.startsWith('$') || bytes(id) > MAX_ID_BYTES) {
      throw new EventFormatError(`'${key}' must contain only event ids`);
    }
  }
}

/**
 * Checks the structure of a room version 10/11/12 PDU (schemas pdu_v6 / pdu_v11 / pdu_v12, pdu_base) and
 * the per-key size limits; throws EventFormatError on the first problem. Integer ranges are
 * already guaranteed when the JSON came through parseStrictJson; they are checked again for
 * locally built events.
 */
export function checkEventShape(pdu: unknown, roomVersion: RoomVersionId): void {
  if (!isObject(pdu)) throw new EventFormatError('an event must be a JSON object');
  const ev = pdu;
  if (typeof ev.type !== 'string') throw new EventFormatError("'type' must be a string");
  if (bytes(ev.type) > MAX_ID_BYTES) throw new EventFormatError(`'type' exceeds ${MAX_ID_BYTES} bytes`, 'M_TOO_LARGE');
  if (ev.state_key !== undefined) {
    if (typeof ev.state_key !== 'string') throw new EventFormatError("'state_key' must be a string");
    if (bytes(ev.state_key) > MAX_ID_BYTES) {
      throw new EventFormatError(`'state_key' exceeds ${MAX_ID_BYTES} bytes`, 'M_TOO_LARGE');
    }
  }
  idField(ev, 'sender', '@', true);
  if (roomIdIsCreateHash(roomVersion)) {
    // v12: room ids are `!` + a hash (no server name); the create event has none at all (an
    // event that has one anyway fails auth rule 1.2, so it is kept to be rejected there).
    const isCreate = isImpliedRoomCreate({ type: ev.type, state_key: ev.state_key as string | undefined }, roomVersion);
    idField(ev, 'room_id', '!', !isCreate, false);
  } else {
    idField(ev, 'room_id', '!', true);
  }
  idField(ev, 'event_id', '$', false);
  if (!isObject(ev.content)) throw new EventFormatError("'content' must be an object");
  if (!Number.isSafeInteger(ev.origin_server_ts)) throw new EventFormatError("'origin_server_ts' must be an integer");
  if (!Number.isSafeInteger(ev.depth) || (ev.depth as number) < 0) {
    throw new EventFormatError("'depth' must be a non-negative integer");
  }
  if (!isObject(ev.hashes) || typeof ev.hashes.sha256 !== 'string') {
    throw new EventFormatError("'hashes' must be an object with a string 'sha256'");
  }
  if (!isObject(ev.signatures) || !Object.values(ev.signatures).every(isStringMap)) {
    throw new EventFormatError("'signatures' must map server names to objects of key id -> signature");
  }
  if (ev.unsigned !== undefined && !isObject(ev.unsigned)) throw new EventFormatError("'unsigned' must be an object");
  eventIdList(ev, 'auth_events', MAX_AUTH_EVENTS);
  eventIdList(ev, 'prev_events', MAX_PREV_EVENTS);
  // pdu_v6 defines a top-level `redacts`; v11 moved it into content (v11-event-format).
  if (roomVersion === '10' && ev.redacts !== undefined) idField(ev, 'redacts', '$', false);
  if (roomVersion !== '10' && ev.type === 'm.room.redaction' && ev.content.redacts !== undefined) {
    if (typeof ev.content.redacts !== 'string') throw new EventFormatError("'content.redacts' must be a string");
  }
}

const isStringMap = (v: unknown) => isObject(v) && Object.values(v).every((s) => typeof s === 'string');

/** Shape, then size: the full check for an event received over federation or built locally. */
export function checkEvent(pdu: unknown, roomVersion: RoomVersionId): void {
  checkEventShape(pdu, roomVersion);
  checkEventSize(pdu as object);
}
