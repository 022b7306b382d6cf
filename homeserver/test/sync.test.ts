// Long-poll /sync against the spec (client-server-api "Syncing", "Filtering", "Lazy-loading room
// members"; data/api/client-server/sync.yaml): response shape, gappy timelines and /messages,
// lazy-loaded members, invites and leaves, long-poll wake-ups, filters, idempotent sends across a
// restart, concurrent commits, and two processes on one database woken through Redis.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer, type Response } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { responseErrors } from './support/spec_schema.js';

type User = { user_id: string; access_token: string; device_id: string };
const enc = encodeURIComponent;
let txn = 0;

const api = (s: TestServer, u: User, method: string, path: string, body?: unknown): Promise<Response> =>
  s.request(method, `/_matrix/client/v3${path}`, { token: u.access_token, body });

function ok(res: Response, what: string): any {
  assert.is(res.status, 200, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function createRoom(s: TestServer, u: User, body: Record<string, unknown> = {}): Promise<string> {
  return ok(await api(s, u, 'POST', '/createRoom', body), 'createRoom').room_id;
}
async function send(s: TestServer, u: User, roomId: string, body: string): Promise<string> {
  return ok(await api(s, u, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body }), 'send').event_id;
}
async function join(s: TestServer, u: User, roomId: string): Promise<void> {
  ok(await api(s, u, 'POST', `/join/${enc(roomId)}`, {}), 'join');
}

/** GET /sync with query parameters (filter objects are sent inline). */
async function sync(s: TestServer, u: User, q: Record<string, string | number | boolean | object | undefined> = {}): Promise<any> {
  return ok(await syncRaw(s, u, q), 'sync');
}
function syncRaw(s: TestServer, u: User, q: Record<string, string | number | boolean | object | undefined> = {}): Promise<Response> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  return api(s, u, 'GET', `/sync?${params}`);
}

const messageIds = (room: any): string[] => (room?.timeline.events ?? []).filter((e: any) => e.type === 'm.room.message').map((e: any) => e.event_id);
const memberKeys = (room: any): string[] => room.state.events.filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key).sort();

const t = suite<{ s: TestServer; alice: User; bob: User; carol: User; dave: User }>('sync');

beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer();
  for (const name of ['alice', 'bob', 'carol', 'dave'] as const) ctx[name] = await registerUser(ctx.s, name);
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

t('initial sync has the shape of the spec schema; unknown parameters and set_presence are accepted', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { name: 'Shape', topic: 'schemas', invite: [bob.user_id] });
  await send(s, alice, roomId, 'hello');
  const body = await sync(s, alice, { set_presence: 'offline', cache_buster: 123, use_state_after: 'false' });
  assert.equal(responseErrors('api/client-server/sync.yaml', '/sync', 'get', 200, body), []);
  assert.match(body.next_batch, /^s\d+(?:_\d+){6}$/); // s<events>_<accountData>_<receipts>_<typing>_<presence>_<toDevice>_<deviceLists>
  const room = body.rooms.join[roomId];
  assert.ok(room, 'the room is under rooms.join');
  assert.equal(messageIds(room).length, 1);
  assert.is(room.summary['m.joined_member_count'], 1);
  assert.is(room.summary['m.invited_member_count'], 1);
  assert.ok(room.timeline.events.every((e: any) => e.room_id === undefined), 'sync events omit room_id');
  // The timeline holds the whole short history, so the state at its start is empty (spec note).
  assert.is(room.timeline.limited, false);
  assert.equal(room.state.events, []);

  const invited = await sync(s, bob);
  assert.equal(responseErrors('api/client-server/sync.yaml', '/sync', 'get', 200, invited), []);
  assert.ok(invited.rooms.invite[roomId]);
});

