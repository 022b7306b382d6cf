/** Event retrieval (spec: event.yaml, event_auth.yaml, backfill.yaml's get_missing_events). */
import { badJson } from '../../core/errors.js';
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';
import { strictBody } from './params.js';

const stringList = (v: unknown, name: string): string[] => {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw badJson(`'${name}' must be an array of event ids`);
  return v as string[];
};

export const eventsArea: FederationArea = (router, deps) => {
  const { reads } = deps.services.federationRooms;
  router.get('/v1/event/:eventId', async (ctx) => {
    ctx.body = await reads.event(originOf(ctx), ctx.params.eventId!);
  });
  router.get('/v1/event_auth/:roomId/:eventId', async (ctx) => {
    ctx.body = await reads.eventAuth(originOf(ctx), ctx.params.roomId!, ctx.params.eventId!);
  });
  router.post('/v1/get_missing_events/:roomId', async (ctx) => {
    const b = strictBody(ctx);
    const limit = b.limit === undefined ? 10 : b.limit;
    const minDepth = b.min_depth === undefined ? 0 : b.min_depth;
    if (typeof limit !== 'number' || typeof minDepth !== 'number') throw badJson("'limit' and 'min_depth' must be integers");
    ctx.body = await reads.missingEvents(originOf(ctx), ctx.params.roomId!, {
      earliest: stringList(b.earliest_events ?? [], 'earliest_events'),
      latest: stringList(b.latest_events, 'latest_events'),
      limit,
      minDepth,
    });
  });
};
