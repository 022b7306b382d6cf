import { MatrixError, badJson } from '../../core/errors.js';
import { randomString } from '../../core/ids.js';
import { type JsonObject } from '../../core/json.js';
import * as users from '../../storage/users.js';
import * as aliases from '../../storage/aliases.js';
import { SUPPORTED_ROOM_VERSIONS, type RoomVersionId } from './pdu.js';
import type { TimelineService, NewEvent } from './timeline.js';


export type Preset = 'private_chat' | 'trusted_private_chat' | 'public_chat';

export interface CreateRoomRequest {
  visibility?: 'public' | 'private';
  roomAliasName?: string;
  name?: string;
  topic?: string;
  invite?: string[];
  roomVersion?: string;
  creationContent?: JsonObject;
  initialState?: { type: string; state_key: string; content: JsonObject }[];
  preset?: Preset;
  isDirect?: boolean;
  powerLevelContentOverride?: JsonObject;
}

/** Limits on what one createRoom may carry, so a single request cannot build an unbounded room. */
export const CREATE_ROOM_LIMITS = { invites: 100, initialState: 100 };

/** createRoom: the events the spec lists, in its order, in one transaction. */
export class RoomCreator {
  constructor(
    private readonly deps: { timeline: TimelineService; serverName: string; defaultRoomVersion: RoomVersionId },
  ) {}

  async create(creator: string, req: CreateRoomRequest): Promise<{ roomId: string; alias?: string }> {
    const version = (req.roomVersion ?? this.deps.defaultRoomVersion) as RoomVersionId;
    if (!SUPPORTED_ROOM_VERSIONS.includes(version)) {
      throw new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', `Room version ${String(req.roomVersion)} is not supported`);
    }
    const invites = req.invite ?? [];
    if (invites.length > CREATE_ROOM_LIMITS.invites) throw badJson(`At most ${CREATE_ROOM_LIMITS.invites} invites`);
    if ((req.initialState?.length ?? 0) > CREATE_ROOM_LIMITS.initialState) {
      throw badJson(`At most ${CREATE_ROOM_LIMITS.initialState} initial_state events`);
    }
    const preset: Preset = req.preset ?? (req.visibility === 'public' ? 'public_chat' : 'private_chat');
    const roomId = `!${randomString(18)}:${this.deps.serverName}`;
    let alias: string | undefined;
    if (req.roomAliasName !== undefined) {
      alias = `#${req.roomAliasName}:${this.deps.serverName}`;
      if (!/^[^:\s#]+$/.test(req.roomAliasName) || Buffer.byteLength(alias) > 255) {
        throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid room alias name');
      }
    }

    await this.deps.timeline.write(async (w) => {
      const send = (ev: Omit<NewEvent, 'sender'>) => w.append(roomId, { ...ev, sender: creator });
      if (alias && (await aliases.getAlias(w.tx, alias))) throw new MatrixError(400, 'M_ROOM_IN_USE', 'Room alias already taken');
      await w.createRoomRow(roomId, version, creator);
      if (req.visibility === 'public') await w.tx.query(`update rooms set visibility = 'public' where room_id = ?`, [roomId]);

      const createContent: JsonObject = { ...(req.creationContent ?? {}), room_version: version };
      if (version === '10') createContent.creator = creator;
      else delete createContent.creator;
      await send({ type: 'm.room.create', stateKey: '', content: createContent });

      const profile = await users.getUser(w.tx, creator);
      const member: JsonObject = { membership: 'join' };
      if (profile?.displayname) member.displayname = profile.displayname;
      if (profile?.avatar_url) member.avatar_url = profile.avatar_url;
      await send({ type: 'm.room.member', stateKey: creator, content: member });

      const pl = defaultPowerLevels(creator);
      if (preset === 'trusted_private_chat') for (const u of invites) (pl.users as JsonObject)[u] = 100;
      await send({ type: 'm.room.power_levels', stateKey: '', content: mergeOverride(pl, req.powerLevelContentOverride) });

      if (alias) {
        await aliases.insertAlias(w.tx, alias, roomId, creator);
        await send({ type: 'm.room.canonical_alias', stateKey: '', content: { alias } });
      }
      const joinRule = preset === 'public_chat' ? 'public' : 'invite';
      await send({ type: 'm.room.join_rules', stateKey: '', content: { join_rule: joinRule } });
      await send({ type: 'm.room.history_visibility', stateKey: '', content: { history_visibility: 'shared' } });
      await send({
        type: 'm.room.guest_access',
        stateKey: '',
        content: { guest_access: preset === 'public_chat' ? 'forbidden' : 'can_join' },
      });
      for (const s of req.initialState ?? []) await send({ type: s.type, stateKey: s.state_key, content: s.content });
      if (req.name !== undefined) await send({ type: 'm.room.name', stateKey: '', content: { name: req.name } });
      if (req.topic !== undefined) await send({ type: 'm.room.topic', stateKey: '', content: { topic: req.topic } });
      for (const invitee of invites) {
        const content: JsonObject = { membership: 'invite' };
        if (req.isDirect) content.is_direct = true;
        await send({ type: 'm.room.member', stateKey: invitee, content });
      }
    });
    return { roomId, alias };
  }
}

/** The power levels a new room starts with (the spec's defaults, with the creator at 100). */
export function defaultPowerLevels(creator: string): JsonObject {
  return {
    users: { [creator]: 100 },
    users_default: 0,
    events: {
      'm.room.name': 50,
      'm.room.power_levels': 100,
      'm.room.history_visibility': 100,
      'm.room.canonical_alias': 50,
      'm.room.avatar': 50,
      'm.room.tombstone': 100,
      'm.room.server_acl': 100,
      'm.room.encryption': 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
    historical: 100,
    notifications: { room: 50 },
  };
}

/** `power_level_content_override` is applied on top of the defaults key by key (a shallow merge, as Synapse does). */
function mergeOverride(base: JsonObject, override: JsonObject | undefined): JsonObject {
  return override ? { ...base, ...override } : base;
}
