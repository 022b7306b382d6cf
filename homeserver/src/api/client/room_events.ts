import type { Area } from '../../app.js';
import { MatrixError, badJson } from '../../core/errors.js';
import { optionalString } from '../../core/json.js';
import { CanonicalJsonError, parseStrictJson } from '../../core/canonical_json.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { badDir } from '../../services/rooms/reader.js';
import { roomEventFilterParam } from './filter.js';

function intParam(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !/^\d{1,9}$/.test(v)) throw new MatrixError(400, 'M_INVALID_PARAM', `'${name}' must be a non-negative integer`);
  return Number(v);
}

/**
 * Event content as the room version allows it: canonical JSON forbids floats, integers beyond
 * ±(2^53-1) and duplicate keys, which JSON.parse would silently round or merge.
 */
function eventContent(ctx: { request: { json: Record<string, unknown>; jsonText: string } }): Record<string, unknown> {
  if (ctx.request.jsonText === '') return ctx.request.json;
  try {
    parseStrictJson(ctx.request.jsonText);
  } catch (err) {
    if (err instanceof CanonicalJsonError) throw badJson(`Event content is not valid canonical JSON: ${err.message}`);
    throw err;
  }
  return ctx.request.json;
}

function stringParam(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Sending and reading room events and state. */
export const roomEventsArea: Area = (router, deps) => {
  const { services } = deps;
  const auth = requireAuth(services.sessions);
  const rooms = services.rooms;

  router.put('/rooms/:roomId/send/:eventType/:txnId', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const { roomId, eventType, txnId } = ctx.params as Record<string, string>;
    if (Buffer.byteLength(eventType!) > 255) throw badJson('Event type is too long');
    const eventId = await rooms.timeline.send(
      roomId!,
      { type: eventType!, sender: r.userId, content: eventContent(ctx) },
      { deviceId: r.deviceId, txnId: txnId! },
    );
    ctx.body = { event_id: eventId };
  });

  // The state key may be empty: the route with and without a trailing key segment.
  const putState = async (ctx: Parameters<Parameters<typeof router.put>[1]>[0], stateKey: string) => {
    const r = requesterOf(ctx);
    const { roomId, eventType } = ctx.params as Record<string, string>;
    if (eventType === 'm.room.member') throw new MatrixError(403, 'M_FORBIDDEN', 'Use the membership endpoints (join, invite, leave, ...) to change membership');
    const eventId = await rooms.timeline.send(roomId!, { type: eventType!, sender: r.userId, content: eventContent(ctx), stateKey });
    ctx.body = { event_id: eventId };
  };
  router.put('/rooms/:roomId/state/:eventType', auth, (ctx) => putState(ctx, ''));
  router.put('/rooms/:roomId/state/:eventType/:stateKey', auth, (ctx) => putState(ctx, ctx.params.stateKey ?? ''));

  const viewer = (ctx: { state: { requester?: { userId: string; deviceId: string } } }) => {
    const r = requesterOf(ctx as never);
    return { userId: r.userId, deviceId: r.deviceId };
  };
  router.get('/rooms/:roomId/state', auth, async (ctx) => {
    ctx.body = await rooms.reader.state(viewer(ctx), ctx.params.roomId!);
  });
  const getState = async (ctx: Parameters<Parameters<typeof router.get>[1]>[0], key: string) => {
    const ev = await rooms.reader.stateEvent(viewer(ctx), ctx.params.roomId!, ctx.params.eventType!, key);
    ctx.body = ctx.query.format === 'event' ? ev : ev.content;
  };
  router.get('/rooms/:roomId/state/:eventType', auth, (ctx) => getState(ctx, ''));
  router.get('/rooms/:roomId/state/:eventType/:stateKey', auth, (ctx) => getState(ctx, ctx.params.stateKey ?? ''));

  router.get('/rooms/:roomId/members', auth, async (ctx) => {
    const chunk = await rooms.reader.members(viewer(ctx), ctx.params.roomId!, {
      at: stringParam(ctx.query.at),
      membership: stringParam(ctx.query.membership),
      notMembership: stringParam(ctx.query.not_membership),
    });
    ctx.body = { chunk };
  });
  router.get('/rooms/:roomId/joined_members', auth, async (ctx) => {
    ctx.body = { joined: await rooms.reader.joinedMembers(requesterOf(ctx).userId, ctx.params.roomId!) };
  });
  router.get('/rooms/:roomId/event/:eventId', auth, async (ctx) => {
    ctx.body = await rooms.reader.event(viewer(ctx), ctx.params.roomId!, ctx.params.eventId!);
  });
  router.get('/rooms/:roomId/context/:eventId', auth, async (ctx) => {
    const filter = roomEventFilterParam(ctx.query.filter);
    ctx.body = await rooms.reader.context(viewer(ctx), ctx.params.roomId!, ctx.params.eventId!, intParam(ctx.query.limit, 'limit', 10), filter);
  });
  router.get('/rooms/:roomId/messages', auth, async (ctx) => {
    const dir = ctx.query.dir ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw badDir();
    const filter = roomEventFilterParam(ctx.query.filter);
    ctx.body = await rooms.reader.messages(viewer(ctx), ctx.params.roomId!, {
      from: stringParam(ctx.query.from),
      to: stringParam(ctx.query.to),
      dir,
      limit: intParam(ctx.query.limit, 'limit', 10),
      filter,
    });
  });
  router.put('/rooms/:roomId/redact/:eventId/:txnId', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const { roomId, eventId, txnId } = ctx.params as Record<string, string>;
    const reason = optionalString(ctx.request.json, 'reason');
    const id = await rooms.timeline.redact(roomId!, r.userId, eventId!, reason, { deviceId: r.deviceId, txnId: txnId! });
    ctx.body = { event_id: id };
  });
};
