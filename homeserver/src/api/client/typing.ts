import type { Area } from '../../app.js';
import { badJson, missingParam } from '../../core/errors.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { rateLimit } from '../middleware/ratelimit.js';

/** `PUT /rooms/{roomId}/typing/{userId}` (spec: "Typing Notifications"). */
export const typingArea: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'typing', config.rateLimits.client);

  router.put('/rooms/:roomId/typing/:userId', auth, limit, async (ctx) => {
    const body = ctx.request.json;
    if (body.typing === undefined) throw missingParam('typing');
    if (typeof body.typing !== 'boolean') throw badJson("'typing' must be a boolean");
    const timeout = body.timeout;
    // Only meaningful with typing: true; a stop ignores it.
    if (body.typing && timeout !== undefined && (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0)) {
      throw badJson("'timeout' must be a non-negative integer (milliseconds)");
    }
    const { roomId, userId } = ctx.params as Record<string, string>;
    await services.typing.set(requesterOf(ctx).userId, roomId!, userId!, body.typing, timeout as number | undefined);
    ctx.body = {};
  });
};
