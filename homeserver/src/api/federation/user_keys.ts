/** POST /_matrix/federation/v1/user/keys/query and /claim (spec: server-server API, "End-to-End Encryption"): our users only. */
import { badJson } from '../../core/errors.js';
import { isObject } from '../../core/json.js';
import type { FederationArea } from './index.js';

export const userKeysArea: FederationArea = (router, deps) => {
  const devices = () => deps.services.federationMessaging.devices;

  router.post('/v1/user/keys/query', async (ctx) => {
    const body = ctx.request.json;
    if (!isObject(body.device_keys)) throw badJson("'device_keys' must be an object");
    ctx.body = await devices().queryLocal(body);
  });

  router.post('/v1/user/keys/claim', async (ctx) => {
    const body = ctx.request.json;
    if (!isObject(body.one_time_keys)) throw badJson("'one_time_keys' must be an object");
    ctx.body = await devices().claimLocal(body);
  });
};