t('a limited timeline has prev_batch, and /messages from it back to since returns exactly the gap', async ({ s, alice }) => {
  const roomId = await createRoom(s, alice, { name: 'Gappy' });
  const filter = { room: { rooms: [roomId], timeline: { limit: 10 } } };
  const first = await sync(s, alice, { filter });
  const since = first.next_batch;
  const sent: string[] = [];
  for (let i = 0; i < 30; i++) sent.push(await send(s, alice, roomId, `m${i}`));

  const next = await sync(s, alice, { since, filter });
  const room = next.rooms.join[roomId];
  assert.is(room.timeline.limited, true);
  assert.equal(messageIds(room), sent.slice(20), 'the newest 10');
  assert.type(room.timeline.prev_batch, 'string');

  const back = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100&from=${room.timeline.prev_batch}&to=${since}`), 'messages b');
  assert.equal(back.chunk.map((e: any) => e.event_id), sent.slice(0, 20).reverse(), 'exactly the 20 missing events, newest first');
  assert.is(back.end, undefined, 'nothing more in the gap');
  const fwd = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=f&limit=100&from=${since}&to=${room.timeline.prev_batch}`), 'messages f');
  assert.equal(fwd.chunk.map((e: any) => e.event_id), sent.slice(0, 20), 'and forwards, oldest first');

  const quiet = await sync(s, alice, { since: next.next_batch, filter });
  assert.equal(quiet.rooms.join, {}, 'nothing new: no room');
});

t('lazy-loaded members: only the senders (and the user) in state; redundant ones skipped; gap changes kept', async ({ s, alice, bob, carol, dave }) => {
  const roomId = await createRoom(s, alice, { name: 'Lazy', preset: 'public_chat' });
  for (const u of [bob, carol, dave]) await join(s, u, roomId);
  await send(s, bob, roomId, 'b1');
  await send(s, carol, roomId, 'c1');
  await send(s, bob, roomId, 'b2');
  const lazy = { room: { rooms: [roomId], timeline: { limit: 3 }, state: { lazy_load_members: true } } };

  const initial = await sync(s, alice, { filter: lazy });
  let room = initial.rooms.join[roomId];
  assert.equal(memberKeys(room), [alice.user_id, bob.user_id, carol.user_id].sort(), 'the senders and alice, not dave');
  assert.ok(room.state.events.some((e: any) => e.type === 'm.room.create'), 'other state is complete');
  const full = await sync(s, alice, { filter: { room: { rooms: [roomId], timeline: { limit: 3 } } } });
  assert.equal(memberKeys(full.rooms.join[roomId]), [alice.user_id, bob.user_id, carol.user_id, dave.user_id].sort(), 'without lazy-loading: all');

  // Bob again: his member event is redundant. Dave for the first time: his is sent.
  await send(s, bob, roomId, 'b3');
  await send(s, dave, roomId, 'd1');
  const second = await sync(s, alice, { since: initial.next_batch, filter: lazy });
  room = second.rooms.join[roomId];
  assert.equal(memberKeys(room), [dave.user_id]);

  // A lost response: the retry from the same since sends dave's member again.
  const retry = await sync(s, alice, { since: initial.next_batch, filter: lazy });
  assert.equal(memberKeys(retry.rooms.join[roomId]), [dave.user_id], 'unconfirmed knowledge is not trusted');

  await send(s, dave, roomId, 'd2');
  const third = await sync(s, alice, { since: retry.next_batch, filter: lazy });
  assert.equal(memberKeys(third.rooms.join[roomId]), [], 'dave is redundant now');

  await send(s, dave, roomId, 'd3');
  const redundant = { room: { ...lazy.room, state: { lazy_load_members: true, include_redundant_members: true } } };
  const fourth = await sync(s, alice, { since: third.next_batch, filter: redundant });
  assert.equal(memberKeys(fourth.rooms.join[roomId]), [dave.user_id], 'include_redundant_members sends it anyway');

  // Carol changes her name in a gap: a limited timeline of bob's messages still carries it.
  const renamed = ok(await api(s, carol, 'PUT', `/rooms/${enc(roomId)}/state/m.room.member/${enc(carol.user_id)}`, { membership: 'join', displayname: 'C' }), 'rename');
  for (let i = 0; i < 5; i++) await send(s, bob, roomId, `b${4 + i}`);
  const fifth = await sync(s, alice, { since: fourth.next_batch, filter: lazy });
  room = fifth.rooms.join[roomId];
  assert.is(room.timeline.limited, true);
  assert.equal(memberKeys(room), [carol.user_id], "carol's change in the gap; bob's unchanged member is redundant");
  assert.is(room.state.events[0].event_id, renamed.event_id);
});

