import type { Area } from '../../app.js';
import { invalidParam, missingParam } from '../../core/errors.js';
import { badDir } from '../../services/rooms/reader.js';
import { TimestampLookup } from '../../services/rooms/timestamp_to_event.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { queryString } from './params.js';

/** `GET /v1/rooms/{roomId}/timestamp_to_event` (spec v1.6, room_event_by_timestamp.yaml). */
export const timestampToEventArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);
  const remote = deps.config.federation.enabled ? deps.services.federationRooms.timestamps : undefined;
  const lookup = new TimestampLookup({ db: deps.db, reader: deps.services.rooms.reader, remote });

  router.get('/rooms/:roomId/timestamp_to_event', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const tsText = queryString(ctx.query.ts, 'ts');
    if (tsText === undefined) throw missingParam('ts');
    // Milliseconds since the epoch: a non-negative integer within JavaScript's safe range.
    if (!/^\d{1,16}$/.test(tsText) || !Number.isSafeInteger(Number(tsText))) throw invalidParam("'ts' must be a non-negative integer");
    const dir = queryString(ctx.query.dir, 'dir');
    if (dir === undefined) throw missingParam('dir');
    if (dir !== 'f' && dir !== 'b') throw badDir();
    ctx.body = await lookup.closest({ userId: r.userId, deviceId: r.deviceId }, ctx.params.roomId!, Number(tsText), dir);
  });
};
