// The sync caches (services/sync/cache.ts): bounded LRUs of immutable data, shared by the syncs of
// one process. Unit tests with a fake database count the queries; one end-to-end test checks that a
// redaction is served redacted after the caches were warmed (redacted_by is never cached).
import { suite, test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lru, SyncCache } from '../src/services/sync/cache.js';
import { stateKey } from '../src/services/rooms/pdu.js';
import type { Sql } from '../src/storage/db.js';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';

/** A fake database answering the few queries the cache makes, and recording them. */
function fakeDb() {
  const queries: string[] = [];
  const sql: Sql = {
    query: async <T>(text: string, params: unknown[] = []): Promise<T[]> => {
      queries.push(text);
      if (text.includes('from rooms')) return (params[0] as string[]).map((r) => ({ room_id: r, room_version: '10' })) as T[];
      if (text.includes('state_snapshot_entries')) {
        // Every snapshot has a member event for @a only.
        const out = [];
        const flat = params.slice(1) as string[];
        for (let i = 0; i < flat.length; i += 2) if (flat[i] === 'm.room.member' && flat[i + 1] === '@a:x') out.push({ type: flat[i], state_key: flat[i + 1], event_id: `$m${params[0]}` });
        return out as T[];
      }
      if (text.includes('from events where event_id in')) {
        return (params[0] as string[]).map((id) => ({
          event_id: id, room_id: '!r:x', stream_ordering: '1', depth: '1', type: 'm.room.message', state_key: null, sender: '@a:x',
          origin_server_ts: '1', json: JSON.stringify({ type: 'm.room.message', content: { body: id } }), state_after: '1', outlier: false,
          rejected_reason: null, redacted_by: '$redaction', replaces_state: null,
        })) as T[];
      }
      if (text.includes('order by stream_ordering desc limit 1')) return [{ state_after: String(params[1]) }] as T[];
      throw new Error(`unexpected query ${text}`);
    },
  };
  return { sql, queries };
}

test('Lru keeps at most max entries, dropping the least recently used', () => {
  const l = new Lru<string, number>(3);
  for (const [i, k] of ['a', 'b', 'c'].entries()) l.set(k, i);
  assert.is(l.get('a'), 0); // a is now the most recent
  l.set('d', 3);
  assert.is(l.size, 3);
  assert.is(l.get('b'), undefined);
  assert.equal([l.get('a'), l.get('c'), l.get('d')], [0, 2, 3]);
  for (let i = 0; i < 100; i++) l.set(`k${i}`, i);
  assert.is(l.size, 3);
});

test('SyncCache answers repeated lookups from memory, misses included, and stays bounded', async () => {
  const { sql, queries } = fakeDb();
  const c = new SyncCache({ roomVersions: 2, snapshotEntries: 4, snapshotAt: 2, pdus: 2, atPosition: 2 });

  assert.equal([...(await c.roomVersions(sql, ['!a:x', '!b:x']))], [['!a:x', '10'], ['!b:x', '10']]);
  assert.equal([...(await c.roomVersions(sql, ['!a:x', '!b:x']))], [['!a:x', '10'], ['!b:x', '10']]);
  assert.is(queries.length, 1);
  await c.roomVersions(sql, ['!c:x']); // evicts !a:x
  await c.roomVersions(sql, ['!a:x', '!c:x']);
  assert.is(queries.length, 3);
  assert.is(queries[2]!.includes('from rooms'), true);

  queries.length = 0;
  const keys: [string, string][] = [['m.room.member', '@a:x'], ['m.room.member', '@b:x']];
  const first = await c.snapshotKeys(sql, 7, keys);
  const again = await c.snapshotKeys(sql, 7, keys);
  assert.equal([...first], [[stateKey('m.room.member', '@a:x'), '$m7']]);
  assert.equal([...again], [...first]); // '@b:x' absent: remembered as absent
  assert.is(queries.length, 1);
  await c.snapshotKeys(sql, 8, keys);
  await c.snapshotKeys(sql, 9, keys); // 6 entries for a cap of 4: snapshot 7's are gone
  await c.snapshotKeys(sql, 7, keys);
  assert.is(queries.length, 4);

  queries.length = 0;
  assert.is(await c.stateSnapshotAt(sql, '!r:x', 5), 5);
  assert.is(await c.stateSnapshotAt(sql, '!r:x', 5), 5);
  assert.is(queries.length, 1);

  queries.length = 0;
  const pdus = await c.pdusOf(sql, ['$1', '$2']);
  await c.pdusOf(sql, ['$1', '$2']);
  assert.is(queries.length, 1);
  // Only the PDU is kept: nothing of the mutable redacted_by column.
  // The row's room_id is attached (a v12 create event's JSON has none).
  assert.equal(pdus.get('$1'), { room_id: '!r:x', type: 'm.room.message', content: { body: '$1' }, event_id: '$1' });
  await c.pdusOf(sql, ['$3']);
  await c.pdusOf(sql, ['$1']);
  assert.is(queries.length, 3);
});

