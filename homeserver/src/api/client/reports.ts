import type { Area } from '../../app.js';
import { optionalString, requireString } from '../../core/json.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { rateLimit } from '../middleware/ratelimit.js';

const MAX_REASON = 4096;

/** Reporting content (report_content.yaml): events, rooms (v1.13) and users (v1.14). */
export const reportsArea: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'report', config.rateLimits.client);
  const reports = services.reports;

  router.post('/rooms/:roomId/report/:eventId', auth, limit, async (ctx) => {
    const reason = optionalString(ctx.request.json, 'reason', MAX_REASON);
    await reports.reportEvent(requesterOf(ctx).userId, ctx.params.roomId!, ctx.params.eventId!, reason);
    ctx.body = {};
  });
  router.post('/rooms/:roomId/report', auth, limit, async (ctx) => {
    await reports.reportRoom(requesterOf(ctx).userId, ctx.params.roomId!, requireString(ctx.request.json, 'reason', MAX_REASON));
    ctx.body = {};
  });
  router.post('/users/:userId/report', auth, limit, async (ctx) => {
    await reports.reportUser(requesterOf(ctx).userId, ctx.params.userId!, requireString(ctx.request.json, 'reason', MAX_REASON));
    ctx.body = {};
  });
};
