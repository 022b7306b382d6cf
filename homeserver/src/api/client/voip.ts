import type { Area } from '../../app.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { rateLimit } from '../middleware/ratelimit.js';

/** VoIP (voip.yaml): TURN credentials for 1:1 calls. */
export const voipArea: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'turn_server', config.rateLimits.client);

  // Without a TURN server: `{}` (as Synapse answers). matrix-js-sdk then simply uses no TURN
  // server and asks again later; a 404 or 403 would read as an error.
  router.get('/voip/turnServer', auth, limit, (ctx) => {
    ctx.body = services.calls.turn.credentials(requesterOf(ctx).userId) ?? {};
  });
};
