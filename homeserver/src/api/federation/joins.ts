/**
 * make_join/send_join and make_leave/send_leave, resident side (spec: joins-v1.yaml, joins-v2.yaml,
 * leaving-v1.yaml, leaving-v2.yaml). The deprecated v1 sends answer the v2 body as `[200, body]`.
 */
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';
import { queryList, strictBody } from './params.js';

export const joinsArea: FederationArea = (router, deps) => {
  const { joins } = deps.services.federationRooms;
  router.get('/v1/make_join/:roomId/:userId', async (ctx) => {
    const ver = queryList(ctx.query.ver);
    // Without `ver` the requesting server only supports room version 1 (spec).
    ctx.body = await joins.make(originOf(ctx), ctx.params.roomId!, ctx.params.userId!, 'join', ver.length > 0 ? ver : ['1']);
  });
  router.put('/v2/send_join/:roomId/:eventId', async (ctx) => {
    const omitMembers = ctx.query.omit_members === 'true';
    ctx.body = await joins.send(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!, strictBody(ctx), 'join', omitMembers);
  });
  router.put('/v1/send_join/:roomId/:eventId', async (ctx) => {
    // v1 predates partial-state joins: always the full state, without their fields.
    const { members_omitted: _m, servers_in_room: _s, ...body } = await joins.send(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!, strictBody(ctx), 'join');
    ctx.body = [200, body];
  });
  router.get('/v1/make_leave/:roomId/:userId', async (ctx) => {
    ctx.body = await joins.make(originOf(ctx), ctx.params.roomId!, ctx.params.userId!, 'leave');
  });
  router.put('/v2/send_leave/:roomId/:eventId', async (ctx) => {
    ctx.body = await joins.send(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!, strictBody(ctx), 'leave');
  });
  router.put('/v1/send_leave/:roomId/:eventId', async (ctx) => {
    ctx.body = [200, await joins.send(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!, strictBody(ctx), 'leave')];
  });
};
