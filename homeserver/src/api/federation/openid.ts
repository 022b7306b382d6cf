/** `GET /_matrix/federation/v1/openid/userinfo` (server-server openid.yaml): unauthenticated, the OpenID token is the credential. */
import type { AppDeps, AppRouter } from '../../app.js';
import { MatrixError } from '../../core/errors.js';

export function openidRoutes(router: AppRouter, deps: AppDeps): void {
  const openid = deps.services.openid;
  router.get('/_matrix/federation/v1/openid/userinfo', async (ctx) => {
    const token = ctx.query.access_token;
    if (typeof token !== 'string' || token === '') throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Access token unknown or expired');
    ctx.body = await openid.userInfo(token);
  });
}
