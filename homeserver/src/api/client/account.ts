import type { Area } from '../../app.js';
import { forbidden } from '../../core/errors.js';
import { optionalBoolean, requireString } from '../../core/json.js';
import { optionalAuth, requireAuth, requesterOf } from '../middleware/auth.js';
import { emailStage, passwordStage } from './uia_stages.js';
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

  router.post('/account/deactivate', requireAuth(services.sessions), async (ctx) => {
    const r = requesterOf(ctx);
    const uia = await services.uia.authenticate({
      endpoint: 'POST /account/deactivate',
      userId: r.userId,
      auth: ctx.request.json.auth,
      flows: [['m.login.password']],
      validators: { 'm.login.password': passwordStage(deps, r.userId) },
    });
    await services.accounts.deactivate(r.userId);
    await services.uia.finish(uia.session);
    // We never bind to identity servers, so there is nothing to unbind.
    ctx.body = { id_server_unbind_result: 'no-support' };
  });
};
