// Receipts and read markers (spec: "Receipts", "Read and unread markers"):
// POST /rooms/{roomId}/receipt/{receiptType}/{eventId} and POST /rooms/{roomId}/read_markers —
// validation and authorization, m.receipt in /sync (initial: every receipt of the room;
// incremental: the changes; long-polls woken), receipts only moving forward, private receipts
// seen by their owner only, threaded receipts and their thread check, the fully read marker as
// room account data, and latestReadPosition (what unread counts follow).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { TestServer } from './support/harness.js';
import { api, assertError, createRoom, enc, join, ok, send, suiteWithUsers, type User } from './support/rooms.js';
import { beforeAll } from './support/hooks.js';
import { latestReadPosition } from '../src/storage/receipts.js';
import { syncAs as sync } from './support/e2e.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


const receipt = (s: TestServer, u: User, roomId: string, type: string, eventId: string, body: Record<string, unknown> = {}) =>
  api(s, u, 'POST', `/rooms/${enc(roomId)}/receipt/${enc(type)}/${enc(eventId)}`, body);
const markers = (s: TestServer, u: User, roomId: string, body: Record<string, unknown>) => api(s, u, 'POST', `/rooms/${enc(roomId)}/read_markers`, body);

/** [eventId, receiptType, userId, threadId?] of every m.receipt entry of a room in a sync response, sorted. */
function receiptsIn(body: any, roomId: string): string[][] {
  const out: string[][] = [];
  for (const e of body.rooms?.join?.[roomId]?.ephemeral?.events ?? []) {
    if (e.type !== 'm.receipt') continue;
    for (const [eventId, byType] of Object.entries<any>(e.content)) {
      for (const [type, byUser] of Object.entries<any>(byType)) {
        for (const [userId, data] of Object.entries<any>(byUser)) {
          assert.type(data.ts, 'number', 'each receipt has a ts');
          out.push(data.thread_id ? [eventId, type, userId, data.thread_id] : [eventId, type, userId]);
        }
      }
    }
  }
  return out.sort();
}

const fullyRead = (body: any, roomId: string) =>
  (body.rooms?.join?.[roomId]?.account_data?.events ?? []).filter((e: any) => e.type === 'm.fully_read').map((e: any) => e.content.event_id);

const t = suiteWithUsers('receipts', ['alice', 'bob', 'carol'] as const);
type Ctx = { roomId: string; m1: string; m2: string; m3: string; other: string };
const c = {} as Ctx;

beforeAll(t, async ({ s, alice, bob, carol }) => {
  c.roomId = await createRoom(s, alice, { preset: 'public_chat', name: 'Receipts' });
  await join(s, bob, c.roomId);
  c.m1 = await send(s, alice, c.roomId, 'one');
  c.m2 = await send(s, alice, c.roomId, 'two');
  c.m3 = await send(s, alice, c.roomId, 'three');
  const other = await createRoom(s, carol, { preset: 'public_chat' });
  c.other = await send(s, carol, other, 'elsewhere');
});

