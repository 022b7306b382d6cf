import type { Area } from '../../app.js';
import { invalidParam } from '../../core/errors.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { queryString } from './params.js';

/** An optional integer query parameter (up to 9 digits; the service checks the range). */
function optionalInt(v: unknown, name: string): number | undefined {
  const s = queryString(v, name);
  if (s === undefined) return undefined;
  if (!/^-?\d{1,9}$/.test(s)) throw invalidParam(`'${name}' must be an integer`);
  return Number(s);
}

/** `GET /v1/rooms/{roomId}/hierarchy` (space_hierarchy.yaml). */
export const hierarchyArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);
  const hierarchy = deps.services.hierarchy;

  router.get('/rooms/:roomId/hierarchy', auth, async (ctx) => {
    const suggested = queryString(ctx.query.suggested_only, 'suggested_only');
    if (suggested !== undefined && suggested !== 'true' && suggested !== 'false') throw invalidParam("'suggested_only' must be true or false");
    ctx.body = await hierarchy.hierarchy(requesterOf(ctx).userId, ctx.params.roomId!, {
      suggestedOnly: suggested === 'true',
      limit: optionalInt(ctx.query.limit, 'limit'),
      maxDepth: optionalInt(ctx.query.max_depth, 'max_depth'),
      from: queryString(ctx.query.from, 'from'),
    });
  });
};
