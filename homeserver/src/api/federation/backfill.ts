/** `GET /v1/backfill/{roomId}` (spec: backfill.yaml). */
import { missingParam } from '../../core/errors.js';
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';
import { queryInt, queryList } from './params.js';

export const backfillArea: FederationArea = (router, deps) => {
  const { reads } = deps.services.federationRooms;
  router.get('/v1/backfill/:roomId', async (ctx) => {
    const from = queryList(ctx.query.v);
    if (from.length === 0) throw missingParam('v');
    ctx.body = await reads.backfill(originOf(ctx), ctx.params.roomId!, from, queryInt(ctx.query.limit as string | undefined, 10));
  });
};
