import { MatrixError, badJson, limitExceeded } from '../../core/errors.js';
import type { AppDeps } from '../../app.js';
import { isObject } from '../../core/json.js';
import type { Services } from '../../services/index.js';
import type { StageValidator } from '../../services/auth/uia.js';
import { loginUser } from './login.js';

/**
 * `m.login.password` for an already-authenticated user: the identifier must be that user.
 * Wrong passwords count against the same per-account budget as failed logins, so UIA is no
 * side door for guessing.
 */
export function passwordStage(deps: AppDeps, userId: string): StageValidator {
  const { services, bus, config } = deps;
  return async (auth) => {
    const password = auth.password;
    if (typeof password !== 'string') throw badJson("'auth.password' must be a string");
    const named = auth.identifier !== undefined || auth.user !== undefined ? services.accounts.userIdFor(loginUser(auth)) : userId;
    if (named !== userId || !(await services.accounts.checkPassword(userId, password))) {
      const budget = await bus.rateLimiter.take(`login-failed:${userId}`, config.rateLimits.login);
      if (!budget.allowed) throw limitExceeded(budget.retryAfterMs);
      throw new MatrixError(401, 'M_FORBIDDEN', 'Invalid password');
    }
    return {};
  };
}

/** `m.login.email.identity` backed by a validated email session of the given purpose. */
export function emailStage(services: Services, purpose: 'register' | 'bind' | 'password_reset'): StageValidator {
  return async (auth) => {
    const creds = auth.threepid_creds ?? auth.threepidCreds;
    if (!isObject(creds)) throw badJson("'threepid_creds' must be an object");
    return { threepid: await services.threepids.checkValidated(creds, purpose) };
  };
}
