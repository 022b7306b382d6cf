/** `GET /v1/timestamp_to_event/{roomId}` (spec: events.yaml; services/federation/timestamp_to_event.ts). */
import { invalidParam, missingParam } from '../../core/errors.js';
import { badDir } from '../../services/rooms/reader.js';
import { originOf } from '../middleware/x_matrix.js';
import type { FederationArea } from './index.js';

export const timestampToEventArea: FederationArea = (router, deps) => {
  const { timestamps } = deps.services.federationRooms;
  router.get('/v1/timestamp_to_event/:roomId', async (ctx) => {
    const tsText = ctx.query.ts;
    if (tsText === undefined) throw missingParam('ts');
    // Milliseconds since the epoch: a non-negative integer within JavaScript's safe range.
    if (typeof tsText !== 'string' || !/^\d{1,16}$/.test(tsText) || !Number.isSafeInteger(Number(tsText))) throw invalidParam("'ts' must be a non-negative integer");
    const dir = ctx.query.dir;
    if (dir === undefined) throw missingParam('dir');
    if (dir !== 'f' && dir !== 'b') throw badDir();
    ctx.body = await timestamps.serve(originOf(ctx), ctx.params.roomId!, Number(tsText), dir);
  });
};
