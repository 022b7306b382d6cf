/** `PUT /v2/invite/{roomId}/{eventId}` (spec: invites-v2.yaml): sign an invite of one of our users. */
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';
import { strictBody } from './params.js';

export const invitesArea: FederationArea = (router, deps) => {
  const { invites } = deps.services.federationRooms;
  router.put('/v2/invite/:roomId/:eventId', async (ctx) => {
    ctx.body = await invites.receiveInvite(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!, strictBody(ctx));
  });
};
