import type { Area } from '../../app.js';
import { MatrixError, forbidden } from '../../core/errors.js';
import { optionalBoolean, optionalString, requireString } from '../../core/json.js';
import { randomString } from '../../core/ids.js';
import { enforceRateLimit } from '../middleware/ratelimit.js';
import type { Stage, StageValidator } from '../../services/auth/uia.js';
import { emailStage } from './uia_stages.js';
import * as threepidStore from '../../storage/threepids.js';

export const registerArea: Area = (router, { services, bus, config, db }) => {
  const flows: Record<string, Stage[][]> = {
    open: [['m.login.dummy']],
    email: [['m.login.email.identity']],
    token: [['m.login.registration_token']],
  };

  router.post('/register', async (ctx) => {
    await enforceRateLimit(bus.rateLimiter, 'register', config.rateLimits.register, ctx);
    const kind = ctx.query.kind ?? 'user';
    if (kind === 'guest') throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guest access is disabled');
    if (kind !== 'user') throw new MatrixError(400, 'M_INVALID_PARAM', `Unknown kind '${String(kind)}'`);
    if (config.registration === 'closed') throw forbidden('Registration is disabled');
    const body = ctx.request.json;
    // No length cap here: an over-long name is M_INVALID_USERNAME (the 255-byte user id rule), as in /register/available.
    const requested = optionalString(body, 'username', Infinity);
    const localpart = requested === undefined ? randomString(12).toLowerCase() : requested.toLowerCase();
    const password = requireString(body, 'password', 512);
    const deviceId = optionalString(body, 'device_id', 255);
    const displayName = optionalString(body, 'initial_device_display_name', 512) ?? null;
    const inhibitLogin = optionalBoolean(body, 'inhibit_login') ?? false;
    const refreshable = optionalBoolean(body, 'refresh_token') ?? false;
    // Early answers before any UIA round trip, as Synapse gives them.
    await services.accounts.checkAvailable(localpart);
    services.accounts.checkPasswordStrength(password);

    const validators: Partial<Record<Stage, StageValidator>> = {
      'm.login.dummy': async () => ({}),
      'm.login.registration_token': async (auth) => {
        const token = requireString(auth, 'token', 64);
        if (!(await services.registrationTokens.isValid(token))) {
          throw new MatrixError(401, 'M_FORBIDDEN', 'Invalid registration token');
        }
        return { registrationToken: token };
      },
      'm.login.email.identity': emailStage(services, 'register'),
    };
    const auth = body.auth;
    const result = await services.uia.authenticate({
      endpoint: 'POST /register',
      userId: null,
      auth,
      flows: flows[config.registration]!,
      validators,
    });
    // The token a completed stage accepted, possibly in an earlier round of this session.
    const registrationToken = result.registrationToken;

    const response = await db.transaction(async (tx) => {
      if (registrationToken && !(await services.registrationTokens.consume(tx, registrationToken))) {
        throw new MatrixError(401, 'M_FORBIDDEN', 'Registration token has no uses left');
      }
      const userId = await services.accounts.create(tx, { localpart, password });
      if (result.threepid) {
        const t = result.threepid;
        if (!(await services.threepids.consume(tx, t.sid))) throw forbidden('This email validation was already used');
        if (!(await threepidStore.addThreepid(tx, { medium: t.medium, address: t.address, userId, validatedTs: t.validated_ts }))) {
          throw new MatrixError(400, 'M_THREEPID_IN_USE', 'That email address is already registered');
        }
      }
      if (inhibitLogin) return { user_id: userId, home_server: config.serverName };
      const login = await services.sessions.create(tx, { userId, deviceId, displayName, refreshable });
      return { ...login, home_server: config.serverName };
    });
    await services.uia.finish(result.session);
    ctx.body = response;
  });

  router.get('/register/available', async (ctx) => {
    await enforceRateLimit(bus.rateLimiter, 'register', config.rateLimits.register, ctx);
    const username = ctx.query.username;
    if (typeof username !== 'string' || username.length === 0) {
      throw new MatrixError(400, 'M_MISSING_PARAM', 'Missing parameter: username');
    }
    if (username.length > 512) throw new MatrixError(400, 'M_INVALID_USERNAME', 'User ID is too long');
    await services.accounts.checkAvailable(username.toLowerCase());
    ctx.body = { available: true };
  });
};

/** `/_matrix/client/v1/register/m.login.registration_token/validity` */
export const registerV1Area: Area = (router, { services, bus, config }) => {
  router.get('/register/m.login.registration_token/validity', async (ctx) => {
    await enforceRateLimit(bus.rateLimiter, 'register', config.rateLimits.register, ctx);
    const token = ctx.query.token;
    if (typeof token !== 'string' || token.length === 0) {
      throw new MatrixError(400, 'M_MISSING_PARAM', 'Missing parameter: token');
    }
    ctx.body = { valid: token.length <= 64 && (await services.registrationTokens.isValid(token)) };
  });
};
