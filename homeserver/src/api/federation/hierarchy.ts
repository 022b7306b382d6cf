/** `GET /v1/hierarchy/{roomId}` (spec: space_hierarchy.yaml; services/federation/hierarchy.ts). */
import { invalidParam } from '../../core/errors.js';
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';

export const hierarchyArea: FederationArea = (router, deps) => {
  const { hierarchy } = deps.services.federationRooms;
  router.get('/v1/hierarchy/:roomId', async (ctx) => {
    const suggested = ctx.query.suggested_only;
    if (suggested !== undefined && suggested !== 'true' && suggested !== 'false') throw invalidParam("'suggested_only' must be true or false");
    ctx.body = await hierarchy.serve(originOf(ctx), ctx.params.roomId!, suggested === 'true');
  });
};
