import type { Area } from '../../app.js';
import { MatrixError } from '../../core/errors.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { parseToken } from '../../services/sync/token.js';
import { syncFilterParam } from './filter.js';

/**
 * `GET /sync` (long-poll). `set_presence` (online, unavailable, offline) is handed to the presence
 * stream; unknown query parameters are ignored, as clients send cache busters.
 */
export const syncArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);
  router.get('/sync', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const q = ctx.query;
    const since = typeof q.since === 'string' && q.since !== '' ? parseToken(q.since, 'since token') : undefined;
    let timeoutMs = 0;
    if (q.timeout !== undefined) {
      if (typeof q.timeout !== 'string' || !/^\d{1,9}$/.test(q.timeout)) throw new MatrixError(400, 'M_INVALID_PARAM', "'timeout' must be a non-negative integer");
      timeoutMs = Number(q.timeout);
    }
    const fullState = q.full_state === 'true';
    const setPresence = q.set_presence;
    if (setPresence !== undefined && setPresence !== 'online' && setPresence !== 'offline' && setPresence !== 'unavailable') {
      throw new MatrixError(400, 'M_INVALID_PARAM', "'set_presence' must be one of online, offline, unavailable");
    }
    const filter = await syncFilterParam(deps, r.userId, q.filter);
    // A client that goes away stops its long-poll at once instead of holding a waiter.
    const abort = new AbortController();
    ctx.req.on('close', () => abort.abort());
    const result = await deps.services.rooms.sync.sync(
      { userId: r.userId, deviceId: r.deviceId, since, timeoutMs, fullState, filter, setPresence },
      abort.signal,
    );
    ctx.body = result.response;
  });
};
