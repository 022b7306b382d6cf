import type { Area } from '../../app.js';
import { badJson, invalidParam, missingParam } from '../../core/errors.js';
import { isObject, optionalBoolean, optionalInteger, optionalObject, optionalStringArray, requireString, type JsonObject } from '../../core/json.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { rateLimit } from '../middleware/ratelimit.js';
import { roomEventFilter } from '../../services/sync/filter.js';
import { SEARCH_KEYS, type SearchKey } from '../../storage/search.js';
import type { RoomEventsSearch } from '../../services/search.js';
import { queryString } from './params.js';

/** Most events of context on either side of a search result. */
const MAX_CONTEXT = 100;
const DEFAULT_CONTEXT = 5;
const DEFAULT_DIRECTORY_LIMIT = 10;
const MAX_DIRECTORY_LIMIT = 50;

function contextLimit(o: JsonObject, key: string): number {
  const v = optionalInteger(o, key) ?? DEFAULT_CONTEXT;
  if (v < 0) throw invalidParam(`'event_context.${key}' must not be negative`);
  return Math.min(v, MAX_CONTEXT);
}

/** Type-checks `search_categories.room_events` (search.yaml). */
function roomEventsRequest(o: JsonObject): RoomEventsSearch {
  const keys = optionalStringArray(o, 'keys', 3) ?? (Object.keys(SEARCH_KEYS) as SearchKey[]);
  for (const k of keys) if (!(k in SEARCH_KEYS)) throw invalidParam(`Unknown search key '${k}'`);
  const orderBy = o.order_by ?? 'rank';
  if (orderBy !== 'rank' && orderBy !== 'recent') throw invalidParam("'order_by' must be rank or recent");
  const filterRaw = o.filter ?? {};
  if (!isObject(filterRaw)) throw badJson("'filter' must be an object");
  const ctx = optionalObject(o, 'event_context');
  const groupings = optionalObject(o, 'groupings');
  const groupBy = groupings?.group_by ?? [];
  if (!Array.isArray(groupBy) || groupBy.length > 2) throw badJson("'groupings.group_by' must be an array");
  const keysOfGroups = groupBy.map((g: unknown) => {
    const key = isObject(g) ? g.key : undefined;
    if (key !== 'room_id' && key !== 'sender') throw invalidParam("'groupings.group_by' keys must be room_id or sender");
    return key;
  });
  return {
    searchTerm: requireString(o, 'search_term', 1000),
    keys: [...new Set(keys)] as SearchKey[],
    filter: roomEventFilter(filterRaw),
    orderBy,
    eventContext: ctx && {
      beforeLimit: contextLimit(ctx, 'before_limit'),
      afterLimit: contextLimit(ctx, 'after_limit'),
      includeProfile: optionalBoolean(ctx, 'include_profile') ?? false,
    },
    includeState: optionalBoolean(o, 'include_state') ?? false,
    groupBy: [...new Set(keysOfGroups)],
  };
}

/** `POST /search` (search.yaml) and `POST /user_directory/search` (users.yaml). */
export const searchArea: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'search', config.rateLimits.client);

  router.post('/search', auth, limit, async (ctx) => {
    const categories = optionalObject(ctx.request.json, 'search_categories');
    if (!categories) throw missingParam('search_categories');
    const roomEvents = optionalObject(categories, 'room_events');
    const nextBatch = queryString(ctx.query.next_batch, 'next_batch');
    const r = requesterOf(ctx);
    ctx.body = roomEvents
      ? await services.search.searchRoomEvents({ userId: r.userId, deviceId: r.deviceId }, roomEventsRequest(roomEvents), nextBatch)
      : { search_categories: {} };
  });

  router.post('/user_directory/search', auth, limit, async (ctx) => {
    const body = ctx.request.json;
    const term = requireString(body, 'search_term', 1000);
    const n = optionalInteger(body, 'limit') ?? DEFAULT_DIRECTORY_LIMIT;
    if (n < 0) throw invalidParam("'limit' must not be negative");
    ctx.body = await services.search.searchUsers(requesterOf(ctx).userId, term, Math.min(n, MAX_DIRECTORY_LIMIT));
  });
};
