import { MatrixError, forbidden } from '../../core/errors.js';
import { randomString } from '../../core/ids.js';
import type { JsonObject } from '../../core/json.js';
import * as events from '../../storage/events.js';
import * as state from '../../storage/state.js';
import * as users from '../../storage/users.js';
import * as aliases from '../../storage/aliases.js';
import * as store from '../../storage/room_upgrade.js';
import type { StoredEvent } from '../../storage/events.js';
import { SUPPORTED_ROOM_VERSIONS, type RoomVersionId } from './pdu.js';
import type { RoomWriter, TimelineService } from './timeline.js';
import { isValidUserId, parsePowerLevels, requiredPowerLevel, userPowerLevel } from './power_levels.js';
import { roomIdIsCreateHash } from './room_v12.js';
import { clientContent } from './events_view.js';
import { defaultPowerLevels } from './create.js';

/**
 * State copied to the replacement room (spec: room upgrades, "Server behaviour" step 3, plus
 * pinned events as Synapse does). Power levels are sent first and the canonical alias after the
 * aliases move; member events never are (bans aside), and neither are non-`m.` events whose
 * meaning may depend on their sender.
 */
const COPIED_STATE = [
  'm.room.join_rules',
  'm.room.name',
  'm.room.topic',
  'm.room.history_visibility',
  'm.room.guest_access',
  'm.room.avatar',
  'm.room.encryption',
  'm.room.server_acl',
  'm.room.pinned_events',
];
/** Space relations keep a space's tree intact across an upgrade; these have many state keys. */
const COPIED_KEYED_STATE = ['m.space.child', 'm.space.parent'];

/** Bounds on what one upgrade copies: every copied event is a write in the upgrade's transaction. */
export const UPGRADE_LIMITS = { bans: 500, keyedState: 500 };

const PL = 'm.room.power_levels';
const TOMBSTONE = 'm.room.tombstone';
const CANONICAL_ALIAS = 'm.room.canonical_alias';

/**
 * `POST /rooms/{roomId}/upgrade` (spec: room upgrades). Everything happens in one write
 * transaction: the replacement room with `predecessor` and the old room's `type`, its copied
 * state and bans, the local aliases moved, the tombstone, and the old room's power levels
 * restricted. Either all of it is stored or none.
 */
export class RoomUpgrader {
  constructor(private readonly deps: { timeline: TimelineService; serverName: string }) {}

  /**
   * `additionalCreators`: for a room version 12 replacement, the creators besides the upgrader
   * (not copied from the old room, room_upgrades.yaml); ignored for earlier versions.
   */
  async upgrade(userId: string, oldRoomId: string, newVersion: string, additionalCreators: string[] = []): Promise<string> {
    if (!SUPPORTED_ROOM_VERSIONS.includes(newVersion as RoomVersionId)) {
      throw new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', `Room version ${newVersion} is not supported`);
    }
    const version = newVersion as RoomVersionId;
    const creators = roomIdIsCreateHash(version) ? [...new Set(additionalCreators)].filter((u) => u !== userId) : [];
    if (!creators.every((u) => typeof u === 'string' && isValidUserId(u))) throw new MatrixError(400, 'M_INVALID_PARAM', "'additional_creators' must be user IDs");
    // v12: the id is the new create event's hash, known once it is written.
    let newRoomId = roomIdIsCreateHash(version) ? '' : `!${randomString(18)}:${this.deps.serverName}`;
    await this.deps.timeline.write(async (w) => {
      // No existence oracle: an unknown room and a room the user is not in answer alike.
      const known = await aliases.getRoom(w.tx, oldRoomId);
      if (!known || (await state.getMembership(w.tx, oldRoomId, userId)) !== 'join') throw forbidden('You are not in this room');
      const oldVersion = known.room_version as RoomVersionId;
      const old = await events.currentStateEvents(w.tx, oldRoomId, ['m.room.create', PL, CANONICAL_ALIAS, ...COPIED_STATE]);
      const create = old.get('m.room.create');
      const oldPl = old.get(PL);
      const level = userPowerLevel(userId, oldPl?.event, create?.event, oldVersion);
      if (level < requiredPowerLevel(parsePowerLevels(oldPl && clientContent(oldPl, oldVersion)), TOMBSTONE, true)) {
        throw forbidden('You do not have the power to upgrade this room');
      }
      newRoomId = await this.writeReplacement(w, { userId, oldRoomId, oldVersion, newRoomId, version, old, oldLevel: level, creators });
      await this.moveAliases(w, userId, oldRoomId, newRoomId, old.get(CANONICAL_ALIAS), oldVersion);
      await w.append(oldRoomId, { type: TOMBSTONE, stateKey: '', sender: userId, content: { body: 'This room has been replaced', replacement_room: newRoomId } });
      await restrictOldRoom(w, userId, oldRoomId, oldPl, oldVersion);
      if (known.visibility === 'public') {
        await aliases.setVisibility(w.tx, newRoomId, 'public');
        await aliases.setVisibility(w.tx, oldRoomId, 'private');
      }
    });
    return newRoomId;
  }

