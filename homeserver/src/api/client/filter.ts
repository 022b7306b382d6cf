import type { Area, AppDeps } from '../../app.js';
import { MatrixError, forbidden, notFound } from '../../core/errors.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { parseFilter, roomEventFilter, type Filter, type RoomEventFilter } from '../../services/sync/filter.js';
import { isObject } from '../../core/json.js';
import * as filters from '../../storage/filters.js';

/** Largest filter definition we store (bytes of JSON). */
const MAX_FILTER_BYTES = 64 * 1024;

function parseJsonParam(raw: string, what: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new MatrixError(400, 'M_NOT_JSON', `${what} is not valid JSON`);
  }
}

/** /sync's `filter`: a stored filter's id, or an inline JSON filter. */
export async function syncFilterParam(deps: AppDeps, userId: string, raw: unknown): Promise<Filter> {
  if (raw === undefined) return parseFilter({});
  if (typeof raw !== 'string') throw new MatrixError(400, 'M_INVALID_PARAM', "'filter' must be given once");
  if (raw.trimStart().startsWith('{')) return parseFilter(parseJsonParam(raw, 'filter'));
  const stored = await filters.getFilter(deps.db, userId, raw);
  if (!stored) throw new MatrixError(400, 'M_INVALID_PARAM', 'Unknown filter id');
  return parseFilter(JSON.parse(stored));
}

/** /messages' and /context's `filter`: an inline RoomEventFilter. */
export function roomEventFilterParam(raw: unknown): RoomEventFilter | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw new MatrixError(400, 'M_INVALID_PARAM', "'filter' must be given once");
  const parsed = parseJsonParam(raw, 'filter');
  if (!isObject(parsed)) throw new MatrixError(400, 'M_BAD_JSON', 'filter must be a JSON object');
  return roomEventFilter(parsed);
}

export const filterArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);
  router.post('/user/:userId/filter', auth, async (ctx) => {
    const r = requesterOf(ctx);
    if (ctx.params.userId !== r.userId) throw forbidden('You can only create filters for yourself');
    parseFilter(ctx.request.json); // validates
    const json = JSON.stringify(ctx.request.json);
    if (Buffer.byteLength(json) > MAX_FILTER_BYTES) throw new MatrixError(413, 'M_TOO_LARGE', 'Filter is too large');
    ctx.body = { filter_id: await filters.insertFilter(deps.db, r.userId, json) };
  });
  router.get('/user/:userId/filter/:filterId', auth, async (ctx) => {
    const r = requesterOf(ctx);
    if (ctx.params.userId !== r.userId) throw forbidden('You can only read your own filters');
    const stored = await filters.getFilter(deps.db, r.userId, ctx.params.filterId!);
    if (!stored) throw notFound('Unknown filter');
    ctx.body = JSON.parse(stored);
  });
};
