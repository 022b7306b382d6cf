import Koa from 'koa';
import { Router } from '@koa/router';
import type { Config } from './core/config.js';
import type { Logger } from './core/logger.js';
import type { Database } from './storage/db.js';
import type { Bus } from './bus/index.js';
import type { Services } from './services/index.js';
import { unrecognized } from './core/errors.js';
import { matrixErrors } from './api/middleware/errors.js';
import { cors } from './api/middleware/cors.js';
import { jsonBody } from './api/middleware/body.js';
import { requestLog } from './api/middleware/logging.js';
import type { AuthState } from './api/middleware/auth.js';
import { CLIENT_AREAS, CLIENT_V1_AREAS } from './api/client/index.js';
import { wellKnownRoutes } from './api/wellknown.js';
import { isMediaUploadPath, mediaV1Area, mediaV3Area } from './api/media.js';
import { hearthEmailArea } from './api/client/threepid.js'; // email validation links and submit_url (/_hearth/client/email/*)
import { federationRoutes } from './api/federation/index.js'; // server-server API, keys, /.well-known/matrix/server
import { hearthCallsArea } from './api/hearth_calls.js'; // call tokens and their JWKS (/_hearth/client/v1/rooms/*/call, /_hearth/call/v1)

export interface AppDeps {
  config: Config;
  logger: Logger;
  db: Database;
  bus: Bus;
  services: Services;
}

export type AppRouter = Router<AuthState>;
/** An API area registers its routes (paths relative to the API prefix) on a router. */
export type Area = (router: AppRouter, deps: AppDeps) => void;

/** Builds the Koa app; it never listens, so tests drive `app.callback()` directly. */
export function createApp(deps: AppDeps): Koa<AuthState> {
  const app = new Koa<AuthState>({ proxy: deps.config.trustProxy });
  // Errors Koa sees after the handlers (a socket reset mid-upload, a failing response stream) go to
  // the log instead of Koa's default stderr print; a client hanging up is routine.
  app.on('error', (err: NodeJS.ErrnoException) => {
    const clientGone = err.code === 'ECONNRESET' || err.code === 'ECONNABORTED' || err.code === 'EPIPE' || err.code?.startsWith('HPE_') || err.message === 'aborted';
    deps.logger[clientGone ? 'debug' : 'warn']({ err }, 'request stream error');
  });
  app.use(requestLog(deps.logger));
  app.use(matrixErrors(deps.logger));
  app.use(cors());
  // Media uploads stream their raw bytes to disk (api/media.ts) instead of being buffered as JSON.
  app.use(jsonBody(deps.config.maxJsonBodyBytes, (ctx) => isMediaUploadPath(ctx.path)));

  const root: AppRouter = new Router();
  wellKnownRoutes(root, deps);
  if (deps.config.federation.enabled) federationRoutes(root, deps);
  hearthEmailArea(root, deps);
  hearthCallsArea(root, deps);
  // r0 is the pre-1.1 name of v3; some clients still use it.
  for (const prefix of ['/_matrix/client/v3', '/_matrix/client/r0']) {
    const r: AppRouter = new Router({ prefix });
    for (const area of CLIENT_AREAS) area(r, deps);
    root.use(r.routes(), r.allowedMethods({ throw: true, methodNotAllowed: () => unrecognized('Method not allowed', 405) }));
  }
  const v1: AppRouter = new Router({ prefix: '/_matrix/client/v1' });
  for (const area of CLIENT_V1_AREAS) area(v1, deps);
  root.use(v1.routes(), v1.allowedMethods({ throw: true, methodNotAllowed: () => unrecognized('Method not allowed', 405) }));
  for (const [prefix, area] of [['/_matrix/media/v3', mediaV3Area], ['/_matrix/media/v1', mediaV1Area]] as const) {
    const r: AppRouter = new Router({ prefix });
    area(r, deps);
    root.use(r.routes(), r.allowedMethods({ throw: true, methodNotAllowed: () => unrecognized('Method not allowed', 405) }));
  }

  // Checked after the routers returned: throwing the 404 from a final middleware would unwind
  // past allowedMethods before it could answer 405 for a known path with the wrong method.
  app.use(async function unknownEndpoint(ctx, next) {
    await next();
    if (ctx.status === 404 && ctx.body == null) throw unrecognized(`Unrecognized request: ${ctx.method} ${ctx.path}`);
  });
  app.use(root.routes());
  app.use(
    root.allowedMethods({
      throw: true,
      methodNotAllowed: () => unrecognized('Method not allowed', 405),
      // A method no route implements (e.g. PROPFIND) is not allowed anywhere; the default is a 501 (answered as a 500).
      notImplemented: () => unrecognized('Method not allowed', 405),
    }),
  );
  return app;
}
