import type { Area } from '../../app.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';

/** Send-to-device messaging (spec: "Send-to-Device messaging", to_device.yaml); delivered by /sync `to_device`. */
export const toDeviceArea: Area = (router, { services }) => {
  const auth = requireAuth(services.sessions);
  router.put('/sendToDevice/:eventType/:txnId', auth, async (ctx) => {
    const r = requesterOf(ctx);
    await services.e2e.toDevice.send({ userId: r.userId, deviceId: r.deviceId }, ctx.params.eventType!, ctx.params.txnId!, ctx.request.json);
    ctx.body = {};
  });
};
