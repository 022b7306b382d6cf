/** `GET /v1/query/directory` (spec: query.yaml): our aliases, with the servers in the room. */
import { invalidParam, missingParam, notFound } from '../../core/errors.js';
import * as aliases from '../../storage/aliases.js';
import { joinedServers } from '../../storage/federated_events.js';
import { parseRoomAlias } from '../../services/rooms/directory.js';
import type { FederationArea } from './index.js';

export const directoryArea: FederationArea = (router, deps) => {
  router.get('/v1/query/directory', async (ctx) => {
    const alias = ctx.query.room_alias;
    if (alias === undefined) throw missingParam('room_alias');
    if (typeof alias !== 'string' || !parseRoomAlias(alias)) throw invalidParam("'room_alias' is not a room alias");
    if (parseRoomAlias(alias)!.serverName !== deps.config.serverName) throw notFound('Room alias not found');
    const found = await aliases.getAlias(deps.db, alias);
    if (!found) throw notFound('Room alias not found');
    const servers = await joinedServers(deps.db, found.room_id);
    // We are first: we hold the alias and can always answer a make_join.
    ctx.body = { room_id: found.room_id, servers: [deps.config.serverName, ...servers.filter((s) => s !== deps.config.serverName)] };
  });
};
