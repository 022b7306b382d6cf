/**
 * Client API look-ups answered by other servers: remote aliases (`query/directory`), another
 * server's public room directory (`publicRooms`), remote profiles (`query/profile`).
 */
import { MatrixError, notFound } from '../../core/errors.js';
import type { JsonObject } from '../../core/canonical_json.js';
import { parseRoomAlias } from '../rooms/directory.js';
import type { FederationClient } from './client.js';
import { remoteFailure } from './joins.js';

export class RemoteQueries {
  constructor(private readonly deps: { client: FederationClient }) {}

  async resolveAlias(alias: string): Promise<{ room_id: string; servers: string[] }> {
    const parsed = parseRoomAlias(alias);
    if (!parsed) throw new MatrixError(400, 'M_INVALID_PARAM', 'Room alias invalid');
    try {
      const res = await this.deps.client.request({ destination: parsed.serverName, method: 'GET', path: '/_matrix/federation/v1/query/directory', query: { room_alias: alias } });
      if (typeof res.room_id !== 'string') throw new MatrixError(502, 'M_UNKNOWN', 'Bad directory answer');
      const servers = Array.isArray(res.servers) ? res.servers.filter((s): s is string => typeof s === 'string') : [];
      return { room_id: res.room_id, servers };
    } catch (err) {
      if (err instanceof MatrixError) throw err;
      const e = remoteFailure(err, `Could not resolve ${alias}`);
      throw e.status === 404 ? notFound(`Room alias ${alias} not found`) : e;
    }
  }

  /** Another server's directory: GET with limit/since, or POST with a filter. */
  async publicRooms(server: string, q: { limit?: number; since?: string; filter?: JsonObject; includeAllNetworks?: boolean; thirdPartyInstanceId?: string }): Promise<JsonObject> {
    const post = q.filter !== undefined || q.includeAllNetworks !== undefined || q.thirdPartyInstanceId !== undefined;
    try {
      if (post) {
        const body: JsonObject = {};
        if (q.limit !== undefined) body.limit = q.limit;
        if (q.since !== undefined) body.since = q.since;
        if (q.filter !== undefined) body.filter = q.filter;
        if (q.includeAllNetworks !== undefined) body.include_all_networks = q.includeAllNetworks;
        if (q.thirdPartyInstanceId !== undefined) body.third_party_instance_id = q.thirdPartyInstanceId;
        return await this.deps.client.request({ destination: server, method: 'POST', path: '/_matrix/federation/v1/publicRooms', body });
      }
      return await this.deps.client.request({ destination: server, method: 'GET', path: '/_matrix/federation/v1/publicRooms', query: { limit: q.limit, since: q.since } });
    } catch (err) {
      throw remoteFailure(err, `Could not list the directory of ${server}`);
    }
  }

  async profile(userId: string, field?: string): Promise<JsonObject> {
    const server = userId.slice(userId.indexOf(':') + 1);
    try {
      return await this.deps.client.request({ destination: server, method: 'GET', path: '/_matrix/federation/v1/query/profile', query: { user_id: userId, field } });
    } catch (err) {
      const e = remoteFailure(err, 'Could not get the profile');
      throw e.status === 404 ? notFound('Profile not found') : e;
    }
  }
}
