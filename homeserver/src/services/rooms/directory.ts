import { MatrixError, forbidden, invalidParam, notFound } from '../../core/errors.js';
import { SERVER_NAME_RE } from '../../core/config.js';
import type { JsonObject } from '../../core/json.js';
import type { Database, Sql } from '../../storage/db.js';
import * as aliases from '../../storage/aliases.js';
import * as events from '../../storage/events.js';
import * as state from '../../storage/state.js';
import type { RoomVersionId } from './pdu.js';
import { parsePowerLevels, requiredPowerLevel, userPowerLevel } from './power_levels.js';
import { isWorldReadable } from './reader.js';
import { listPublicRooms, type PublicRoomsQuery, type PublicRoomsPage } from './public_rooms.js';
import type { RoomWriter, TimelineService } from './timeline.js';

/** Appendices, "Room aliases": the whole alias is at most 255 bytes. */
export const MAX_ALIAS_BYTES = 255;

/**
 * A room alias per the appendices: `#localpart:server_name`, the localpart any code points but
 * `:` and NUL (we also require it to be non-empty), at most 255 bytes in all.
 */
export function parseRoomAlias(alias: string): { localpart: string; serverName: string } | null {
  if (!alias.startsWith('#') || Buffer.byteLength(alias) > MAX_ALIAS_BYTES) return null;
  const colon = alias.indexOf(':');
  if (colon < 2) return null;
  const localpart = alias.slice(1, colon);
  const serverName = alias.slice(colon + 1);
  if (localpart.includes('\u0000') || !SERVER_NAME_RE.test(serverName)) return null;
  return { localpart, serverName };
}

const CANONICAL_ALIAS = 'm.room.canonical_alias';

/** `alias` and `alt_aliases` of m.room.canonical_alias content; with `strict`, wrong types are M_INVALID_PARAM. */
function aliasesIn(content: JsonObject, strict: boolean): string[] {
  const out: string[] = [];
  const { alias, alt_aliases: alt } = content;
  if (typeof alias === 'string' && alias !== '') out.push(alias);
  else if (strict && alias !== undefined && alias !== null && alias !== '') throw invalidParam("'alias' must be a room alias");
  if (Array.isArray(alt)) {
    for (const a of alt) {
      if (typeof a === 'string') out.push(a);
      else if (strict) throw invalidParam("'alt_aliases' must be an array of room aliases");
    }
  } else if (strict && alt !== undefined) throw invalidParam("'alt_aliases' must be an array of room aliases");
  return out;
}

/**
 * Room aliases (`/directory/room`) and the published room directory (`/directory/list/room`,
 * `/publicRooms`). Only this server's aliases can be created, changed or resolved until federation.
 */
export class DirectoryService {
  constructor(private readonly deps: { db: Database; timeline: TimelineService; serverName: string }) {}

  /** Checks that `alias` is a valid alias of this server (400 M_INVALID_PARAM otherwise). */
  private requireLocalAlias(alias: string): void {
    const parsed = parseRoomAlias(alias);
    if (!parsed) throw invalidParam('Room alias invalid');
    if (parsed.serverName !== this.deps.serverName) throw invalidParam(`Room alias ${alias} is not on this server`);
  }

  /** `PUT /directory/room/{roomAlias}`: the user must be in the room; a taken alias is 409 M_UNKNOWN. */
  async setAlias(userId: string, alias: string, roomId: string): Promise<void> {
    this.requireLocalAlias(alias);
    if (!roomId.startsWith('!')) throw invalidParam("'room_id' must be a room ID");
    const db = this.deps.db;
    if (!(await aliases.getRoom(db, roomId))) throw notFound('Room not found');
    if ((await state.getMembership(db, roomId, userId)) !== 'join') throw forbidden('You must be in the room to give it an alias');
    if (!(await aliases.insertAlias(db, alias, roomId, userId))) throw new MatrixError(409, 'M_UNKNOWN', `Room alias ${alias} already exists.`);
  }

  /** `GET /directory/room/{roomAlias}`. */
  async resolve(alias: string): Promise<{ room_id: string; servers: string[] }> {
    const parsed = parseRoomAlias(alias);
    if (!parsed) throw invalidParam('Room alias invalid');
    if (parsed.serverName !== this.deps.serverName) {
      throw notFound(`Room alias ${alias} not found (aliases of other servers need federation)`);
    }
    const found = await aliases.getAlias(this.deps.db, alias);
    if (!found) throw notFound(`Room alias ${alias} not found.`);
    return { room_id: found.room_id, servers: [this.deps.serverName] };
  }

