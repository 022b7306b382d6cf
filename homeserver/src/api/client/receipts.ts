import type { Area } from '../../app.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { rateLimit } from '../middleware/ratelimit.js';

/**
 * `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}` (spec: "Receipts") and
 * `POST /rooms/{roomId}/read_markers` (spec: "Fully read markers").
 */
export const receiptsArea: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'receipts', config.rateLimits.client);

  router.post('/rooms/:roomId/receipt/:receiptType/:eventId', auth, limit, async (ctx) => {
    const { roomId, receiptType, eventId } = ctx.params as Record<string, string>;
    await services.receipts.receipt(requesterOf(ctx).userId, roomId!, receiptType!, eventId!, ctx.request.json.thread_id);
    ctx.body = {};
  });

  router.post('/rooms/:roomId/read_markers', auth, limit, async (ctx) => {
    await services.receipts.readMarkers(requesterOf(ctx).userId, ctx.params.roomId!, ctx.request.json);
    ctx.body = {};
  });
};
