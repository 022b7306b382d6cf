import type { Area } from '../app.js';
import { requireAuth, requesterOf } from './middleware/auth.js';
import { rateLimit } from './middleware/ratelimit.js';

/**
 * Hearth's call endpoints (protocol-spec/calls.md), outside the Matrix prefixes:
 * call tokens for the SFU, and the JWKS the SFU verifies them with.
 */
export const hearthCallsArea: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'call_token', config.rateLimits.client);
  const tokens = services.calls.tokens;

  // The body is `{}`; the JSON middleware has already refused anything that is not an object.
  router.post('/_hearth/client/v1/rooms/:roomId/call/token', auth, limit, async (ctx) => {
    const r = requesterOf(ctx);
    ctx.body = await tokens.issue(r.userId, r.deviceId, ctx.params.roomId!);
  });

  // Public keys only; the SFU caches them (jose's remote JWKS refetches on an unknown kid).
  router.get('/_hearth/call/v1/jwks.json', (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = tokens.jwks();
  });
};