  /**
   * `DELETE /directory/room/{roomAlias}`: by the alias's creator or a member who may change the
   * room's canonical alias. The alias also leaves the room's m.room.canonical_alias event when the
   * user may send one (the spec's recommendation; the alias is deleted either way).
   */
  async deleteAlias(userId: string, alias: string): Promise<void> {
    this.requireLocalAlias(alias);
    await this.deps.timeline.write(async (w) => {
      const found = await aliases.getAlias(w.tx, alias);
      if (!found) throw notFound(`Room alias ${alias} not found.`);
      const mayEdit = await mayEditDirectory(w.tx, found.room_id, userId);
      if (found.creator !== userId && !mayEdit) throw forbidden('You may not delete this alias');
      await aliases.deleteAlias(w.tx, alias);
      if (mayEdit) await dropFromCanonicalAlias(w, found.room_id, alias, userId);
    });
  }

  /** `GET /rooms/{roomId}/aliases`: for members, or anyone when the room is world-readable. */
  async localAliases(userId: string, roomId: string): Promise<string[]> {
    if (!roomId.startsWith('!')) throw invalidParam('Invalid room ID');
    const db = this.deps.db;
    const known = await aliases.getRoom(db, roomId);
    const member = known !== undefined && (await state.getMembership(db, roomId, userId)) === 'join';
    if (!member && !(known && (await isWorldReadable(db, roomId)))) throw forbidden('You are not a member of the room.');
    return aliases.aliasesOfRoom(db, roomId);
  }

  /** `GET /directory/list/room/{roomId}`. */
  async visibility(roomId: string): Promise<aliases.DirectoryVisibility> {
    const room = await aliases.getRoom(this.deps.db, roomId);
    if (!room) throw notFound('Room not found');
    return room.visibility;
  }

  /** `PUT /directory/list/room/{roomId}`: for members who may change the room's canonical alias (Synapse's rule). */
  async setVisibility(userId: string, roomId: string, visibility: aliases.DirectoryVisibility): Promise<void> {
    const db = this.deps.db;
    if (!(await aliases.getRoom(db, roomId))) throw notFound('Room not found');
    if (!(await mayEditDirectory(db, roomId, userId))) {
      throw forbidden("You need to be in the room with the power to change its canonical alias to change its directory visibility");
    }
    await aliases.setVisibility(db, roomId, visibility);
  }

  /** `GET`/`POST /publicRooms` for this server's directory. */
  publicRooms(query: PublicRoomsQuery): Promise<PublicRoomsPage> {
    return listPublicRooms(this.deps.db, query);
  }

  /**
   * `PUT state/m.room.canonical_alias`: aliases the event adds must be valid (M_INVALID_PARAM) and,
   * when they are ours, point to this room (M_BAD_ALIAS). Aliases of other servers cannot be checked
   * without federation and pass; aliases already in the current event are not checked again.
   */
  async checkCanonicalAlias(roomId: string, content: JsonObject): Promise<void> {
    const db = this.deps.db;
    const listed = aliasesIn(content, true);
    if (listed.length === 0) return;
    const current = (await events.currentStateEvents(db, roomId, [CANONICAL_ALIAS])).get(CANONICAL_ALIAS);
    const already = new Set(current && !current.redactedBy ? aliasesIn(current.event.content, false) : []);
    for (const alias of listed) {
      if (already.has(alias)) continue;
      const parsed = parseRoomAlias(alias);
      if (!parsed) throw invalidParam(`Invalid room alias: ${alias}`);
      if (parsed.serverName !== this.deps.serverName) continue;
      if ((await aliases.getAlias(db, alias))?.room_id !== roomId) {
        throw new MatrixError(400, 'M_BAD_ALIAS', `The alias ${alias} does not point to this room.`);
      }
    }
  }
}

/** Joined, with at least the level to send m.room.canonical_alias. */
async function mayEditDirectory(sql: Sql, roomId: string, userId: string): Promise<boolean> {
  const room = await aliases.getRoom(sql, roomId);
  if (!room || (await state.getMembership(sql, roomId, userId)) !== 'join') return false;
  const got = await events.currentStateEvents(sql, roomId, ['m.room.create', 'm.room.power_levels']);
  const pl = got.get('m.room.power_levels')?.event;
  const level = userPowerLevel(userId, pl, got.get('m.room.create')?.event, room.room_version as RoomVersionId);
  return level >= requiredPowerLevel(parsePowerLevels(pl?.content), CANONICAL_ALIAS, true);
}

/** Sends a new m.room.canonical_alias without `alias` where it was `alias` or listed it in `alt_aliases`. */
async function dropFromCanonicalAlias(w: RoomWriter, roomId: string, alias: string, sender: string): Promise<void> {
  const current = (await events.currentStateEvents(w.tx, roomId, [CANONICAL_ALIAS])).get(CANONICAL_ALIAS);
  if (!current || current.redactedBy) return;
  const content: JsonObject = { ...current.event.content };
  let changed = false;
  if (content.alias === alias) {
    delete content.alias;
    changed = true;
  }
  if (Array.isArray(content.alt_aliases) && content.alt_aliases.includes(alias)) {
    content.alt_aliases = content.alt_aliases.filter((a) => a !== alias);
    changed = true;
  }
  if (changed) await w.append(roomId, { type: CANONICAL_ALIAS, sender, stateKey: '', content });
}
