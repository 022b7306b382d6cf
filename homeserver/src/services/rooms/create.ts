import { MatrixError, badJson, forbidden, invalidParam } from '../../core/errors.js';
import { parseUserId, randomString } from '../../core/ids.js';
import { type JsonObject } from '../../core/json.js';
import * as users from '../../storage/users.js';
import * as aliases from '../../storage/aliases.js';
import { SUPPORTED_ROOM_VERSIONS, stateKey, type RoomVersionId } from './pdu.js';
import type { TimelineService, NewEvent, RoomWriter } from './timeline.js';
import { parseRoomAlias } from './directory.js';
import { NAMED_LEVEL_DEFAULTS } from './power_levels.js';
import { additionalCreatorsProblem, roomIdIsCreateHash } from './room_v12.js';
import type { InviteRoomSummary, PreparedThreepidInvites, ThreepidInvite } from './third_party_invites.js';

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
  /** Third-party identifiers to invite (identity server look-ups happen before the room is written). */
  invite3pid?: ThreepidInvite[];
}

/** createRoom's side of third-party invites (services/rooms/third_party_invites.ts). */
export interface ThreepidInvitePreparer {
  prepareForNewRoom(creator: string, room: InviteRoomSummary, list: ThreepidInvite[]): Promise<PreparedThreepidInvites>;
}

/** Limits on what one createRoom may carry, so a single request cannot build an unbounded room. */
export const CREATE_ROOM_LIMITS = { invites: 100, initialState: 100 };

/** createRoom: the events the spec lists, in its order, in one transaction. */
export class RoomCreator {
  /** Set by services/index.ts; without it `invite_3pid` is refused. */
  thirdParty?: ThreepidInvitePreparer;

  constructor(
    private readonly deps: { timeline: TimelineService; serverName: string; defaultRoomVersion: RoomVersionId },
  ) {}

