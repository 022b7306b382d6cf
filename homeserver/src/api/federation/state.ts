/** Room state at an event (spec: room_state.yaml, room_state_ids.yaml). */
import { missingParam } from '../../core/errors.js';
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';

export const stateArea: FederationArea = (router, deps) => {
  const { reads } = deps.services.federationRooms;
  const eventIdOf = (v: string | string[] | undefined) => {
    if (typeof v !== 'string') throw missingParam('event_id');
    return v;
  };
  router.get('/v1/state/:roomId', async (ctx) => {
    ctx.body = await reads.state(originOf(ctx), ctx.params.roomId!, eventIdOf(ctx.query.event_id));
  });
  router.get('/v1/state_ids/:roomId', async (ctx) => {
    ctx.body = await reads.stateIds(originOf(ctx), ctx.params.roomId!, eventIdOf(ctx.query.event_id));
  });
};
