import { MatrixError, badJson, notFound } from '../core/errors.js';
import type { Database } from '../storage/db.js';
import type { Notifier } from '../bus/notifier.js';
import * as store from '../storage/account_data.js';

type Json = Record<string, unknown>;

/** Key of the advisory lock account-data writers hold until they commit ("acctdat"). */
const ACCOUNT_DATA_LOCK = 0x61636374646174;

/** Largest accepted content (serialized), per spec's advice to bound account data. */
export const MAX_ACCOUNT_DATA_BYTES = 64 * 1024;

/** Types the server manages itself: refused through the account-data API (405 M_BAD_JSON). */
const SERVER_MANAGED = new Set(['m.fully_read', 'm.push_rules']);

/**
 * Account data (spec: "Client Config") and room tags (spec: "Room Tagging", stored as `m.tag` room
 * account data). Each write takes the next account-data stream position under its own lock (held
 * until commit, so positions commit in order and a sync snapshot's newest position covers everything
 * below it), then wakes the user's syncs. `m.ignored_user_list` and `m.direct` are stored like any
 * other type; hiding ignored users' events is not done here.
 */
export class AccountDataService {
  constructor(private readonly deps: { db: Database; notifier: Notifier }) {}

  async get(userId: string, roomId: string, type: string): Promise<Json> {
    const row = await store.get(this.deps.db, userId, roomId, type);
    if (!row) throw notFound('Account data not found');
    return row.content;
  }

  /** PUT through the client API: refuses server-managed types and oversized content. */
  async put(userId: string, roomId: string, type: string, content: Json): Promise<void> {
    if (SERVER_MANAGED.has(type)) throw new MatrixError(405, 'M_BAD_JSON', `Cannot set ${type} through this API`);
    if (type === '') throw badJson('The type must not be empty');
    await this.update(userId, roomId, type, () => content);
  }

  /** Replaces one entry with `fn(current)` (undefined when absent): one write, under the lock. */
  async update(userId: string, roomId: string, type: string, fn: (current: Json | undefined) => Json): Promise<void> {
    const id = await this.deps.db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(?)', [ACCOUNT_DATA_LOCK]);
      const current = await store.get(tx, userId, roomId, type);
      const content = fn(current?.content);
      if (Buffer.byteLength(JSON.stringify(content)) > MAX_ACCOUNT_DATA_BYTES) throw new MatrixError(413, 'M_TOO_LARGE', 'Account data is too large');
      const streamId = await store.nextStreamId(tx);
      await store.upsert(tx, userId, roomId, type, content, streamId);
      return streamId;
    });
    this.deps.notifier.notify({ position: 0, streams: { accountData: id }, roomIds: [], userIds: [userId] });
  }

  async tags(userId: string, roomId: string): Promise<Json> {
    const row = await store.get(this.deps.db, userId, roomId, 'm.tag');
    const tags = row && typeof row.content.tags === 'object' && row.content.tags !== null ? row.content.tags : {};
    return { tags };
  }

  async putTag(userId: string, roomId: string, tag: string, body: Json): Promise<void> {
    if (tag === '' || tag.length > 255) throw badJson('Invalid tag name');
    if (body.order !== undefined && (typeof body.order !== 'number' || !Number.isFinite(body.order) || body.order < 0 || body.order > 1)) {
      throw badJson("'order' must be a number between 0 and 1");
    }
    await this.update(userId, roomId, 'm.tag', (cur) => ({ ...cur, tags: { ...tagsOf(cur), [tag]: body } }));
  }

  async deleteTag(userId: string, roomId: string, tag: string): Promise<void> {
    await this.update(userId, roomId, 'm.tag', (cur) => {
      const tags = tagsOf(cur);
      delete tags[tag];
      return { ...cur, tags };
    });
  }
}

function tagsOf(content: Json | undefined): Json {
  const t = content?.tags;
  return typeof t === 'object' && t !== null && !Array.isArray(t) ? { ...(t as Json) } : {};
}