  /** The new room: create (with predecessor), the upgrader's join, power levels, copied state, bans; returns its id. */
  private async writeReplacement(
    w: RoomWriter,
    r: { userId: string; oldRoomId: string; oldVersion: RoomVersionId; newRoomId: string; version: RoomVersionId; old: Map<string, StoredEvent>; oldLevel: number; creators: string[] },
  ): Promise<string> {
    const { userId } = r;
    let newRoomId = r.newRoomId;
    const v12 = roomIdIsCreateHash(r.version);
    const send = (type: string, stateKey: string, content: JsonObject) => w.append(newRoomId, { type, stateKey, sender: userId, content });
    const oldCreate = r.old.get('m.room.create');
    const oldCreateContent = oldCreate ? clientContent(oldCreate, r.oldVersion) : {};
    const lastId = await store.lastEventId(w.tx, r.oldRoomId);
    const createContent: JsonObject = { room_version: r.version, predecessor: { room_id: r.oldRoomId, ...(lastId ? { event_id: lastId } : {}) } };
    // v1.4: the room type (e.g. m.space) carries over; so does m.federate, as in Synapse.
    if (typeof oldCreateContent.type === 'string') createContent.type = oldCreateContent.type;
    if (typeof oldCreateContent['m.federate'] === 'boolean') createContent['m.federate'] = oldCreateContent['m.federate'];
    if (r.version === '10') createContent.creator = userId;
    if (v12 && r.creators.length > 0) createContent.additional_creators = r.creators;
    if (v12) {
      const created = await w.append('', { type: 'm.room.create', stateKey: '', sender: userId, content: createContent }, { version: r.version, creator: userId });
      newRoomId = created.event.room_id;
    } else {
      await w.createRoomRow(newRoomId, r.version, userId);
      await send('m.room.create', '', createContent);
    }

    const profile = await users.getUser(w.tx, userId);
    const member: JsonObject = { membership: 'join' };
    if (profile?.displayname) member.displayname = profile.displayname;
    if (profile?.avatar_url) member.avatar_url = profile.avatar_url;
    await send('m.room.member', userId, member);

    // The old power levels, with the upgrader raised for as long as the copy takes (they may
    // hold the tombstone level but not that of every copied event), then restored, like Synapse.
    const oldPl = r.old.get(PL);
    const plContent: JsonObject = oldPl ? { ...clientContent(oldPl, r.oldVersion) } : defaultPowerLevels(userId, r.version);
    if (v12) {
      // Creators have an infinite level and may not be listed (v12 auth rule 10.4).
      const users = { ...usersOf(plContent) };
      for (const c of [userId, ...r.creators]) delete users[c];
      plContent.users = users;
    }
    const needed = levelToCopy(plContent);
    const raised = !v12 && r.oldLevel < needed;
    await send(PL, '', raised ? { ...plContent, users: { ...usersOf(plContent), [userId]: needed } } : plContent);

    for (const type of COPIED_STATE) {
      const ev = r.old.get(type);
      if (!ev) continue;
      const content = clientContent(ev, r.oldVersion);
      if (Object.keys(content).length > 0) await send(type, '', content);
    }
    const keyed = (await store.currentStateOfTypes(w.tx, r.oldRoomId, COPIED_KEYED_STATE)).slice(0, UPGRADE_LIMITS.keyedState);
    const keyedEvents = await events.getEvents(w.tx, keyed.map((k) => k.event_id));
    for (const k of keyed) {
      const ev = keyedEvents.get(k.event_id);
      const content = ev ? clientContent(ev, r.oldVersion) : {};
      if (Object.keys(content).length > 0) await send(k.type, k.state_key, content);
    }
    const bans = await events.getEvents(w.tx, await store.banEventIds(w.tx, r.oldRoomId, UPGRADE_LIMITS.bans));
    for (const ban of bans.values()) {
      const target = ban.event.state_key;
      if (!target || target === userId) continue;
      const reason = clientContent(ban, r.oldVersion).reason;
      await send('m.room.member', target, { membership: 'ban', ...(typeof reason === 'string' ? { reason } : {}) });
    }
    if (raised) await send(PL, '', plContent);
    return newRoomId;
  }

