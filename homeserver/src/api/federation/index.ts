/**
 * The server-server API: which routers exist and in what order. Mounted into the main app when
 * HEARTH_FEDERATION_ENABLED is set (the shipped Caddyfile sends :8448 there) and, with
 * HEARTH_FEDERATION_PORT, served alone on the dedicated federation listener (app.ts).
 */
import { Router } from '@koa/router';
import type { AppDeps, AppRouter } from '../../app.js';
import { unrecognized } from '../../core/errors.js';
import { requireXMatrix, type FederationState } from '../middleware/x_matrix.js';
import type { AuthState } from '../middleware/auth.js';
import { originConcurrencyLimit } from './origin_limit.js';
import { keyRoutes } from './keys.js';
import { discoveryRoutes } from './discovery.js';
import { openidRoutes } from './openid.js'; // OpenID userinfo: unauthenticated (the token is the credential)
import { queryArea } from './query.js';
import { sendArea } from './send.js';
import { eventsArea } from './events.js';
import { stateArea } from './state.js';
import { backfillArea } from './backfill.js';
import { joinsArea } from './joins.js';
import { knockArea } from './knock.js';
import { invitesArea } from './invites.js';
import { directoryArea } from './directory.js';
import { publicRoomsArea } from './public_rooms.js';
import { userDevicesArea } from './user_devices.js';
import { userKeysArea } from './user_keys.js';
import { mediaArea } from './media.js';
import { exchangeThirdPartyArea, onBindRoutes } from './third_party.js'; // onbind: unauthenticated (identity servers)
import { hierarchyArea } from './hierarchy.js';
import { timestampToEventArea } from './timestamp_to_event.js';

export type FederationRouter = Router<AuthState & FederationState>;
/**
 * A federation API area: registers routes relative to `/_matrix/federation` on a router whose
 * every route is already behind X-Matrix authentication (`ctx.state.origin`, see `originOf`) and
 * the per-origin concurrency limit. Unauthenticated endpoints do not belong here.
 */
export type FederationArea = (router: FederationRouter, deps: AppDeps) => void;

/** Every authenticated federation area; later work (transactions, joins, …) adds itself here. */
export const FEDERATION_AREAS: FederationArea[] = [queryArea, userDevicesArea, userKeysArea, sendArea, eventsArea, stateArea, backfillArea, joinsArea, knockArea, invitesArea, directoryArea, publicRoomsArea, mediaArea, hierarchyArea, timestampToEventArea, exchangeThirdPartyArea];

export function federationRoutes(root: AppRouter, deps: AppDeps): void {
  // Unauthenticated first: the authenticated router's middleware would otherwise also match these paths.
  discoveryRoutes(root, deps);
  keyRoutes(root, deps);
  openidRoutes(root, deps);
  onBindRoutes(root, deps);

  const { keyRing, access } = deps.services.federation;
  const authed: FederationRouter = new Router({ prefix: '/_matrix/federation' });
  authed.use(requireXMatrix({ serverName: deps.config.serverName, keyRing, access, logger: deps.logger }));
  authed.use(originConcurrencyLimit(deps.config.federation.maxConcurrentPerOrigin));
  for (const area of FEDERATION_AREAS) area(authed, deps);
  root.use(authed.routes(), authed.allowedMethods({ throw: true, methodNotAllowed: () => unrecognized('Method not allowed', 405) }));
}
