/** `GET`/`POST /v1/publicRooms` (spec: public_rooms.yaml): our published room directory. */
import { badJson, invalidParam } from '../../core/errors.js';
import type { FederationArea } from './index.js';
import { queryInt, strictBody } from './params.js';

export const publicRoomsArea: FederationArea = (router, deps) => {
  const directory = deps.services.rooms.directory;
  router.get('/v1/publicRooms', async (ctx) => {
    const since = typeof ctx.query.since === 'string' ? ctx.query.since : undefined;
    const limit = ctx.query.limit === undefined ? undefined : queryInt(ctx.query.limit as string, -1);
    if (limit !== undefined && limit < 0) throw invalidParam("'limit' must be a non-negative integer");
    ctx.body = await directory.publicRooms({ limit, since });
  });
  router.post('/v1/publicRooms', async (ctx) => {
    const b = strictBody(ctx);
    if (b.limit !== undefined && (typeof b.limit !== 'number' || b.limit < 0)) throw invalidParam("'limit' must be a non-negative integer");
    if (b.since !== undefined && typeof b.since !== 'string') throw badJson("'since' must be a string");
    const filter = (typeof b.filter === 'object' && b.filter !== null && !Array.isArray(b.filter) ? b.filter : {}) as Record<string, unknown>;
    const term = typeof filter.generic_search_term === 'string' ? filter.generic_search_term : undefined;
    const roomTypes = Array.isArray(filter.room_types) ? (filter.room_types as (string | null)[]) : undefined;
    ctx.body = await directory.publicRooms({ limit: b.limit as number | undefined, since: b.since as string | undefined, searchTerm: term, roomTypes });
  });
};