  /**
   * Step 4: local aliases point to the new room; the canonical alias moves with them (removed
   * from the old room when the upgrader may change it there).
   */
  private async moveAliases(w: RoomWriter, userId: string, oldRoomId: string, newRoomId: string, canonical: StoredEvent | undefined, oldVersion: RoomVersionId): Promise<void> {
    await store.moveAliases(w.tx, oldRoomId, newRoomId);
    if (!canonical || canonical.redactedBy) return;
    const content = clientContent(canonical, oldVersion);
    if (content.alias === undefined && content.alt_aliases === undefined) return;
    const { alias, alt_aliases: alt, ...rest } = content;
    await w.append(newRoomId, { type: CANONICAL_ALIAS, stateKey: '', sender: userId, content: { ...rest, ...(alias !== undefined ? { alias } : {}), ...(alt !== undefined ? { alt_aliases: alt } : {}) } });
    await tryAppend(w, oldRoomId, { type: CANONICAL_ALIAS, stateKey: '', sender: userId, content: rest });
  }
}

/** Step 6: `events_default` and `invite` raised to max(50, users_default + 1), when the upgrader may. */
async function restrictOldRoom(w: RoomWriter, userId: string, roomId: string, pl: StoredEvent | undefined, version: RoomVersionId): Promise<void> {
  const content: JsonObject = pl ? { ...clientContent(pl, version) } : {};
  const parsed = parsePowerLevels(content);
  const restricted = Math.max(50, parsed.levels.users_default + 1);
  let changed = false;
  for (const key of ['events_default', 'invite'] as const) {
    if (parsed.levels[key] < restricted) {
      content[key] = restricted;
      changed = true;
    }
  }
  if (changed) await tryAppend(w, roomId, { type: PL, stateKey: '', sender: userId, content });
}

/**
 * An optional step: the auth rules may refuse it (e.g. the upgrader may send the tombstone but not
 * power levels). The rules run before anything is written, so the transaction goes on unharmed.
 */
async function tryAppend(w: RoomWriter, roomId: string, ev: { type: string; stateKey: string; sender: string; content: JsonObject }): Promise<void> {
  try {
    await w.append(roomId, ev);
  } catch (err) {
    if (!(err instanceof MatrixError && err.errcode === 'M_FORBIDDEN')) throw err;
  }
}

function usersOf(content: JsonObject): JsonObject {
  const u = content.users;
  return typeof u === 'object' && u !== null && !Array.isArray(u) ? (u as JsonObject) : {};
}

/** The level that can send every copied event and ban: the highest of state_default, ban and any per-event level. */
function levelToCopy(content: JsonObject): number {
  const pl = parsePowerLevels(content);
  return Math.max(pl.levels.state_default, pl.levels.ban, ...pl.events.values());
}