t('bad receipts are refused with the spec errors', async ({ s, alice, bob, carol }) => {
  const { roomId, m1 } = c;
  assertError(await receipt(s, bob, roomId, 'm.unread', m1), 400, 'M_INVALID_PARAM', 'unknown receipt type');
  assertError(await receipt(s, carol, roomId, 'm.read', m1), 403, 'M_FORBIDDEN', 'not a member');
  assertError(await receipt(s, bob, roomId, 'm.read', '$nope:hearth.test'), 404, 'M_NOT_FOUND', 'unknown event');
  assertError(await receipt(s, bob, roomId, 'm.read', c.other), 404, 'M_NOT_FOUND', 'event of another room');
  assertError(await receipt(s, bob, roomId, 'm.read', m1, { thread_id: '' }), 400, 'M_INVALID_PARAM', 'empty thread_id');
  assertError(await receipt(s, bob, roomId, 'm.read', m1, { thread_id: 7 }), 400, 'M_INVALID_PARAM', 'thread_id not a string');
  assertError(await receipt(s, bob, roomId, 'm.fully_read', m1, { thread_id: 'main' }), 400, 'M_INVALID_PARAM', 'thread_id with m.fully_read');
  assertError(await api(s, null, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(m1)}`, {}), 401, 'M_MISSING_TOKEN');
  assertError(await markers(s, bob, roomId, { 'm.fully_read': 42 }), 400, 'M_INVALID_PARAM', 'marker not an event id');
  assertError(await markers(s, carol, roomId, { 'm.fully_read': m1 }), 403, 'M_FORBIDDEN', 'markers: not a member');
  assertError(await markers(s, bob, roomId, { 'm.fully_read': m1, 'm.read': '$nope:hearth.test' }), 404, 'M_NOT_FOUND', 'markers: unknown event');
  // None of it was stored (the markers request with one bad id set nothing either).
  const body = await sync(s, alice);
  assert.equal(receiptsIn(body, roomId), []);
  assert.equal(fullyRead(await sync(s, bob), roomId), []);
});

t('a receipt wakes the other members\' long-polls; initial sync has all, incremental only changes', async ({ s, alice, bob }) => {
  const { roomId, m1, m2 } = c;
  const since = (await sync(s, alice)).next_batch;
  const waiting = sync(s, alice, { since, timeout: 10_000 });
  await sleep(50);
  ok(await receipt(s, bob, roomId, 'm.read', m1));
  const woke = await waiting;
  assert.equal(receiptsIn(woke, roomId), [[m1, 'm.read', bob.user_id]], 'the long-poll returned with the receipt');
  ok(await receipt(s, alice, roomId, 'm.read', m2));
  const inc = await sync(s, alice, { since: woke.next_batch });
  assert.equal(receiptsIn(inc, roomId), [[m2, 'm.read', alice.user_id]], 'incremental: only the change');
  assert.equal(receiptsIn(await sync(s, alice, { since: inc.next_batch }), roomId), [], 'nothing new, no m.receipt');
  assert.equal(receiptsIn(await sync(s, bob), roomId), [[m1, 'm.read', bob.user_id], [m2, 'm.read', alice.user_id]].sort(), 'initial sync: every receipt');
});

t('a receipt never moves back', async ({ s, alice, bob }) => {
  const { roomId, m1, m2 } = c;
  ok(await receipt(s, bob, roomId, 'm.read', m2));
  const since = (await sync(s, alice)).next_batch;
  ok(await receipt(s, bob, roomId, 'm.read', m1), 'an older receipt is accepted...');
  assert.equal(receiptsIn(await sync(s, alice, { since }), roomId), [], '...and ignored: no change');
  assert.ok(receiptsIn(await sync(s, alice), roomId).some((r) => r[0] === m2 && r[2] === bob.user_id), 'bob still read up to m2');
});

t('a private receipt is seen by its owner only', async ({ s, alice, bob }) => {
  const { roomId, m3 } = c;
  const sinceAlice = (await sync(s, alice)).next_batch;
  const sinceBob = (await sync(s, bob)).next_batch;
  ok(await receipt(s, bob, roomId, 'm.read.private', m3));
  assert.equal(receiptsIn(await sync(s, bob, { since: sinceBob }), roomId), [[m3, 'm.read.private', bob.user_id]], 'bob sees his own');
  assert.ok(receiptsIn(await sync(s, bob), roomId).some((r) => r[1] === 'm.read.private'), 'and in his initial sync');
  assert.equal(receiptsIn(await sync(s, alice, { since: sinceAlice }), roomId), [], 'alice: nothing');
  assert.ok(!receiptsIn(await sync(s, alice), roomId).some((r) => r[1] === 'm.read.private'), 'not in her initial sync either');
  // Unread counts follow the furthest of m.read and m.read.private.
  const db = s.hs.deps.db;
  const m3Pos = (await db.query<{ s: string }>('select stream_ordering as s from events where event_id = ?', [m3]))[0]!.s;
  assert.is(await latestReadPosition(db, bob.user_id, roomId), Number(m3Pos));
  assert.is(await latestReadPosition(db, '@nobody:hearth.test', roomId), 0, 'no receipt: 0');
});

t('threaded receipts: the event must belong to the thread', async ({ s, alice, bob }) => {
  const { roomId, m1 } = c;
  const root = await send(s, alice, roomId, 'root');
  const reply = await send(s, alice, roomId, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
  const reaction = await send(s, bob, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: reply, key: '👍' } }, 'm.reaction');
  const since = (await sync(s, alice)).next_batch;
  assertError(await receipt(s, bob, roomId, 'm.read', reply, { thread_id: 'main' }), 400, 'M_INVALID_PARAM', 'a thread event is not main');
  assertError(await receipt(s, bob, roomId, 'm.read', m1, { thread_id: root }), 400, 'M_INVALID_PARAM', 'an unrelated event is not in the thread');
  assertError(await receipt(s, bob, roomId, 'm.read', reply, { thread_id: m1 }), 400, 'M_INVALID_PARAM', 'another thread');
  ok(await receipt(s, bob, roomId, 'm.read', reply, { thread_id: root }));
  ok(await receipt(s, bob, roomId, 'm.read', root, { thread_id: 'main' }), 'a thread root is in the main timeline');
  ok(await receipt(s, bob, roomId, 'm.read.private', reaction, { thread_id: root }), 'a reaction to a thread event belongs to the thread');
  assert.equal(
    receiptsIn(await sync(s, alice, { since }), roomId),
    [[reply, 'm.read', bob.user_id, root], [root, 'm.read', bob.user_id, 'main']].sort(),
    'threaded receipts carry their thread_id (the private one stays with bob)',
  );
  const db = s.hs.deps.db;
  const pos = async (id: string) => Number((await db.query<{ s: string }>('select stream_ordering as s from events where event_id = ?', [id]))[0]!.s);
  assert.is(await latestReadPosition(db, bob.user_id, roomId, root), await pos(reaction), 'thread: its own receipts (private included) and unthreaded ones');
  assert.is(await latestReadPosition(db, bob.user_id, roomId, 'main'), Math.max(await pos(root), await pos(c.m3)), 'main: its receipts and unthreaded ones');
});

t('read_markers sets the fully read marker (forward only) and receipts in one request', async ({ s, alice, bob }) => {
  const { roomId, m1, m2 } = c;
  const m4 = await send(s, alice, roomId, 'four');
  const sinceBob = (await sync(s, bob)).next_batch;
  const sinceAlice = (await sync(s, alice)).next_batch;
  ok(await markers(s, bob, roomId, { 'm.fully_read': m2, 'm.read': m4 }));
  const inc = await sync(s, bob, { since: sinceBob });
  assert.equal(fullyRead(inc, roomId), [m2], 'the marker comes as room account data');
  assert.equal(receiptsIn(await sync(s, alice, { since: sinceAlice }), roomId), [[m4, 'm.read', bob.user_id]], 'and the receipt as m.receipt');
  assertError(await api(s, bob, 'PUT', `/user/${enc(bob.user_id)}/rooms/${enc(roomId)}/account_data/m.fully_read`, { event_id: m1 }), 405, 'M_BAD_JSON', 'not settable directly');
  ok(await receipt(s, bob, roomId, 'm.fully_read', m1), 'an older marker is accepted...');
  ok(await markers(s, bob, roomId, { 'm.fully_read': m1 }));
  const got = ok(await api(s, bob, 'GET', `/user/${enc(bob.user_id)}/rooms/${enc(roomId)}/account_data/m.fully_read`));
  assert.equal(got, { event_id: m2 }, '...and ignored: the marker stays at m2');
  ok(await receipt(s, bob, roomId, 'm.fully_read', m4));
  assert.equal(ok(await api(s, bob, 'GET', `/user/${enc(bob.user_id)}/rooms/${enc(roomId)}/account_data/m.fully_read`)), { event_id: m4 });
  assert.equal(fullyRead(await sync(s, bob), roomId), [m4], 'initial sync');
});

t.run();

// A room whose history is hidden from those who joined later: receipts only for visible events.
const vis = suite('receipts: visibility');
vis('an event from before one could see the room cannot be receipted', async () => {
  const { startTestServer, registerUser } = await import('./support/harness.js');
  const s = await startTestServer();
  try {
    const alice = await registerUser(s, 'alice');
    const bob = await registerUser(s, 'bob');
    const roomId = await createRoom(s, alice, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] });
    const early = await send(s, alice, roomId, 'before bob');
    await join(s, bob, roomId);
    const late = await send(s, alice, roomId, 'after bob');
    assertError(await receipt(s, bob, roomId, 'm.read', early), 404, 'M_NOT_FOUND', 'hidden history');
    ok(await receipt(s, bob, roomId, 'm.read', late));
  } finally {
    await s.close();
  }
});
vis.run();
