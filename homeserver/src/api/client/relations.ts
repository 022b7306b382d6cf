import type { Area } from '../../app.js';
import { invalidParam } from '../../core/errors.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { badDir } from '../../services/rooms/reader.js';
import { enumParam, intParam, queryString } from './params.js';

/** Default page sizes when the client gives no `limit` (both endpoints cap it at 1000). */
const DEFAULT_RELATIONS_LIMIT = 5;
const DEFAULT_THREADS_LIMIT = 5;

/** `/v1/rooms/{roomId}/relations/...` and `/v1/rooms/{roomId}/threads` (spec: relations.yaml, threads_list.yaml). */
export const relationsArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);
  const relations = deps.services.rooms.relations;

  const list = async (ctx: Parameters<Parameters<typeof router.get>[1]>[0]) => {
    const r = requesterOf(ctx);
    const { roomId, eventId, relType, eventType } = ctx.params as Record<string, string | undefined>;
    const dir = queryString(ctx.query.dir, 'dir') ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw badDir();
    const recurse = enumParam(ctx.query.recurse, 'recurse', ['true', 'false'] as const);
    ctx.body = await relations.relations({ userId: r.userId, deviceId: r.deviceId }, roomId!, eventId!, {
      relType,
      eventType,
      from: queryString(ctx.query.from, 'from'),
      to: queryString(ctx.query.to, 'to'),
      limit: intParam(ctx.query.limit, 'limit', DEFAULT_RELATIONS_LIMIT),
      dir,
      recurse: recurse === undefined ? undefined : recurse === 'true',
    });
  };
  router.get('/rooms/:roomId/relations/:eventId', auth, list);
  router.get('/rooms/:roomId/relations/:eventId/:relType', auth, list);
  router.get('/rooms/:roomId/relations/:eventId/:relType/:eventType', auth, list);

  router.get('/rooms/:roomId/threads', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const limit = intParam(ctx.query.limit, 'limit', DEFAULT_THREADS_LIMIT);
    if (limit < 1) throw invalidParam("'limit' must be greater than zero");
    ctx.body = await relations.threads({ userId: r.userId, deviceId: r.deviceId }, ctx.params.roomId!, {
      include: enumParam(ctx.query.include, 'include', ['all', 'participated'] as const) ?? 'all',
      limit,
      from: queryString(ctx.query.from, 'from'),
    });
  });
};