test('SyncCache.atPosition: concurrent callers share one read per position; a failed read is not kept', async () => {
  const c = new SyncCache({ roomVersions: 2, snapshotEntries: 4, snapshotAt: 2, pdus: 2, atPosition: 2 });
  let reads = 0;
  const read = async () => {
    reads++;
    await new Promise((r) => setTimeout(r, 5));
    return { n: reads };
  };
  const both = await Promise.all([c.atPosition(10, 'counts !r', read), c.atPosition(10, 'counts !r', read)]);
  assert.is(reads, 1);
  assert.is(both[0], both[1]);
  await c.atPosition(11, 'counts !r', read); // a new commit: asked again
  assert.is(reads, 2);
  await c.atPosition(12, 'x', read);
  await c.atPosition(10, 'counts !r', read); // evicted (cap 2)
  assert.is(reads, 4);
  let failed = false;
  await c.atPosition(13, 'y', () => Promise.reject(new Error('db down'))).catch(() => (failed = true));
  assert.ok(failed);
  assert.equal(await c.atPosition(13, 'y', async () => 'ok'), 'ok');
});

type User = { user_id: string; access_token: string; device_id: string };
const e2e = suite<{ s: TestServer; alice: User; bob: User }>('sync cache end to end');
beforeAll(e2e, async (ctx) => {
  ctx.s = await startTestServer();
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
});
e2e.after(async (ctx) => {
  await ctx.s?.close();
});

e2e('an event redacted after syncs warmed the caches is served redacted', async ({ s, alice, bob }) => {
  const api = async (u: User, method: string, path: string, body?: unknown) => {
    const res = await s.request(method, `/_matrix/client/v3${path}`, { token: u.access_token, body });
    assert.is(res.status, 200, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body as any;
  };
  const filter = encodeURIComponent(JSON.stringify({ room: { state: { lazy_load_members: true } } }));
  const { room_id: roomId } = await api(alice, 'POST', '/createRoom', { preset: 'public_chat' });
  const r = encodeURIComponent(roomId);
  await api(bob, 'POST', `/join/${r}`, {});
  const { event_id: eventId } = await api(alice, 'PUT', `/rooms/${r}/send/m.room.message/c1`, { msgtype: 'm.text', body: 'secret' });
  const first = await api(bob, 'GET', `/sync?filter=${filter}`);
  const seen = first.rooms.join[roomId].timeline.events.find((e: any) => e.event_id === eventId);
  assert.is(seen.content.body, 'secret');
  await api(alice, 'PUT', `/rooms/${r}/redact/${encodeURIComponent(eventId)}/c2`, {});
  const next = await api(bob, 'GET', `/sync?filter=${filter}&since=${first.next_batch}`);
  assert.ok(next.rooms.join[roomId].timeline.events.some((e: any) => e.type === 'm.room.redaction' && (e.redacts ?? e.content.redacts) === eventId));
  for (const body of [await api(bob, 'GET', `/sync?filter=${filter}`), await api(alice, 'GET', '/sync')]) {
    const ev = body.rooms.join[roomId].timeline.events.find((e: any) => e.event_id === eventId);
    assert.equal(ev.content, {});
    assert.ok(ev.unsigned.redacted_because);
  }
});

e2e.run();
test.run();