t('invites appear under rooms.invite with stripped invite_state; joining moves the room to rooms.join', async ({ s, alice, bob }) => {
  const before = await sync(s, bob);
  const roomId = await createRoom(s, alice, { name: 'Invite me', topic: 'come in' });
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.user_id }), 'invite');

  const invited = await sync(s, bob, { since: before.next_batch });
  assert.equal(Object.keys(invited.rooms.join), []);
  const state = invited.rooms.invite[roomId].invite_state.events as any[];
  const byType = new Map(state.map((e) => [e.type, e]));
  assert.is(byType.get('m.room.name').content.name, 'Invite me');
  assert.ok(byType.get('m.room.create'));
  const me = state.find((e) => e.type === 'm.room.member' && e.state_key === bob.user_id);
  assert.is(me.content.membership, 'invite');
  assert.is(me.sender, alice.user_id);
  for (const e of state) assert.equal(Object.keys(e).sort(), ['content', 'sender', 'state_key', 'type'], 'stripped state events');
  assert.equal(responseErrors('api/client-server/sync.yaml', '/sync', 'get', 200, invited), []);

  await join(s, bob, roomId);
  const joined = await sync(s, bob, { since: invited.next_batch });
  assert.equal(Object.keys(joined.rooms.invite), []);
  const room = joined.rooms.join[roomId];
  assert.ok(room, 'now under rooms.join');
  const all = [...room.state.events, ...room.timeline.events];
  assert.ok(all.some((e: any) => e.type === 'm.room.topic'), 'a newly joined room comes with its state');
  assert.is(room.timeline.events.at(-1).state_key, bob.user_id, "the timeline ends with bob's join");
});

t('leaving moves the room to rooms.leave; later events stay out; include_leave lists it in an initial sync', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { name: 'Leave me', preset: 'public_chat' });
  await join(s, bob, roomId);
  const before = await sync(s, bob);
  await send(s, alice, roomId, 'before you go');
  ok(await api(s, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'leave');
  await send(s, alice, roomId, 'after you left');

  const left = await sync(s, bob, { since: before.next_batch });
  assert.is(left.rooms.join[roomId], undefined);
  const room = left.rooms.leave[roomId];
  assert.ok(room, 'under rooms.leave');
  const tl = room.timeline.events;
  assert.is(tl.at(-1).type, 'm.room.member');
  assert.is(tl.at(-1).content.membership, 'leave');
  assert.ok(!tl.some((e: any) => e.content.body === 'after you left'), 'nothing after the leave');
  assert.ok(tl.some((e: any) => e.content.body === 'before you go'));

  const later = await sync(s, bob, { since: left.next_batch });
  assert.is(later.rooms.leave[roomId], undefined, 'reported once');
  const initial = await sync(s, bob, { filter: { room: { include_leave: true } } });
  assert.ok(initial.rooms.leave[roomId], 'include_leave');
  assert.is((await sync(s, bob)).rooms.leave[roomId], undefined, 'not without include_leave');
});

t('a waiting long-poll returns as soon as another user sends', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { name: 'Live', preset: 'public_chat' });
  await join(s, bob, roomId);
  const since = (await sync(s, bob)).next_batch;
  const started = Date.now();
  const waiting = sync(s, bob, { since, timeout: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  const eventId = await send(s, alice, roomId, 'wake up');
  const woke = await waiting;
  const elapsed = Date.now() - started;
  assert.equal(messageIds(woke.rooms.join[roomId]), [eventId]);
  console.log(`    long-poll woke after ${elapsed} ms (timeout 10000)`);
});

t('full_state: every joined room with its full state, at once', async ({ s, alice }) => {
  const roomId = await createRoom(s, alice, { name: 'Full' });
  const since = (await sync(s, alice)).next_batch;
  const body = await sync(s, alice, { since, full_state: true, timeout: 10_000 });
  const room = body.rooms.join[roomId];
  assert.ok(room, 'the room is there without new events');
  assert.equal(room.timeline.events, []);
  const types = room.state.events.map((e: any) => e.type);
  for (const t of ['m.room.create', 'm.room.power_levels', 'm.room.name', 'm.room.member']) assert.ok(types.includes(t), t);
});

