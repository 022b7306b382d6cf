import type { AppDeps, Area } from '../../app.js';
import { missingParam } from '../../core/errors.js';
import { optionalStringArray, optionalString, type JsonObject } from '../../core/json.js';
import type { Requester } from '../../services/auth/sessions.js';
import type { DeviceRow } from '../../services/devices.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { passwordStage } from './uia_stages.js';

/** The spec's `Device` object: optional fields are absent, not null. */
function clientDevice(d: DeviceRow): JsonObject {
  const out: JsonObject = { device_id: d.device_id };
  if (d.display_name !== null) out.display_name = d.display_name;
  if (d.last_seen_ip !== null) out.last_seen_ip = d.last_seen_ip;
  if (d.last_seen_ts !== null) out.last_seen_ts = Number(d.last_seen_ts);
  return out;
}

/**
 * UIA `m.login.password` before deleting devices. The endpoint string names the exact devices,
 * so a session completed for one deletion cannot be replayed to delete other devices.
 */
async function confirmDeletion(deps: AppDeps, r: Requester, endpoint: string, auth: unknown): Promise<string> {
  const result = await deps.services.uia.authenticate({
    endpoint,
    userId: r.userId,
    auth,
    flows: [['m.login.password']],
    validators: { 'm.login.password': passwordStage(deps, r.userId) },
  });
  return result.session;
}

export const devicesArea: Area = (router, deps) => {
  const { services } = deps;
  const auth = requireAuth(services.sessions);

  router.get('/devices', auth, async (ctx) => {
    const devices = await services.devices.list(requesterOf(ctx).userId);
    ctx.body = { devices: devices.map(clientDevice) };
  });

  router.get('/devices/:deviceId', auth, async (ctx) => {
    ctx.body = clientDevice(await services.devices.get(requesterOf(ctx).userId, ctx.params.deviceId!));
  });

  router.put('/devices/:deviceId', auth, async (ctx) => {
    // The length rule is the service's; any length parses here so that it answers M_INVALID_PARAM.
    const displayName = optionalString(ctx.request.json, 'display_name', Infinity);
    await services.devices.rename(requesterOf(ctx).userId, ctx.params.deviceId!, displayName);
    ctx.body = {};
  });

  router.delete('/devices/:deviceId', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const deviceId = ctx.params.deviceId!;
    const endpoint = `DELETE /devices/${encodeURIComponent(deviceId)}`;
    const session = await confirmDeletion(deps, r, endpoint, ctx.request.json.auth);
    await services.devices.delete(r.userId, [deviceId]);
    await services.uia.finish(session);
    ctx.body = {};
  });

  router.post('/delete_devices', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const body = ctx.request.json;
    const deviceIds = optionalStringArray(body, 'devices');
    if (deviceIds === undefined) throw missingParam('devices');
    const targets = [...new Set(deviceIds)].sort();
    const endpoint = `POST /delete_devices ${JSON.stringify(targets)}`;
    const session = await confirmDeletion(deps, r, endpoint, body.auth);
    await services.devices.delete(r.userId, targets);
    await services.uia.finish(session);
    ctx.body = {};
  });
};
