import type { Area } from '../../app.js';
import { MatrixError, badJson } from '../../core/errors.js';
import { isObject, optionalBoolean, optionalObject, optionalString, optionalStringArray, requireString, type JsonObject } from '../../core/json.js';
import { parseUserId } from '../../core/ids.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import type { Preset } from '../../services/rooms/create.js';
import type { MembershipAction } from '../../services/rooms/membership.js';
import { MAX_ID_BYTES } from '../../services/rooms/event_format.js';
import { CREATE_ROOM_LIMITS } from '../../services/rooms/create.js';
import { parseThreepidInvite, type ThreepidInvite } from '../../services/rooms/third_party_invites.js';
import { strictJsonBody } from './params.js';

const PRESETS = ['private_chat', 'trusted_private_chat', 'public_chat'];

function initialState(body: JsonObject): { type: string; state_key: string; content: JsonObject }[] | undefined {
  const v = body.initial_state;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw badJson("'initial_state' must be an array");
  return v.map((e) => {
    if (!isObject(e) || typeof e.type !== 'string' || e.type === '' || !isObject(e.content)) throw badJson('initial_state entries need type and content');
    const key = e.state_key ?? '';
    if (typeof key !== 'string') throw badJson("initial_state 'state_key' must be a string");
    if (Buffer.byteLength(e.type) > MAX_ID_BYTES || Buffer.byteLength(key) > MAX_ID_BYTES) {
      throw badJson(`initial_state types and state keys are at most ${MAX_ID_BYTES} bytes`);
    }
    return { type: e.type, state_key: key, content: e.content };
  });
}

/** `third_party_signed` of a join (third_party_signed.yaml): the identity server's proof. */
function thirdPartySigned(body: JsonObject): JsonObject | undefined {
  const v = body.third_party_signed;
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw badJson("'third_party_signed' must be an object");
  for (const key of ['sender', 'mxid', 'token']) if (typeof v[key] !== 'string') throw new MatrixError(400, 'M_MISSING_PARAM', `'third_party_signed' needs '${key}'`);
  if (!isObject(v.signatures)) throw new MatrixError(400, 'M_MISSING_PARAM', "'third_party_signed' needs 'signatures'");
  return v;
}

/** The 3PID form of `/invite` (third_party_membership.yaml): no `user_id`, and `medium`/`address`/`id_server`. */
const isThreepidInvite = (body: JsonObject) => body.user_id === undefined && (body.medium !== undefined || body.address !== undefined || body.id_server !== undefined);

function invite3pidList(body: JsonObject): ThreepidInvite[] | undefined {
  const v = body.invite_3pid;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw badJson("'invite_3pid' must be an array");
  if (v.length > CREATE_ROOM_LIMITS.invites) throw badJson(`At most ${CREATE_ROOM_LIMITS.invites} invite_3pid entries`);
  return v.map((e, i) => parseThreepidInvite(e, `invite_3pid[${i}]`));
}

/** createRoom, joining, leaving and the other membership endpoints. */
export const roomsArea: Area = (router, { services, db }) => {
  const auth = requireAuth(services.sessions);
  const rooms = services.rooms;

  router.post('/createRoom', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const b = strictJsonBody(ctx); // it carries event content (initial_state, creation_content, power levels)
    const visibility = optionalString(b, 'visibility');
    if (visibility !== undefined && visibility !== 'public' && visibility !== 'private') throw badJson("'visibility' must be public or private");
    const preset = optionalString(b, 'preset');
    if (preset !== undefined && !PRESETS.includes(preset)) throw badJson(`'preset' must be one of ${PRESETS.join(', ')}`);
    const invite = optionalStringArray(b, 'invite');
    for (const u of invite ?? []) if (!parseUserId(u)) throw new MatrixError(400, 'M_INVALID_PARAM', `Invalid user id in invite: ${u}`);
    const invite3pid = invite3pidList(b);
    const roomVersion = b.room_version;
    if (roomVersion !== undefined && typeof roomVersion !== 'string') throw badJson("'room_version' must be a string");
    const result = await rooms.creator.create(r.userId, {
      visibility: visibility as 'public' | 'private' | undefined,
      roomAliasName: optionalString(b, 'room_alias_name', 255),
      name: optionalString(b, 'name', 255),
      topic: optionalString(b, 'topic', 4096),
      invite,
      roomVersion,
      creationContent: optionalObject(b, 'creation_content'),
      initialState: initialState(b),
      preset: preset as Preset | undefined,
      isDirect: optionalBoolean(b, 'is_direct'),
      powerLevelContentOverride: optionalObject(b, 'power_level_content_override'),
      invite3pid,
    });
    ctx.body = { room_id: result.roomId, ...(result.alias ? { room_alias: result.alias } : {}) };
  });

  // `via` and `server_name` name servers to join a room of another server through (federation).
  const viaOf = (q: Record<string, string | string[] | undefined>) => [q.via, q.server_name].flatMap((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]));
  const join = async (userId: string, idOrAlias: string, body: JsonObject, via: string[]) => {
    const signed = thirdPartySigned(body);
    if (signed) return { room_id: await services.federatedThirdPartyInvites.joinWithProof(userId, idOrAlias, signed, optionalString(body, 'reason'), via) };
    return { room_id: await rooms.membership.join(userId, idOrAlias, optionalString(body, 'reason'), via) };
  };
  router.post('/join/:roomIdOrAlias', auth, async (ctx) => {
    ctx.body = await join(requesterOf(ctx).userId, ctx.params.roomIdOrAlias!, ctx.request.json, viaOf(ctx.query));
  });
  router.post('/rooms/:roomId/join', auth, async (ctx) => {
    ctx.body = await join(requesterOf(ctx).userId, ctx.params.roomId!, ctx.request.json, viaOf(ctx.query));
  });
  router.post('/knock/:roomIdOrAlias', auth, async (ctx) => {
    ctx.body = { room_id: await rooms.membership.knock(requesterOf(ctx).userId, ctx.params.roomIdOrAlias!, optionalString(ctx.request.json, 'reason'), viaOf(ctx.query)) };
  });
  router.post('/rooms/:roomId/leave', auth, async (ctx) => {
    await rooms.membership.leave(requesterOf(ctx).userId, ctx.params.roomId!, optionalString(ctx.request.json, 'reason'));
    ctx.body = {};
  });
  router.post('/rooms/:roomId/forget', auth, async (ctx) => {
    await rooms.membership.forget(requesterOf(ctx).userId, ctx.params.roomId!, db);
    ctx.body = {};
  });
  for (const action of ['invite', 'kick', 'ban', 'unban'] as MembershipAction[]) {
    router.post(`/rooms/:roomId/${action}`, auth, async (ctx) => {
      const b = ctx.request.json;
      if (action === 'invite' && isThreepidInvite(b)) {
        await services.thirdPartyInvites.invite(requesterOf(ctx).userId, ctx.params.roomId!, parseThreepidInvite(b, 'The body'));
        ctx.body = {};
        return;
      }
      await rooms.membership.act(action, requesterOf(ctx).userId, ctx.params.roomId!, requireString(b, 'user_id', 255), optionalString(b, 'reason'));
      ctx.body = {};
    });
  }
  router.get('/joined_rooms', auth, async (ctx) => {
    ctx.body = { joined_rooms: await rooms.reader.joinedRooms(requesterOf(ctx).userId) };
  });
};
