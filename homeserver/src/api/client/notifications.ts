import type { Area } from '../../app.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { DEFAULT_NOTIFICATIONS_LIMIT } from '../../services/push/notifications.js';
import { intParam, queryString } from './params.js';

/**
 * GET /notifications (spec: "Listing Notifications"): the events the user was notified about,
 * newest first, with whether each is read; `from` continues from `next_token`, `only=highlight`
 * keeps highlights.
 */
export const notificationsArea: Area = (router, { services }) => {
  const auth = requireAuth(services.sessions);
  router.get('/notifications', auth, async (ctx) => {
    const r = requesterOf(ctx);
    ctx.body = await services.push.notifications.list(
      { userId: r.userId, deviceId: r.deviceId },
      {
        from: queryString(ctx.query.from, 'from'),
        limit: intParam(ctx.query.limit, 'limit', DEFAULT_NOTIFICATIONS_LIMIT),
        only: queryString(ctx.query.only, 'only'),
      },
    );
  });
};
