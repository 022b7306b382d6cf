/**
 * `PUT /v2/invite/{roomId}/{eventId}` (spec: invites-v2.yaml) and the deprecated v1 (invites-v1.yaml:
 * the body is the event itself, the answer `[200, {event}]`): sign an invite of one of our users.
 */
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';
import { strictBody } from './params.js';

export const invitesArea: FederationArea = (router, deps) => {
  const { invites } = deps.services.federationRooms;
  router.put('/v2/invite/:roomId/:eventId', async (ctx) => {
    ctx.body = await invites.receiveInvite(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!, strictBody(ctx));
  });
  router.put('/v1/invite/:roomId/:eventId', async (ctx) => {
    const event = strictBody(ctx);
    const roomVersion = await invites.v1RoomVersion(ctx.params.roomId!, event);
    ctx.body = [200, await invites.receiveInvite(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!, { event, room_version: roomVersion })];
  });
};
