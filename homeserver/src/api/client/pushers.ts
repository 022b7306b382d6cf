import type { Area } from '../../app.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';

/** Pushers (spec: GET /pushers, POST /pushers/set): the user's push gateway registrations. */
export const pushersArea: Area = (router, { services }) => {
  const auth = requireAuth(services.sessions);
  router.get('/pushers', auth, async (ctx) => {
    ctx.body = { pushers: await services.push.pushers.list(requesterOf(ctx).userId) };
  });
  router.post('/pushers/set', auth, async (ctx) => {
    const r = requesterOf(ctx);
    await services.push.pushers.set(r.userId, r.deviceId, ctx.request.json);
    ctx.body = {};
  });
};