t('filters: rooms, not_rooms, types, not_types, senders; by id and inline', async ({ s, alice, bob }) => {
  const r1 = await createRoom(s, alice, { name: 'F1', preset: 'public_chat' });
  const r2 = await createRoom(s, alice, { name: 'F2' });
  await join(s, bob, r1);
  const m1 = await send(s, alice, r1, 'from alice');
  const m2 = await send(s, bob, r1, 'from bob');
  await send(s, alice, r2, 'other room');

  const only = await sync(s, alice, { filter: { room: { rooms: [r1, r2], not_rooms: [r2] } } });
  assert.equal(Object.keys(only.rooms.join), [r1]);
  const typed = await sync(s, alice, { filter: { room: { rooms: [r1], timeline: { types: ['m.room.message'] } } } });
  assert.equal(typed.rooms.join[r1].timeline.events.map((e: any) => e.event_id), [m1, m2]);
  const notTyped = await sync(s, alice, { filter: { room: { rooms: [r1], timeline: { not_types: ['m.room.*'] } } } });
  assert.equal(notTyped.rooms.join[r1].timeline.events, []);
  const fromBob = await sync(s, alice, { filter: { room: { rooms: [r1], timeline: { senders: [bob.user_id] } } } });
  assert.ok(fromBob.rooms.join[r1].timeline.events.every((e: any) => e.sender === bob.user_id));
  assert.ok(fromBob.rooms.join[r1].timeline.events.some((e: any) => e.event_id === m2));

  const stored = ok(await api(s, alice, 'POST', `/user/${enc(alice.user_id)}/filter`, { room: { rooms: [r2], timeline: { limit: 1 } } }), 'filter').filter_id;
  const byId = await sync(s, alice, { filter: stored });
  assert.equal(Object.keys(byId.rooms.join), [r2]);
  assert.is(byId.rooms.join[r2].timeline.events.length, 1);
  assert.is(byId.rooms.join[r2].timeline.limited, true);
});

t('a bad since token is 400 M_INVALID_PARAM', async ({ s, alice }) => {
  for (const since of ['garbage', 's', 's999999999999']) {
    const res = await syncRaw(s, alice, { since });
    assert.is(res.status, 400, since);
    assert.is(res.body.errcode, 'M_INVALID_PARAM', since);
  }
  const res = await syncRaw(s, alice, { filter: '{not json' });
  assert.is(res.status, 400);
});

t('an unnamed room\'s summary names its heroes: other joined and invited members in the order they arrived', async ({ s, alice, bob, carol, dave }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, dave, roomId);
  await join(s, bob, roomId);
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: carol.user_id }), 'invite carol');
  for (let i = 0; i < 3; i++) await send(s, alice, roomId, `after the members ${i}`);
  const heroes = async () => (await sync(s, alice)).rooms.join[roomId].summary['m.heroes'];
  assert.equal(await heroes(), [dave.user_id, bob.user_id, carol.user_id]);
  ok(await api(s, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'bob leaves');
  assert.equal(await heroes(), [dave.user_id, carol.user_id], 'a member who left is no hero');
});

t.run();

// Servers of their own: restarted, or two processes on one database.
const own = suite('sync: restarts, concurrent commits, two processes');

