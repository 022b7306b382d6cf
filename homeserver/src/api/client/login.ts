import type { Area } from '../../app.js';
import { MatrixError, badJson, forbidden, limitExceeded, missingParam } from '../../core/errors.js';
import { isObject, optionalBoolean, optionalString, requireString, type JsonObject } from '../../core/json.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { enforceRateLimit } from '../middleware/ratelimit.js';

/** The user named by a login's `identifier` (or the deprecated top-level `user`). */
export function loginUser(body: JsonObject): string {
  const identifier = body.identifier;
  if (identifier !== undefined) {
    if (!isObject(identifier)) throw badJson("'identifier' must be an object");
    const type = requireString(identifier, 'type');
    if (type !== 'm.id.user') {
      throw new MatrixError(400, 'M_UNKNOWN', `Identifier type '${type}' is not supported`);
    }
    return requireString(identifier, 'user', 512);
  }
  const user = optionalString(body, 'user', 512);
  if (user === undefined) throw missingParam('identifier');
  return user;
}

export const loginArea: Area = (router, { services, bus, config }) => {
  router.get('/login', (ctx) => {
    ctx.body = { flows: [{ type: 'm.login.password' }] };
  });

  router.post('/login', async (ctx) => {
    await enforceRateLimit(bus.rateLimiter, 'login', config.rateLimits.login, ctx);
    const body = ctx.request.json;
    const type = requireString(body, 'type');
    if (type !== 'm.login.password') throw new MatrixError(400, 'M_UNKNOWN', `Login type '${type}' is not supported`);
    const userId = services.accounts.userIdFor(loginUser(body));
    const password = requireString(body, 'password', 512);
    const deviceId = optionalString(body, 'device_id', 255);
    const displayName = optionalString(body, 'initial_device_display_name', 512) ?? null;
    const refreshable = optionalBoolean(body, 'refresh_token') ?? false;
    const checked = await services.accounts.checkPassword(userId, password);
    if (!checked) {
      // Failures also count per account, so spreading guesses over many IPs does not help.
      const perAccount = await bus.rateLimiter.take(`login-failed:${userId}`, config.rateLimits.login);
      if (!perAccount.allowed) throw limitExceeded(perAccount.retryAfterMs);
      throw forbidden('Invalid username or password');
    }
    const result = await services.sessions.createLogin({ userId: checked, deviceId, displayName, refreshable });
    ctx.body = { ...result, home_server: config.serverName };
  });

  router.post('/refresh', async (ctx) => {
    const refreshToken = requireString(ctx.request.json, 'refresh_token', 1024);
    ctx.body = await services.sessions.refresh(refreshToken);
  });

  const auth = requireAuth(services.sessions);
  router.post('/logout', auth, async (ctx) => {
    const r = requesterOf(ctx);
    await services.sessions.logoutDevices(r.userId, [r.deviceId]);
    ctx.body = {};
  });
  router.post('/logout/all', auth, async (ctx) => {
    await services.sessions.logoutAll(requesterOf(ctx).userId);
    ctx.body = {};
  });
  router.get('/account/whoami', auth, (ctx) => {
    const r = requesterOf(ctx);
    ctx.body = { user_id: r.userId, device_id: r.deviceId, is_guest: false };
  });
};
