import type { Area } from '../../app.js';
import { forbidden, invalidParam } from '../../core/errors.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';

/**
 * Account data (spec: "Client Config", account-data.yaml) and room tags (spec: "Room Tagging",
 * tags.yaml). Only for the requesting user; delivered through /sync (`account_data`, and
 * `rooms.join.*.account_data`).
 */
export const accountDataArea: Area = (router, { services }) => {
  const auth = requireAuth(services.sessions);
  const data = services.accountData;
  /** The requester, who must be the `userId` of the path. */
  const self = (ctx: Parameters<typeof requesterOf>[0] & { params: Record<string, string | undefined> }, what: string): string => {
    const userId = requesterOf(ctx).userId;
    if (ctx.params.userId !== userId) throw forbidden(`Cannot access ${what} of other users`);
    return userId;
  };
  const room = (roomId: string | undefined): string => {
    if (!roomId || !/^![^:]+:.+$/.test(roomId)) throw invalidParam('Invalid room ID');
    return roomId;
  };

  router.put('/user/:userId/account_data/:type', auth, async (ctx) => {
    await data.put(self(ctx, 'account data'), '', ctx.params.type!, ctx.request.json);
    ctx.body = {};
  });
  router.get('/user/:userId/account_data/:type', auth, async (ctx) => {
    ctx.body = await data.get(self(ctx, 'account data'), '', ctx.params.type!);
  });
  router.put('/user/:userId/rooms/:roomId/account_data/:type', auth, async (ctx) => {
    const userId = self(ctx, 'account data');
    await data.put(userId, room(ctx.params.roomId), ctx.params.type!, ctx.request.json);
    ctx.body = {};
  });
  router.get('/user/:userId/rooms/:roomId/account_data/:type', auth, async (ctx) => {
    const userId = self(ctx, 'account data');
    ctx.body = await data.get(userId, room(ctx.params.roomId), ctx.params.type!);
  });
  router.get('/user/:userId/rooms/:roomId/tags', auth, async (ctx) => {
    const userId = self(ctx, 'tags');
    ctx.body = await data.tags(userId, room(ctx.params.roomId));
  });
  router.put('/user/:userId/rooms/:roomId/tags/:tag', auth, async (ctx) => {
    const userId = self(ctx, 'tags');
    await data.putTag(userId, room(ctx.params.roomId), ctx.params.tag!, ctx.request.json);
    ctx.body = {};
  });
  router.delete('/user/:userId/rooms/:roomId/tags/:tag', auth, async (ctx) => {
    const userId = self(ctx, 'tags');
    await data.deleteTag(userId, room(ctx.params.roomId), ctx.params.tag!);
    ctx.body = {};
  });
};
