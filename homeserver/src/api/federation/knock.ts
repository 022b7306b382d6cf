/** make_knock/send_knock (spec: knocks.yaml), resident side. */
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';
import { queryList, strictBody } from './params.js';

export const knockArea: FederationArea = (router, deps) => {
  const { joins } = deps.services.federationRooms;
  router.get('/v1/make_knock/:roomId/:userId', async (ctx) => {
    ctx.body = await joins.make(originOf(ctx), ctx.params.roomId!, ctx.params.userId!, 'knock', queryList(ctx.query.ver));
  });
  router.put('/v1/send_knock/:roomId/:eventId', async (ctx) => {
    ctx.body = await joins.send(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!, strictBody(ctx), 'knock');
  });
};
