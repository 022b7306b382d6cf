import type { Area } from '../../app.js';
import { badJson, invalidParam } from '../../core/errors.js';
import { optionalBoolean, optionalInteger, optionalObject, optionalString, requireString, type JsonObject } from '../../core/json.js';
import { optionalAuth, requireAuth, requesterOf } from '../middleware/auth.js';
import { rateLimit } from '../middleware/ratelimit.js';
import type { PublicRoomsQuery } from '../../services/rooms/public_rooms.js';
import { intParam, queryString } from './params.js';

const VISIBILITIES = ['public', 'private'] as const;

/** `filter` of `POST /publicRooms`. */
function publicRoomsFilter(body: JsonObject): Pick<PublicRoomsQuery, 'searchTerm' | 'roomTypes'> {
  const filter = optionalObject(body, 'filter') ?? {};
  const roomTypes = filter.room_types;
  if (roomTypes !== undefined && roomTypes !== null && !(Array.isArray(roomTypes) && roomTypes.every((t) => t === null || typeof t === 'string'))) {
    throw badJson("'filter.room_types' must be an array of strings and nulls");
  }
  return { searchTerm: optionalString(filter, 'generic_search_term', 1000), roomTypes: (roomTypes ?? undefined) as (string | null)[] | undefined };
}

/** Room aliases and the published room directory: directory.yaml and list_public_rooms.yaml. */
export const directoryArea: Area = (router, { services, config, bus }) => {
  const auth = requireAuth(services.sessions);
  // The spec lets anyone resolve aliases and read the directory, logged in or not.
  const maybeAuth = optionalAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'directory', config.rateLimits.client);
  const directory = services.rooms.directory;

  /** Another server's directory is asked over federation (when it is on). */
  const remoteServer = (server: string | undefined): string | undefined => {
    if (server === undefined || server === config.serverName) return undefined;
    if (!config.federation.enabled) throw invalidParam(`Listing the directory of ${server} needs federation, which is disabled here`);
    return server;
  };
  const isRemoteAlias = (alias: string) => config.federation.enabled && !alias.endsWith(`:${config.serverName}`) && alias.startsWith('#');

  router.get('/directory/room/:roomAlias', maybeAuth, limit, async (ctx) => {
    const alias = ctx.params.roomAlias!;
    ctx.body = isRemoteAlias(alias) ? await services.federationRooms.queries.resolveAlias(alias) : await directory.resolve(alias);
  });
  router.put('/directory/room/:roomAlias', auth, limit, async (ctx) => {
    await directory.setAlias(requesterOf(ctx).userId, ctx.params.roomAlias!, requireString(ctx.request.json, 'room_id', 255));
    ctx.body = {};
  });
  router.delete('/directory/room/:roomAlias', auth, async (ctx) => {
    await directory.deleteAlias(requesterOf(ctx).userId, ctx.params.roomAlias!);
    ctx.body = {};
  });
  router.get('/rooms/:roomId/aliases', auth, async (ctx) => {
    ctx.body = { aliases: await directory.localAliases(requesterOf(ctx).userId, ctx.params.roomId!) };
  });

  router.get('/directory/list/room/:roomId', maybeAuth, async (ctx) => {
    ctx.body = { visibility: await directory.visibility(ctx.params.roomId!) };
  });
  router.put('/directory/list/room/:roomId', auth, async (ctx) => {
    const visibility = optionalString(ctx.request.json, 'visibility') ?? 'public';
    if (!(VISIBILITIES as readonly string[]).includes(visibility)) throw invalidParam("'visibility' must be public or private");
    await directory.setVisibility(requesterOf(ctx).userId, ctx.params.roomId!, visibility as (typeof VISIBILITIES)[number]);
    ctx.body = {};
  });

  router.get('/publicRooms', maybeAuth, limit, async (ctx) => {
    const remote = remoteServer(queryString(ctx.query.server, 'server'));
    const q = { limit: intParam(ctx.query.limit, 'limit', 0), since: queryString(ctx.query.since, 'since') };
    ctx.body = remote ? await services.federationRooms.queries.publicRooms(remote, q) : await directory.publicRooms(q);
  });
  router.post('/publicRooms', auth, limit, async (ctx) => {
    const remote = remoteServer(queryString(ctx.query.server, 'server'));
    const b = ctx.request.json;
    const pageLimit = optionalInteger(b, 'limit');
    if (pageLimit !== undefined && pageLimit < 0) throw invalidParam("'limit' must not be negative");
    const allNetworks = optionalBoolean(b, 'include_all_networks') ?? false; // we have no other networks to include
    const instance = optionalString(b, 'third_party_instance_id');
    if (allNetworks && instance !== undefined) throw invalidParam("'third_party_instance_id' cannot be used with 'include_all_networks'");
    if (remote) {
      ctx.body = await services.federationRooms.queries.publicRooms(remote, { limit: pageLimit, since: optionalString(b, 'since'), filter: optionalObject(b, 'filter') as never, includeAllNetworks: allNetworks, thirdPartyInstanceId: instance });
      return;
    }
    ctx.body = await directory.publicRooms({
      limit: pageLimit,
      since: optionalString(b, 'since'),
      thirdPartyInstanceId: instance,
      ...publicRoomsFilter(b),
    });
  });
};
