import type { Area } from '../../app.js';
import { badJson } from '../../core/errors.js';
import { requireString, type JsonObject } from '../../core/json.js';
import type { ProfileField } from '../../services/profile.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { rateLimit } from '../middleware/ratelimit.js';

/** The field's value from a PUT body: missing → M_MISSING_PARAM, not a string (null too) → M_BAD_JSON. */
function fieldValue(body: JsonObject, field: ProfileField): string {
  if (body[field] === null) throw badJson(`'${field}' must be a string`);
  // The length rules are the service's (M_INVALID_PARAM); the body itself is size-capped.
  return requireString(body, field, Infinity);
}

/** Profile look-ups need no access token (the spec gives them no security requirement). */
export const profileArea: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'profile', config.rateLimits.client);

  /** Users of other servers: asked over federation (`query/profile`) when it is on. */
  const remote = (userId: string) => config.federation.enabled && userId.startsWith('@') && userId.includes(':') && !userId.endsWith(`:${config.serverName}`);
  router.get('/profile/:userId', async (ctx) => {
    const userId = ctx.params.userId!;
    ctx.body = remote(userId) ? await services.federationRooms.queries.profile(userId) : await services.profiles.get(userId);
  });

  for (const field of ['displayname', 'avatar_url'] as const) {
    router.get(`/profile/:userId/${field}`, async (ctx) => {
      const userId = ctx.params.userId!;
      ctx.body = remote(userId) ? await services.federationRooms.queries.profile(userId, field) : { [field]: await services.profiles.getField(userId, field) };
    });

    router.put(`/profile/:userId/${field}`, auth, limit, async (ctx) => {
      const value = fieldValue(ctx.request.json, field);
      await services.profiles.set(requesterOf(ctx), ctx.params.userId!, field, value);
      ctx.body = {};
    });
  }
};
