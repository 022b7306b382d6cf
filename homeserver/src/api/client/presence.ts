import type { Area } from '../../app.js';
import { MatrixError, badJson, missingParam } from '../../core/errors.js';
import { PRESENCE_STATES } from '../../services/presence.js';
import type { PresenceState } from '../../storage/presence.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { rateLimit } from '../middleware/ratelimit.js';

/** `GET/PUT /presence/{userId}/status` (spec: "Presence"). */
export const presenceArea: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'presence', config.rateLimits.client);

  router.get('/presence/:userId/status', auth, async (ctx) => {
    ctx.body = await services.presence.get(requesterOf(ctx).userId, ctx.params.userId!);
  });

  router.put('/presence/:userId/status', auth, limit, async (ctx) => {
    const body = ctx.request.json;
    const presence = body.presence;
    if (presence === undefined || presence === null) throw missingParam('presence');
    if (typeof presence !== 'string' || !PRESENCE_STATES.includes(presence as PresenceState)) {
      throw new MatrixError(400, 'M_INVALID_PARAM', `'presence' must be one of ${PRESENCE_STATES.join(', ')}`);
    }
    const statusMsg = body.status_msg;
    if (statusMsg !== undefined && statusMsg !== null && typeof statusMsg !== 'string') throw badJson("'status_msg' must be a string");
    await services.presence.set(requesterOf(ctx).userId, ctx.params.userId!, presence as PresenceState, statusMsg ?? undefined);
    ctx.body = {};
  });
};

/** Requests that count as the user's activity (spec: "a pro-active event", e.g. sending a message). */
const PRO_ACTIVE = /\/(?:rooms\/[^/]+\/(?:send|state|redact|receipt|read_markers|typing|join|invite|leave|kick|ban|unban|knock|forget)\/?|join\/|knock\/|createRoom$)/;

/**
 * Records presence activity after a successful pro-active request (a send, a receipt, a join...).
 * Listed first among the client areas: its `use` wraps every route of the router, and it looks at
 * the requester the route's own auth set once the route has answered. Cheap: a regex, and the
 * presence service writes at most every so often per user.
 */
export const presenceActivityArea: Area = (router, { services }) => {
  router.use(async function presenceActivity(ctx, next) {
    await next();
    const r = ctx.state.requester;
    if (r && (ctx.method === 'PUT' || ctx.method === 'POST') && ctx.status < 300 && PRO_ACTIVE.test(ctx.path)) void services.presence.activity(r.userId);
  });
};