  async create(creator: string, req: CreateRoomRequest): Promise<{ roomId: string; alias?: string }> {
    const version = (req.roomVersion ?? this.deps.defaultRoomVersion) as RoomVersionId;
    if (!SUPPORTED_ROOM_VERSIONS.includes(version)) {
      throw new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', `Room version ${String(req.roomVersion)} is not supported`);
    }
    let invites = [...new Set(req.invite ?? [])];
    if (invites.length > CREATE_ROOM_LIMITS.invites) throw badJson(`At most ${CREATE_ROOM_LIMITS.invites} invites`);
    if (invites.includes(creator)) throw invalidParam('You cannot invite yourself');
    if ((req.initialState?.length ?? 0) > CREATE_ROOM_LIMITS.initialState) {
      throw badJson(`At most ${CREATE_ROOM_LIMITS.initialState} initial_state events`);
    }
    const preset: Preset = req.preset ?? (req.visibility === 'public' ? 'public_chat' : 'private_chat');
    // Room version 12: the room id is the create event's hash, known once that event is signed.
    const hashId = roomIdIsCreateHash(version);
    let roomId = hashId ? '' : `!${randomString(18)}:${this.deps.serverName}`;
    if (hashId) {
      const problem = additionalCreatorsProblem(req.creationContent ?? {});
      if (problem) throw badJson("'additional_creators' in creation_content must be an array of user IDs");
    }
    let alias: string | undefined;
    if (req.roomAliasName !== undefined) {
      alias = `#${req.roomAliasName}:${this.deps.serverName}`;
      // Stricter than the alias grammar, as Synapse is: no whitespace or '#' in a new alias.
      if (/[\s#]/.test(req.roomAliasName) || !parseRoomAlias(alias)) throw invalidParam('Invalid room alias name');
    }

    let threepid: PreparedThreepidInvites = { userIds: [], events: [] };
    if (req.invite3pid && req.invite3pid.length > 0) {
      if (!this.thirdParty) throw forbidden('Third-party invites are not available on this server');
      // The identity server is told the room id before the room is written; v12 has none yet.
      if (hashId) throw invalidParam('invite_3pid is not supported when creating a room version 12 room; invite after creating it');
      threepid = await this.thirdParty.prepareForNewRoom(creator, newRoomSummary(roomId, alias, preset, req), req.invite3pid);
      invites = [...new Set([...invites, ...threepid.userIds])];
    }
    try {
      await this.deps.timeline.write(async (w) => {
        if (alias && (await aliases.getAlias(w.tx, alias))) throw new MatrixError(400, 'M_ROOM_IN_USE', 'Room alias already taken');
        for (const u of invites) {
          if (parseUserId(u)?.serverName === this.deps.serverName && !(await users.getUser(w.tx, u))) throw invalidParam(`Unknown user ${u}`);
        }
        roomId = await this.writeRoom(w, { roomId, creator, version, preset, invites, alias, thirdPartyInvites: threepid.events }, req);
      });
    } catch (err) {
      // An event the request implies fails the auth rules (e.g. a power_level_content_override that
      // leaves the creator unable to send the preset's events): nothing of the room is kept.
      if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') {
        throw new MatrixError(400, 'M_INVALID_ROOM_STATE', `The room's initial state is invalid: ${err.message}`);
      }
      throw err;
    }
    return { roomId, alias };
  }

  /** The events of createRoom in the spec's order (create_room.yaml, steps 1-8); returns the room id. */
  private async writeRoom(
    w: RoomWriter,
    r: { roomId: string; creator: string; version: RoomVersionId; preset: Preset; invites: string[]; alias?: string; thirdPartyInvites: PreparedThreepidInvites['events'] },
    req: CreateRoomRequest,
  ): Promise<string> {
    const hashId = roomIdIsCreateHash(r.version);
    const createContent: JsonObject = { ...(req.creationContent ?? {}), room_version: r.version };
    if (r.version === '10') createContent.creator = r.creator;
    else delete createContent.creator;
    // v12: trusted_private_chat invitees become additional creators (create_room.yaml), not admins.
    const trustedCreators = hashId && r.preset === 'trusted_private_chat';
    if (trustedCreators && r.invites.length > 0) {
      const given = Array.isArray(createContent.additional_creators) ? (createContent.additional_creators as string[]) : [];
      createContent.additional_creators = [...new Set([...given, ...r.invites])];
    }
    if (hashId && Array.isArray(createContent.additional_creators)) {
      createContent.additional_creators = (createContent.additional_creators as string[]).filter((u) => u !== r.creator);
    }
    const createEvent = { type: 'm.room.create', stateKey: '', sender: r.creator, content: createContent };
    let roomId = r.roomId;
    if (hashId) {
      roomId = (await w.append('', createEvent, { version: r.version, creator: r.creator })).event.room_id;
    } else {
      await w.createRoomRow(roomId, r.version, r.creator);
      await w.append(roomId, createEvent);
    }
    if (req.visibility === 'public') await w.tx.query(`update rooms set visibility = 'public' where room_id = ?`, [roomId]);
    const send = (ev: Omit<NewEvent, 'sender'>) => w.append(roomId, { ...ev, sender: r.creator });

    const profile = await users.getUser(w.tx, r.creator);
    const member: JsonObject = { membership: 'join' };
    if (profile?.displayname) member.displayname = profile.displayname;
    if (profile?.avatar_url) member.avatar_url = profile.avatar_url;
    await send({ type: 'm.room.member', stateKey: r.creator, content: member });

    const pl = defaultPowerLevels(r.creator, r.version);
    if (r.preset === 'trusted_private_chat' && !trustedCreators) for (const u of r.invites) (pl.users as JsonObject)[u] = 100;
    await send({ type: 'm.room.power_levels', stateKey: '', content: mergeOverride(pl, req.powerLevelContentOverride) });

    if (r.alias) {
      await aliases.insertAlias(w.tx, r.alias, roomId, r.creator);
      await send({ type: 'm.room.canonical_alias', stateKey: '', content: { alias: r.alias } });
    }
    // initial_state takes precedence over the preset's events, and name/topic over initial_state:
    // what is overridden is not sent at all.
    const initial = req.initialState ?? [];
    const inInitial = new Set(initial.map((s) => stateKey(s.type, s.state_key)));
    const presetState: [string, JsonObject][] = [
      ['m.room.join_rules', { join_rule: r.preset === 'public_chat' ? 'public' : 'invite' }],
      ['m.room.history_visibility', { history_visibility: 'shared' }],
      ['m.room.guest_access', { guest_access: r.preset === 'public_chat' ? 'forbidden' : 'can_join' }],
    ];
    for (const [type, content] of presetState) if (!inInitial.has(stateKey(type, ''))) await send({ type, stateKey: '', content });
    const overridden = (s: { type: string; state_key: string }) =>
      s.state_key === '' && ((s.type === 'm.room.name' && req.name !== undefined) || (s.type === 'm.room.topic' && req.topic !== undefined));
    for (const s of initial) if (!overridden(s)) await send({ type: s.type, stateKey: s.state_key, content: s.content });
    if (req.name !== undefined) await send({ type: 'm.room.name', stateKey: '', content: { name: req.name } });
    if (req.topic !== undefined) await send({ type: 'm.room.topic', stateKey: '', content: topicContent(req.topic) });
    for (const invitee of r.invites) {
      const content: JsonObject = { membership: 'invite' };
      if (req.isDirect) content.is_direct = true;
      await send({ type: 'm.room.member', stateKey: invitee, content });
    }
    for (const t of r.thirdPartyInvites) await send({ type: 'm.room.third_party_invite', stateKey: t.stateKey, content: t.content });
    return roomId;
  }
}

/** What store-invite is told about a room that does not exist yet: the request's name, alias, avatar, join rule and type. */
function newRoomSummary(roomId: string, alias: string | undefined, preset: Preset, req: CreateRoomRequest): InviteRoomSummary {
  const initial = (type: string, key: string): string | undefined => {
    const v = req.initialState?.find((s) => s.type === type && s.state_key === '')?.content[key];
    return typeof v === 'string' ? v : undefined;
  };
  const roomType = req.creationContent?.type;
  return {
    roomId,
    alias,
    name: req.name ?? initial('m.room.name', 'name'),
    avatarUrl: initial('m.room.avatar', 'url'),
    joinRule: initial('m.room.join_rules', 'join_rule') ?? (preset === 'public_chat' ? 'public' : 'invite'),
    roomType: typeof roomType === 'string' ? roomType : undefined,
  };
}

/** A plain-text topic, with its `m.topic` text block (spec v1.15, m.room.topic). */
function topicContent(topic: string): JsonObject {
  return { topic, 'm.topic': { 'm.text': [{ body: topic, mimetype: 'text/plain' }] } };
}

/**
 * The power levels a new room starts with: the spec's defaults, with the creator at 100. In room
 * version 12 creators are not listed (their level is infinite) and `m.room.tombstone` must be
 * above `state_default` (create_room.yaml): 150, so only creators can upgrade by default.
 */
export function defaultPowerLevels(creator: string, version: RoomVersionId = '11'): JsonObject {
  const v12 = roomIdIsCreateHash(version);
  return {
    ...NAMED_LEVEL_DEFAULTS,
    users: v12 ? {} : { [creator]: 100 },
    events: {
      'm.room.name': 50,
      'm.room.power_levels': 100,
      'm.room.history_visibility': 100,
      'm.room.canonical_alias': 50,
      'm.room.avatar': 50,
      'm.room.tombstone': v12 ? 150 : 100,
      'm.room.server_acl': 100,
      'm.room.encryption': 100,
      'org.matrix.msc3401.call.member': 0, // members announce their own call membership (protocol-spec/calls.md)
    },
    historical: 100,
    notifications: { room: 50 },
  };
}

/** `power_level_content_override` is applied on top of the defaults key by key (a shallow merge, as Synapse does). */
function mergeOverride(base: JsonObject, override: JsonObject | undefined): JsonObject {
  return override ? { ...base, ...override } : base;
}
