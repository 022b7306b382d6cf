import Koa from 'koa';
import { Router } from '@koa/router';
import type { AppDeps, AppRouter } from '../../app.js';
import { unrecognized } from '../../core/errors.js';
import { matrixErrors } from '../middleware/errors.js';
import { jsonBody } from '../middleware/body.js';
import { requestLog } from '../middleware/logging.js';
import type { AuthState } from '../middleware/auth.js';
import { federationRoutes } from './index.js';

/**
 * The app of the dedicated federation listener (HEARTH_FEDERATION_PORT): the federation, key and
 * discovery endpoints only, with the main app's error, body and logging middleware. Nothing of the
 * client API is reachable on that port.
 */
export function createFederationApp(deps: AppDeps): Koa<AuthState> {
  const app = new Koa<AuthState>({ proxy: deps.config.trustProxy });
  app.on('error', (err: Error) => deps.logger.debug({ err }, 'federation request stream error'));
  app.use(requestLog(deps.logger));
  app.use(matrixErrors(deps.logger));
  app.use(jsonBody(deps.config.maxJsonBodyBytes));
  const root: AppRouter = new Router();
  federationRoutes(root, deps);
  app.use(async function unknownEndpoint(ctx, next) {
    await next();
    if (ctx.status === 404 && ctx.body == null) throw unrecognized(`Unrecognized request: ${ctx.method} ${ctx.path}`);
  });
  app.use(root.routes());
  app.use(root.allowedMethods({ throw: true, methodNotAllowed: () => unrecognized('Method not allowed', 405), notImplemented: () => unrecognized('Method not allowed', 405) }));
  return app;
}
