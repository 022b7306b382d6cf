/** Federation queries (spec: query.yaml). Behind X-Matrix authentication. */
import { invalidParam, missingParam, notFound } from '../../core/errors.js';
import { parseUserId } from '../../core/ids.js';
import type { FederationArea } from './index.js';

export const queryArea: FederationArea = (router, deps) => {
  const { profiles } = deps.services;

  // GET /_matrix/federation/v1/query/profile?user_id=…[&field=…]
  router.get('/v1/query/profile', async (ctx) => {
    const userId = ctx.query.user_id;
    if (userId === undefined) throw missingParam('user_id');
    if (typeof userId !== 'string' || !parseUserId(userId)) throw invalidParam("'user_id' is not a user id");
    if (parseUserId(userId)!.serverName !== deps.config.serverName) throw invalidParam('The user is not hosted on this server');
    const field = ctx.query.field;
    if (field !== undefined && typeof field !== 'string') throw invalidParam("'field' must be given once");
    const profile = await profiles.get(userId); // 404 M_NOT_FOUND for unknown and deactivated users
    if (field === undefined) {
      ctx.body = profile;
      return;
    }
    // We keep only displayname and avatar_url; any other field (m.tz, custom keys) does not exist here.
    const value = field === 'displayname' || field === 'avatar_url' ? profile[field] : undefined;
    if (value === undefined) throw notFound(`The user has no '${field}'`);
    ctx.body = { [field]: value };
  });
};