own('an idempotent send is idempotent across a restart', async () => {
  const s = await startTestServer();
  let s2: TestServer | undefined;
  try {
    const alice = await registerUser(s, 'alice');
    const roomId = await createRoom(s, alice, { name: 'Restart' });
    const path = `/rooms/${enc(roomId)}/send/m.room.message/same-txn`;
    const first = ok(await api(s, alice, 'PUT', path, { msgtype: 'm.text', body: 'once' }), 'send').event_id;
    await s.stop();
    s2 = await startTestServer({}, { databaseUrl: s.databaseUrl });
    const again = ok(await api(s2, alice, 'PUT', path, { msgtype: 'm.text', body: 'once' }), 'resend').event_id;
    assert.is(again, first, 'the same event id after the restart');
    const msgs = ok(await api(s2, alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100`), 'messages');
    assert.equal(msgs.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.event_id), [first], 'one event in the room');
    const synced = await sync(s2, alice);
    assert.equal(messageIds(synced.rooms.join[roomId]), [first]);
    assert.is(synced.rooms.join[roomId].timeline.events.find((e: any) => e.event_id === first).unsigned.transaction_id, 'same-txn');
  } finally {
    await s2?.close();
    await s.close();
  }
});

own('concurrent commits: a client syncing in a loop receives every event once, in stream order', async () => {
  const s = await startTestServer();
  try {
    const users = await Promise.all(['u0', 'u1', 'u2', 'u3', 'u4'].map((n) => registerUser(s, n)));
    const reader = await registerUser(s, 'reader');
    const roomId = await createRoom(s, reader, { name: 'Busy', preset: 'public_chat' });
    for (const u of users) await join(s, u, roomId);
    const filter = { room: { rooms: [roomId], timeline: { limit: 1000 } } };
    let since = (await sync(s, reader, { filter })).next_batch;
    const start = since;

    const PER_USER = 40;
    const sent = new Set<string>();
    let sending = true;
    const senders = Promise.all(
      users.map(async (u, i) => {
        // Several sends in flight per user: their transactions queue on the stream lock together.
        for (let k = 0; k < PER_USER; k += 4) {
          const ids = await Promise.all([0, 1, 2, 3].map((j) => send(s, u, roomId, `${i}:${k + j}`)));
          for (const id of ids) sent.add(id);
        }
      }),
    ).finally(() => (sending = false));

    const received: string[] = [];
    let rounds = 0;
    for (;;) {
      const done = !sending; // read before the sync: a last round after the senders finished
      const body = await sync(s, reader, { since, filter, timeout: 50 });
      const room = body.rooms.join[roomId];
      if (room) {
        assert.is(room.timeline.limited, false, 'no gaps with this limit');
        received.push(...messageIds(room));
      }
      since = body.next_batch;
      rounds++;
      if (done) break;
    }
    await senders;
    assert.is(sent.size, users.length * PER_USER);
    assert.is(new Set(received).size, received.length, 'no event twice');
    assert.equal([...sent].filter((id) => !received.includes(id)), [], 'every event sent was received');
    const all = ok(await api(s, reader, 'GET', `/rooms/${enc(roomId)}/messages?dir=f&limit=1000&from=${start}`), 'messages');
    assert.equal(received, all.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.event_id), 'in stream order');
    assert.ok(rounds > 2, `the client synced while events were committing (${rounds} rounds)`);
  } finally {
    await s.close();
  }
});

own('two processes on one database: a send on one wakes a long-poll on the other through Redis', async () => {
  const redis = process.env.HEARTH_TEST_REDIS_URL;
  assert.ok(redis, 'HEARTH_TEST_REDIS_URL is set (scripts/test starts Redis)');
  const a = await startTestServer({ HEARTH_REDIS_URL: redis! });
  let b: TestServer | undefined;
  try {
    b = await startTestServer({ HEARTH_REDIS_URL: redis! }, { databaseUrl: a.databaseUrl });
    assert.is(a.hs.deps.bus.kind, 'redis');
    const alice = await registerUser(a, 'alice');
    const bob = await registerUser(b, 'bob');
    const roomId = await createRoom(a, alice, { name: 'Two processes', preset: 'public_chat' });
    await join(b, bob, roomId);
    const sinceA = (await sync(a, alice)).next_batch;
    const sinceB = (await sync(b, bob)).next_batch;

    const started = Date.now();
    const waiting = sync(a, alice, { since: sinceA, timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    const eventId = await send(b, bob, roomId, 'from process B');
    const woke = await waiting;
    assert.equal(messageIds(woke.rooms.join[roomId]), [eventId], 'process A answered with the event sent on B');
    console.log(`    cross-process wake-up after ${Date.now() - started} ms (timeout 10000)`);

    // Both processes serve the same, correct, incremental sync.
    const onA = await sync(a, bob, { since: sinceB });
    const onB = await sync(b, bob, { since: sinceB });
    assert.equal(messageIds(onA.rooms.join[roomId]), [eventId]);
    assert.equal(messageIds(onB.rooms.join[roomId]), [eventId]);
    assert.is(onA.next_batch, onB.next_batch);
  } finally {
    await b?.close();
    await a.close();
  }
});

own.run();
