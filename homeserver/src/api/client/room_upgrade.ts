import type { Area } from '../../app.js';
import { badJson } from '../../core/errors.js';
import { requireString } from '../../core/json.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';

/** `POST /rooms/{roomId}/upgrade` (room_upgrades.yaml). `additional_creators` counts for room version 12+ only. */
export const roomUpgradeArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);
  const upgrader = deps.services.roomUpgrades;

  router.post('/rooms/:roomId/upgrade', auth, async (ctx) => {
    const body = ctx.request.json;
    const newVersion = requireString(body, 'new_version', 64);
    const extra = body.additional_creators;
    if (extra !== undefined && !(Array.isArray(extra) && extra.every((u) => typeof u === 'string'))) throw badJson("'additional_creators' must be an array of user IDs");
    ctx.body = { replacement_room: await upgrader.upgrade(requesterOf(ctx).userId, ctx.params.roomId!, newVersion, (extra as string[] | undefined) ?? []) };
  });
};
