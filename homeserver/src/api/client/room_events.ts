import type { Area } from '../../app.js';
import { badJson, invalidParam } from '../../core/errors.js';
import { optionalString } from '../../core/json.js';
import { scopedTxnId } from '../../storage/events.js';
import { MAX_ID_BYTES } from '../../services/rooms/event_format.js';
import { requireAuth, requesterOf, type AuthState } from '../middleware/auth.js';
import { badDir } from '../../services/rooms/reader.js';
import { MEMBERSHIPS } from '../../services/rooms/membership.js';
import { roomEventFilterParam } from './filter.js';
import { enumParam, intParam, queryString, strictJsonBody } from './params.js';
import { CALL_MEMBER_EVENT_TYPE, checkCallMemberStateKey } from '../../services/calls/membership.js';

/** Transaction ids are opaque; this bound keeps their stored key well inside an index entry. */
const MAX_TXN_ID_BYTES = 1024;

/** Spec "Size limits": an event's type and state key are at most 255 bytes each. */
function checkTypeAndKey(type: string, key?: string): void {
  if (Buffer.byteLength(type) > MAX_ID_BYTES) throw invalidParam(`Event type is longer than ${MAX_ID_BYTES} bytes`);
  if (key !== undefined && Buffer.byteLength(key) > MAX_ID_BYTES) {
    throw invalidParam(`State key is longer than ${MAX_ID_BYTES} bytes`);
  }
}

/** A transaction id scoped to its endpoint, room and event type or target (spec: "Transaction identifiers"). */
function txn(deviceId: string, txnId: string, scope: string[]): { deviceId: string; txnId: string } {
  if (Buffer.byteLength(txnId) > MAX_TXN_ID_BYTES) throw invalidParam(`Transaction id is longer than ${MAX_TXN_ID_BYTES} bytes`);
  return { deviceId, txnId: scopedTxnId(JSON.stringify(scope), txnId) };
}

const viewer = (ctx: { state: AuthState }) => {
  const r = requesterOf(ctx);
  return { userId: r.userId, deviceId: r.deviceId };
};

/** Sending and reading room events and state. */
export const roomEventsArea: Area = (router, deps) => {
  const { services } = deps;
  const auth = requireAuth(services.sessions);
  const rooms = services.rooms;

  router.put('/rooms/:roomId/send/:eventType/:txnId', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const { roomId, eventType, txnId } = ctx.params as Record<string, string>;
    checkTypeAndKey(eventType!);
    const content = strictJsonBody(ctx);
    const t = txn(r.deviceId, txnId!, ['send', roomId!, eventType!]);
    if (eventType === 'm.room.redaction') {
      // Since v1.18 redactions may be sent here in every room version, `redacts` in content; they
      // are real redactions (the redact level applies), not events clients would merely obey.
      const target = content.redacts;
      if (typeof target !== 'string' || !target.startsWith('$')) throw badJson("'redacts' must be the ID of the event to redact");
      ctx.body = { event_id: await rooms.timeline.redact(roomId!, r.userId, target, optionalString(content, 'reason'), t) };
      return;
    }
    ctx.body = { event_id: await rooms.timeline.send(roomId!, { type: eventType!, sender: r.userId, content }, t) };
  });

  // The state key may be empty: the route with and without a trailing key segment.
  const putState = async (ctx: Parameters<Parameters<typeof router.put>[1]>[0], stateKey: string) => {
    const r = requesterOf(ctx);
    const { roomId, eventType } = ctx.params as Record<string, string>;
    checkTypeAndKey(eventType!, stateKey);
    const content = strictJsonBody(ctx);
    if (eventType === 'm.room.redaction') throw badJson('Redactions are not state events: use /redact or /send');
    if (eventType === 'm.room.member') {
      ctx.body = { event_id: await rooms.membership.setMember(r.userId, roomId!, stateKey, content) };
      return;
    }
    if (eventType === 'm.room.canonical_alias' && stateKey === '') await rooms.directory.checkCanonicalAlias(roomId!, content);
    if (eventType === CALL_MEMBER_EVENT_TYPE) checkCallMemberStateKey(r.userId, stateKey); // owned state keys (calls.md)
    ctx.body = { event_id: await rooms.timeline.send(roomId!, { type: eventType!, sender: r.userId, content, stateKey }) };
  };
  router.put('/rooms/:roomId/state/:eventType', auth, (ctx) => putState(ctx, ''));
  router.put('/rooms/:roomId/state/:eventType/:stateKey', auth, (ctx) => putState(ctx, ctx.params.stateKey ?? ''));

  router.get('/rooms/:roomId/state', auth, async (ctx) => {
    ctx.body = await rooms.reader.state(viewer(ctx), ctx.params.roomId!);
  });
  const getState = async (ctx: Parameters<Parameters<typeof router.get>[1]>[0], key: string) => {
    const format = enumParam(ctx.query.format, 'format', ['content', 'event'] as const) ?? 'content';
    const ev = await rooms.reader.stateEvent(viewer(ctx), ctx.params.roomId!, ctx.params.eventType!, key);
    ctx.body = format === 'event' ? ev : ev.content;
  };
  router.get('/rooms/:roomId/state/:eventType', auth, (ctx) => getState(ctx, ''));
  router.get('/rooms/:roomId/state/:eventType/:stateKey', auth, (ctx) => getState(ctx, ctx.params.stateKey ?? ''));

  router.get('/rooms/:roomId/members', auth, async (ctx) => {
    const chunk = await rooms.reader.members(viewer(ctx), ctx.params.roomId!, {
      at: queryString(ctx.query.at, 'at'),
      membership: enumParam(ctx.query.membership, 'membership', MEMBERSHIPS),
      notMembership: enumParam(ctx.query.not_membership, 'not_membership', MEMBERSHIPS),
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
      from: queryString(ctx.query.from, 'from'),
      to: queryString(ctx.query.to, 'to'),
      dir,
      limit: intParam(ctx.query.limit, 'limit', 10),
      filter,
    });
  });
  router.put('/rooms/:roomId/redact/:eventId/:txnId', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const { roomId, eventId, txnId } = ctx.params as Record<string, string>;
    const reason = optionalString(ctx.request.json, 'reason');
    const id = await rooms.timeline.redact(roomId!, r.userId, eventId!, reason, txn(r.deviceId, txnId!, ['redact', roomId!, eventId!]));
    ctx.body = { event_id: id };
  });
};
