import type { Area } from '../../app.js';
import { MatrixError, badJson, forbidden, limitExceeded } from '../../core/errors.js';
import { optionalBoolean, requireString } from '../../core/json.js';
import { optionalAuth } from '../middleware/auth.js';
import { emailStage, passwordStage } from './uia_stages.js';
import { loginUser } from './login.js';
import type { AppDeps } from '../../app.js';
import type { StageValidator } from '../../services/auth/uia.js';
import type { Sql } from '../../storage/db.js';
import * as threepidStore from '../../storage/threepids.js';

export const accountArea: Area = (router, deps) => {
  const { services } = deps;

  // Authenticated: confirm the current password. Unauthenticated: a password reset proven by email.
  router.post('/account/password', optionalAuth(services.sessions), async (ctx) => {
    const body = ctx.request.json;
    const requester = ctx.state.requester;
    const newPassword = requireString(body, 'new_password', 512);
    const logoutDevices = optionalBoolean(body, 'logout_devices') ?? true;
    services.accounts.checkPasswordStrength(newPassword);
    const uia = await services.uia.authenticate(
      requester
        ? {
            endpoint: 'POST /account/password',
            userId: requester.userId,
            auth: body.auth,
            flows: [['m.login.password']],
            validators: { 'm.login.password': passwordStage(deps, requester.userId) },
          }
        : {
            endpoint: 'POST /account/password',
            userId: null,
            auth: body.auth,
            flows: [['m.login.email.identity']],
            validators: { 'm.login.email.identity': emailStage(services, 'password_reset') },
          },
    );
    let userId = requester?.userId;
    let spendValidation: ((tx: Sql) => Promise<void>) | undefined;
    if (!userId) {
      const t = uia.threepid!;
      userId = await threepidStore.findThreepidOwner(deps.db, t.medium, t.address);
      if (!userId) throw forbidden('No account has that email address');
      // The validation is spent in the transaction that changes the password: both or neither.
      spendValidation = async (tx) => {
        if (!(await services.threepids.consume(tx, t.sid))) throw forbidden('This email validation was already used');
      };
    }
    await services.accounts.changePassword(userId, newPassword, requester?.deviceId ?? null, logoutDevices, spendValidation);
    await services.uia.finish(uia.session);
    ctx.body = {};
  });

  // Without an access token (spec v1.11) the password stage's identifier names the account.
  router.post('/account/deactivate', optionalAuth(services.sessions), async (ctx) => {
    const r = ctx.state.requester;
    const erase = optionalBoolean(ctx.request.json, 'erase') ?? false;
    let identified: string | undefined;
    const uia = await services.uia.authenticate({
      endpoint: 'POST /account/deactivate',
      userId: r?.userId ?? null,
      auth: ctx.request.json.auth,
      flows: [['m.login.password']],
      validators: { 'm.login.password': r ? passwordStage(deps, r.userId) : identifyingPasswordStage(deps, (u) => (identified = u)) },
    });
    // A session completed by an earlier request names no user now: the password must come with this one.
    const userId = r?.userId ?? identified;
    if (!userId) throw new MatrixError(401, 'M_FORBIDDEN', 'Authenticate with m.login.password in this request');
    await services.accounts.deactivate(userId, { erase });
    await services.uia.finish(uia.session);
    // We never bind to identity servers, so there is nothing to unbind.
    ctx.body = { id_server_unbind_result: 'no-support' };
  });
};

/**
 * `m.login.password` without an access token: the identifier names the account, whose password
 * must match; wrong guesses spend that account's failed-login budget, as on /login.
 */
function identifyingPasswordStage(deps: AppDeps, found: (userId: string) => void): StageValidator {
  return async (auth) => {
    const password = auth.password;
    if (typeof password !== 'string') throw badJson("'auth.password' must be a string");
    const userId = deps.services.accounts.userIdFor(loginUser(auth));
    if (!(await deps.services.accounts.checkPassword(userId, password))) {
      const budget = await deps.bus.rateLimiter.take(`login-failed:${userId}`, deps.config.rateLimits.login);
      if (!budget.allowed) throw limitExceeded(budget.retryAfterMs);
      throw new MatrixError(401, 'M_FORBIDDEN', 'Invalid user or password');
    }
    found(userId);
    return {};
  };
}
