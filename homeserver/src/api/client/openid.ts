import type { Area } from '../../app.js';
import { forbidden } from '../../core/errors.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';

/** `POST /user/{userId}/openid/request_token` (openid.yaml): only for oneself. */
export const openidArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);
  const openid = deps.services.openid;

  router.post('/user/:userId/openid/request_token', auth, async (ctx) => {
    const r = requesterOf(ctx);
    if (ctx.params.userId !== r.userId) throw forbidden('You may only request OpenID tokens for yourself');
    ctx.body = await openid.requestToken(r.userId);
  });
};
