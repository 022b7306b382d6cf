/** GET /_matrix/federation/v1/user/devices/{userId} (spec: server-server API, "Device Management"). */
import { invalidParam, notFound } from '../../core/errors.js';
import { parseUserId } from '../../core/ids.js';
import * as users from '../../storage/users.js';
import type { FederationArea } from './index.js';

export const userDevicesArea: FederationArea = (router, deps) => {
  router.get('/v1/user/devices/:userId', async (ctx) => {
    const userId = ctx.params.userId!;
    const parsed = parseUserId(userId);
    if (!parsed) throw invalidParam('Invalid user id');
    if (parsed.serverName !== deps.config.serverName) throw invalidParam('The user is not hosted on this server');
    if (!(await users.getUser(deps.db, userId))) throw notFound('Unknown user');
    ctx.body = await deps.services.federationMessaging.devices.userDevices(userId);
  });
};
