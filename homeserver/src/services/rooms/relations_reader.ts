import { notFound } from '../../core/errors.js';
import type { Database } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import * as store from '../../storage/relations.js';
import type { StoredEvent } from '../../storage/events.js';
import { filterVisible, toClientEvents, type ClientEvent } from './events_view.js';
import { MAX_PAGE, type RoomReader, type Viewer } from './reader.js';
import { RECURSION_DEPTH } from './relations.js';
import { formatToken, parseToken } from '../sync/token.js';

/**
 * The relation reads (spec: relations.yaml, threads_list.yaml). Tokens are stream positions like
 * /messages': `/relations` pages over the children's stream positions, `/threads` over the position
 * of each thread's latest reply.
 */

export interface RelationsPage {
  chunk: ClientEvent[];
  next_batch?: string;
  prev_batch?: string;
  recursion_depth?: number;
}

/** `GET /v1/rooms/{roomId}/relations/...` and `GET /v1/rooms/{roomId}/threads`, with the reader's access rules. */
export class RelationsReader {
  constructor(private readonly deps: { db: Database; reader: RoomReader }) {}

  async relations(
    viewer: Viewer,
    roomId: string,
    parentId: string,
    q: { relType?: string; eventType?: string; from?: string; to?: string; limit: number; dir: 'b' | 'f'; recurse?: boolean },
  ): Promise<RelationsPage> {
    const db = this.deps.db;
    const access = await this.deps.reader.access(db, viewer.userId, roomId);
    const parent = await events.getEvent(db, parentId);
    if (!parent || parent.event.room_id !== roomId || parent.streamOrdering === null || parent.streamOrdering > access.upTo) {
      throw notFound('Event not found');
    }
    if ((await filterVisible(db, viewer.userId, [parent])).length === 0) throw notFound('Event not found');
    const limit = Math.min(Math.max(q.limit, 1), MAX_PAGE);
    const ceiling = Math.min(access.upTo, await events.maxStreamOrdering(db));
    const from = q.from !== undefined ? parseToken(q.from, 'from token').events : q.dir === 'b' ? ceiling : 0;
    const to = q.to !== undefined ? parseToken(q.to, 'to token').events : undefined;
    const base = { roomId, parentId, relType: q.relType, eventType: q.eventType, maxDepth: q.recurse ? RECURSION_DEPTH : 1, limit: limit + 1 };
    const page =
      q.dir === 'b'
        ? await store.children(db, { ...base, after: to ?? 0, upTo: Math.min(from, ceiling), newestFirst: true })
        : await store.children(db, { ...base, after: from, upTo: Math.min(to ?? ceiling, ceiling), newestFirst: false });
    const more = page.length > limit;
    const shown = page.slice(0, limit);
    const last = shown[shown.length - 1];
    const visible = await filterVisible(db, viewer.userId, shown);
    const out: RelationsPage = { chunk: await toClientEvents(db, visible, new Map([[roomId, access.version]]), { viewer }) };
    if (more && last) out.next_batch = formatToken({ events: q.dir === 'b' ? last.streamOrdering! - 1 : last.streamOrdering! });
    if (q.from !== undefined) out.prev_batch = q.from;
    if (q.recurse !== undefined) out.recursion_depth = q.recurse ? RECURSION_DEPTH : 1;
    return out;
  }

  async threads(viewer: Viewer, roomId: string, q: { include: 'all' | 'participated'; limit: number; from?: string }): Promise<{ chunk: ClientEvent[]; next_batch?: string }> {
    const db = this.deps.db;
    const access = await this.deps.reader.access(db, viewer.userId, roomId);
    const limit = Math.min(q.limit, MAX_PAGE);
    const ceiling = Math.min(access.upTo, await events.maxStreamOrdering(db));
    const before = q.from !== undefined ? parseToken(q.from, 'from token').events : ceiling;
    const roots = await store.threadRoots(db, {
      roomId,
      upTo: ceiling,
      before,
      limit: limit + 1,
      participant: q.include === 'participated' ? viewer.userId : undefined,
    });
    const shown = roots.slice(0, limit);
    const stored = await events.getEvents(db, shown.map((r) => r.rootId));
    const inOrder = shown.map((r) => stored.get(r.rootId)).filter((s): s is StoredEvent => !!s && s.streamOrdering !== null && s.streamOrdering <= access.upTo);
    const visible = await filterVisible(db, viewer.userId, inOrder);
    const chunk = await toClientEvents(db, visible, new Map([[roomId, access.version]]), { viewer });
    const last = shown[shown.length - 1];
    return { chunk, ...(roots.length > limit && last ? { next_batch: formatToken({ events: last.latest - 1 }) } : {}) };
  }
}
