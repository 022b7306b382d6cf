// Presence (spec: "Presence"): GET/PUT /presence/{userId}/status, who may see whose presence,
// m.presence events in /sync (initial: current state; incremental: changes; long-polls woken;
// the presence filter), set_presence, activity, the idle and stopped-syncing transitions done by
// the sweeper, two processes on one database, the WebSocket sync, and presence switched off.
import { suite, type Test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, assertError, createRoom, enc, join, ok, send, type User } from './support/rooms.js';
import { syncAs as sync } from './support/e2e.js';
import { openSyncSocket } from './support/ws_sync.js';
import { parseToken } from '../src/services/sync/token.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A wait for something the server does on its own fails the test after this long. */
const WAIT_MS = 15_000;

const presenceOf = (body: any, userId: string): any[] => body.presence.events.filter((e: any) => e.sender === userId);

const putPresence = (s: TestServer, u: User, body: Record<string, unknown>, target = u.user_id) => api(s, u, 'PUT', `/presence/${enc(target)}/status`, body);
const getPresence = (s: TestServer, u: User, target: string) => api(s, u, 'GET', `/presence/${enc(target)}/status`);

/**
 * Long-polls `viewer`'s /sync from `since` until an m.presence event of `userId` satisfies `pred`;
 * returns that event's content and the token after it. Every event of `userId` seen on the way is
 * appended to `seen` (to check the order of transitions).
 */
async function waitPresence(s: TestServer, viewer: User, since: string, userId: string, pred: (c: any) => boolean, seen: any[] = []): Promise<{ content: any; since: string }> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const body = await sync(s, viewer, { since, timeout: 5_000 });
    since = body.next_batch;
    for (const e of presenceOf(body, userId)) {
      seen.push(e.content);
      if (pred(e.content)) return { content: e.content, since };
    }
    if (Date.now() > deadline) throw new Error(`no presence of ${userId} matching the condition (seen: ${JSON.stringify(seen)})`);
  }
}

type Ctx<N extends string> = { s: TestServer; roomId: string } & Record<'alice' | 'bob' | N, User>;

/**
 * A suite with its own server (started with `env`), the users alice, bob and `more` registered,
 * and alice's public room `roomId` that bob joined.
 */
function presenceSuite<N extends string = never>(name: string, env: Record<string, string>, more: readonly N[] = []): Test<Ctx<N>> {
  const t = suite<Ctx<N>>(name);
  beforeAll(t, async (ctx) => {
    ctx.s = await startTestServer(env);
    for (const l of ['alice', 'bob', ...more]) (ctx as Record<string, unknown>)[l] = await registerUser(ctx.s, l);
    ctx.roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat' });
    await join(ctx.s, ctx.bob, ctx.roomId);
  });
  t.after(async (ctx) => {
    await ctx.s?.close();
  });
  return t;
}

// ---------------------------------------------------------------------------------------------
// Default timings (the grace is long enough that nobody goes offline during the suite).

const t = presenceSuite('presence: API and /sync', { HEARTH_PRESENCE_SYNC_GRACE_MS: '3600000', HEARTH_PRESENCE_MAX_STATUS_MSG_LENGTH: '16' }, ['carol']);

t('PUT sets and GET reads one\'s own presence; bad bodies are refused', async ({ s, alice }) => {
  ok(await putPresence(s, alice, { presence: 'online', status_msg: 'here' }));
  const online = ok(await getPresence(s, alice, alice.user_id));
  assert.is(online.presence, 'online');
  assert.is(online.status_msg, 'here');
  assert.is(online.currently_active, true, 'just set online: currently active');
  assert.type(online.last_active_ago, 'number');
  assert.ok(online.last_active_ago >= 0);
  assert.not.ok('displayname' in online || 'avatar_url' in online, 'no profile fields');

  // The body replaces the status: no status_msg clears it; currently_active only goes with online.
  ok(await putPresence(s, alice, { presence: 'unavailable' }));
  const away = ok(await getPresence(s, alice, alice.user_id));
  assert.is(away.presence, 'unavailable');
  assert.not.ok('status_msg' in away, JSON.stringify(away));
  assert.not.ok('currently_active' in away);

  assertError(await putPresence(s, alice, {}), 400, 'M_MISSING_PARAM', 'no presence');
  assertError(await putPresence(s, alice, { presence: 'busy' }), 400, 'M_INVALID_PARAM', 'not a spec state');
  assertError(await putPresence(s, alice, { presence: 'online', status_msg: 42 }), 400, 'M_BAD_JSON', 'status_msg not a string');
  assertError(await putPresence(s, alice, { presence: 'online', status_msg: 'x'.repeat(17) }), 400, 'M_INVALID_PARAM', 'status_msg over the limit');
  assert.is(ok(await getPresence(s, alice, alice.user_id)).presence, 'unavailable', 'refused PUTs changed nothing');
  assertError(await getPresence(s, alice, 'not-a-user-id'), 400, 'M_INVALID_PARAM');
  assertError(await api(s, null, 'GET', `/presence/${enc(alice.user_id)}/status`), 401, 'M_MISSING_TOKEN');
});

t('only the user sets their presence; only users sharing a room see it', async ({ s, alice, bob, carol, roomId }) => {
  assertError(await putPresence(s, bob, { presence: 'offline' }, alice.user_id), 403, 'M_FORBIDDEN', "bob sets alice's presence");
  ok(await putPresence(s, alice, { presence: 'online', status_msg: 'visible' }));

  const seen = ok(await getPresence(s, bob, alice.user_id), 'bob shares a room');
  assert.is(seen.presence, 'online');
  assert.is(seen.status_msg, 'visible');
  assertError(await getPresence(s, carol, alice.user_id), 403, 'M_FORBIDDEN', 'carol shares no room');
  assertError(await getPresence(s, carol, '@nobody:hearth.test'), 403, 'M_FORBIDDEN', 'an unknown user');

  // A user who never had a presence state but shares a room: offline.
  const dave = await registerUser(s, 'dave');
  await join(s, dave, roomId);
  assert.equal(ok(await getPresence(s, bob, dave.user_id)), { presence: 'offline' });

  // Visibility follows membership: carol joins, then leaves.
  await join(s, carol, roomId);
  assert.is(ok(await getPresence(s, carol, alice.user_id)).status_msg, 'visible');
  ok(await api(s, carol, 'POST', `/rooms/${enc(roomId)}/leave`, {}));
  assertError(await getPresence(s, carol, alice.user_id), 403, 'M_FORBIDDEN', 'carol left');
});

t('/sync: initial = current presence of room-mates; incremental = changes; long-polls wake; filter applies', async ({ s, alice, bob }) => {
  // zed is in a room of his own: he and bob never see each other's presence.
  const zed = await registerUser(s, 'zed');
  await createRoom(s, zed);
  ok(await putPresence(s, zed, { presence: 'online', status_msg: 'unseen' }));
  ok(await putPresence(s, alice, { presence: 'online', status_msg: 'initial' }));
  const initial = await sync(s, bob);
  assert.equal(presenceOf(initial, zed.user_id), []);
  const a = presenceOf(initial, alice.user_id);
  assert.is(a.length, 1, JSON.stringify(initial.presence));
  assert.is(a[0].type, 'm.presence');
  assert.is(a[0].content.presence, 'online');
  assert.is(a[0].content.status_msg, 'initial');
  assert.is(presenceOf(initial, bob.user_id)[0]?.content.presence, 'online', "bob's own: syncing made him online");
  assert.equal(presenceOf(await sync(s, zed), alice.user_id), [], 'zed shares no room with alice');

  // Incremental: only the change, once.
  ok(await putPresence(s, zed, { presence: 'unavailable', status_msg: 'still unseen' }));
  ok(await putPresence(s, alice, { presence: 'unavailable', status_msg: 'lunch' }));
  const inc = await sync(s, bob, { since: initial.next_batch });
  assert.equal(presenceOf(inc, alice.user_id).map((e) => [e.content.presence, e.content.status_msg, 'currently_active' in e.content]), [['unavailable', 'lunch', false]]);
  assert.equal(presenceOf(inc, bob.user_id), [], "bob's presence did not change");
  assert.equal(presenceOf(inc, zed.user_id), [], 'zed changed too, but shares no room with bob');
  assert.ok(parseToken(inc.next_batch).presence > parseToken(initial.next_batch).presence);
  const again = await sync(s, bob, { since: inc.next_batch });
  assert.equal(again.presence.events, [], 'nothing new');

  // A waiting long-poll wakes with the change.
  const waiting = sync(s, bob, { since: again.next_batch, timeout: 10_000 });
  await sleep(100);
  ok(await putPresence(s, alice, { presence: 'online', status_msg: 'back' }));
  const woke = await waiting;
  assert.equal(presenceOf(woke, alice.user_id).map((e) => [e.content.presence, e.content.status_msg, e.content.currently_active]), [['online', 'back', true]]);

  // The presence filter: bob filters alice out, then all presence (types: []).
  ok(await putPresence(s, alice, { presence: 'online', status_msg: 'filtered' }));
  const notAlice = await sync(s, bob, { since: woke.next_batch, filter: JSON.stringify({ presence: { not_senders: [alice.user_id] } }) });
  assert.equal(presenceOf(notAlice, alice.user_id), []);
  const none = await sync(s, bob, { filter: JSON.stringify({ presence: { types: [] } }) });
  assert.equal(none.presence.events, []);
  assert.is(presenceOf(await sync(s, bob, { since: woke.next_batch }), alice.user_id)[0]?.content.status_msg, 'filtered', 'unfiltered, it is there');
});

t('set_presence: offline leaves presence alone, unavailable sets it; activity makes the user online', async ({ s, bob, roomId }) => {
  const erin = await registerUser(s, 'erin');
  let since = (await sync(s, bob)).next_batch;
  await join(s, erin, roomId);
  // Joining is activity: erin is online; she then says she is offline.
  ({ since } = await waitPresence(s, bob, since, erin.user_id, (c) => c.presence === 'online'));
  ok(await putPresence(s, erin, { presence: 'offline' }));
  await sync(s, erin, { set_presence: 'offline' });
  assert.is(ok(await getPresence(s, bob, erin.user_id)).presence, 'offline', 'set_presence=offline: not marked online');
  await sync(s, erin, { set_presence: 'unavailable' });
  assert.is(ok(await getPresence(s, bob, erin.user_id)).presence, 'unavailable');
  await sync(s, erin); // the default, online, does not override unavailable: only activity does
  assert.is(ok(await getPresence(s, bob, erin.user_id)).presence, 'unavailable');

  await send(s, erin, roomId, 'I am back');
  const { content } = await waitPresence(s, bob, since, erin.user_id, (c) => c.presence === 'online');
  assert.is(content.currently_active, true);
  assert.ok(content.last_active_ago < 60_000);
});

t('a newly joined room brings its members\' current presence', async ({ s, alice, carol }) => {
  ok(await putPresence(s, alice, { presence: 'online', status_msg: 'hello carol' }));
  const room2 = await createRoom(s, alice, { preset: 'public_chat' });
  const since = (await sync(s, carol)).next_batch;
  assert.equal(presenceOf(await sync(s, carol, { since }), alice.user_id), []);
  await join(s, carol, room2);
  const after = await sync(s, carol, { since });
  assert.is(presenceOf(after, alice.user_id)[0]?.content.status_msg, 'hello carol');
});

t('the WebSocket sync delivers presence changes', async ({ s, alice, bob }) => {
  const sock = await openSyncSocket(s, bob, { autoAck: true });
  try {
    await sock.nextSync(); // the initial batch
    ok(await putPresence(s, alice, { presence: 'unavailable', status_msg: 'over the socket' }));
    const f = await sock.nextSync((x) => presenceOf(x.data, alice.user_id).length > 0, WAIT_MS);
    assert.equal(presenceOf(f.data, alice.user_id).map((e) => [e.content.presence, e.content.status_msg]), [['unavailable', 'over the socket']]);
  } finally {
    await sock.close();
  }
});

t.run();

// ---------------------------------------------------------------------------------------------
// Tiny timings: the sweeper's transitions, and the WebSocket sync keeping a user online.

const TIMINGS = {
  HEARTH_PRESENCE_IDLE_MS: '1000',
  HEARTH_PRESENCE_ACTIVE_WINDOW_MS: '100',
  // Generous: on a loaded 2-core CI box a long-poll's round trip alone can pass 300 ms.
  HEARTH_PRESENCE_SYNC_GRACE_MS: '800',
  HEARTH_PRESENCE_SWEEP_INTERVAL_MS: '30',
  HEARTH_SYNC_MAX_TIMEOUT_MS: '500',
  HEARTH_WS_PING_INTERVAL_MS: '100',
};

const tt = presenceSuite('presence: idle and offline transitions', TIMINGS);

tt('idle while syncing: unavailable; activity: online; currently_active clears, then idle again; stopped syncing: offline', async ({ s, alice, bob, roomId }) => {
  let since = (await sync(s, bob)).next_batch;
  // Alice's client long-polls continuously, like a real one, until told to stop.
  let syncing = true;
  const loop = (async () => {
    let tok = (await sync(s, alice)).next_batch;
    while (syncing) tok = (await sync(s, alice, { since: tok, timeout: 200 })).next_batch;
  })();
  const seen: any[] = [];
  try {
    const idle = await waitPresence(s, bob, since, alice.user_id, (c) => c.presence !== 'online', seen);
    since = idle.since;
    assert.is(idle.content.presence, 'unavailable', `idle while syncing: unavailable, not offline (${JSON.stringify(seen)})`);
    assert.ok(idle.content.last_active_ago >= 1000, 'idle for the idle time');

    await send(s, alice, roomId, 'active again');
    const back = await waitPresence(s, bob, since, alice.user_id, (c) => c.presence === 'online', seen);
    assert.is(back.content.currently_active, true);
    // Without further activity: currently_active goes (after 100 ms), then online goes (after 1 s).
    const quiet = await waitPresence(s, bob, back.since, alice.user_id, (c) => c.presence !== 'online' || c.currently_active === false, seen);
    assert.equal([quiet.content.presence, quiet.content.currently_active], ['online', false], JSON.stringify(seen));
    const idleAgain = await waitPresence(s, bob, quiet.since, alice.user_id, (c) => c.presence !== 'online', seen);
    since = idleAgain.since;
    assert.is(idleAgain.content.presence, 'unavailable');
  } finally {
    syncing = false;
    await loop;
  }
  assert.not.ok(seen.some((c) => c.presence === 'offline'), 'never offline while syncing');
  const gone = await waitPresence(s, bob, since, alice.user_id, (c) => c.presence !== 'unavailable');
  assert.is(gone.content.presence, 'offline');
  assert.is(ok(await getPresence(s, bob, alice.user_id)).presence, 'offline');
});

tt('a connected WebSocket sync keeps its user from going offline; closing it lets them go', async ({ s, bob, roomId }) => {
  const frank = await registerUser(s, 'frank');
  await join(s, frank, roomId);
  const since = (await sync(s, bob)).next_batch;
  const sock = await openSyncSocket(s, frank, { autoAck: true });
  const seen: any[] = [];
  const { since: idle } = await waitPresence(s, bob, since, frank.user_id, (c) => c.presence === 'unavailable', seen);
  assert.not.ok(seen.some((c) => c.presence === 'offline'));
  // Well past the long-poll window plus the grace (1,300 ms): only the socket's pings keep frank
  // syncing. (Had he gone offline, his own socket would have brought him back at once: his row
  // would still have changed.)
  await sleep(2_500);
  const quiet = await sync(s, bob, { since: idle });
  assert.equal(presenceOf(quiet, frank.user_id), [], 'still connected: no change (never offline)');
  assert.is(ok(await getPresence(s, bob, frank.user_id)).presence, 'unavailable');
  await sock.close();
  await waitPresence(s, bob, quiet.next_batch, frank.user_id, (c) => c.presence === 'offline');
});

tt.run();

// The server allows minute-long long-polls, but alice's one sync waits for nothing (timeout 0).
const lp = presenceSuite('presence: a sync counts as syncing only as long as it may wait', { ...TIMINGS, HEARTH_SYNC_MAX_TIMEOUT_MS: '600000', HEARTH_PRESENCE_IDLE_MS: '600000' });

lp('offline follows the grace after the last sync could end, not the server\'s longest long-poll', async ({ s, alice, bob }) => {
  const since = (await sync(s, bob)).next_batch;
  await sync(s, alice, { timeout: 0 });
  // Within WAIT_MS (far below the 10 minute long-poll ceiling) alice is offline again.
  const gone = await waitPresence(s, bob, since, alice.user_id, (c) => c.presence === 'offline');
  assert.is(gone.content.presence, 'offline');
});

lp.run();

// ---------------------------------------------------------------------------------------------

const two = suite('presence: two processes on one database');

two('one sweep writes each transition once; the other process\'s syncs are woken through Redis', async () => {
  const redis = process.env.HEARTH_TEST_REDIS_URL;
  assert.ok(redis, 'HEARTH_TEST_REDIS_URL is set');
  // The sweepers are driven by hand: their timers never fire during the test.
  const env = { HEARTH_REDIS_URL: redis!, HEARTH_PRESENCE_SWEEP_INTERVAL_MS: '3600000', HEARTH_PRESENCE_IDLE_MS: '10', HEARTH_PRESENCE_ACTIVE_WINDOW_MS: '10', HEARTH_PRESENCE_SYNC_GRACE_MS: '3600000' };
  const a = await startTestServer(env);
  let b: TestServer | undefined;
  try {
    b = await startTestServer(env, { databaseUrl: a.databaseUrl });
    const alice = await registerUser(a, 'alice');
    const bob = await registerUser(b, 'bob');
    const roomId = await createRoom(a, alice, { preset: 'public_chat' });
    await join(b, bob, roomId);
    const users = [];
    for (let i = 0; i < 20; i++) {
      const u = await registerUser(a, `u${i}`);
      await join(a, u, roomId);
      ok(await putPresence(i % 2 ? a : b, u, { presence: 'online' }));
      users.push(u);
    }
    ok(await putPresence(a, alice, { presence: 'online' }));
    ok(await putPresence(b, bob, { presence: 'online' }));
    const since = (await sync(b, bob, { set_presence: 'offline' })).next_batch;
    const waiting = sync(b, bob, { since, timeout: 10_000, set_presence: 'offline' });
    await sleep(50); // everyone is now idle past the 10 ms idle time

    const svcA = a.hs.deps.services.presence;
    const svcB = b.hs.deps.services.presence;
    const counts = await Promise.all([svcA.sweep(), svcB.sweep(), svcA.sweep(), svcB.sweep()]);
    assert.is(counts.reduce((x, y) => x + y, 0), 22, `each of the 22 users changed once in all (${counts})`);
    assert.equal(await Promise.all([svcA.sweep(), svcB.sweep()]), [0, 0], 'nothing left to do');

    const woke = await waiting;
    assert.is(presenceOf(woke, alice.user_id)[0]?.content.presence, 'unavailable', "B's long-poll saw the change A or B wrote");
    const all = await sync(a, bob, { since, set_presence: 'offline' });
    const unavailable = all.presence.events.filter((e: any) => e.content.presence === 'unavailable').map((e: any) => e.sender).sort();
    assert.equal(unavailable, [alice.user_id, bob.user_id, ...users.map((u) => u.user_id)].sort());
    assert.is(parseToken(all.next_batch).presence - parseToken(since).presence, 22, 'one stream position per transition');
  } finally {
    await b?.close();
    await a.close();
  }
});

two.run();

// ---------------------------------------------------------------------------------------------

const off = presenceSuite('presence: HEARTH_PRESENCE_ENABLED=false', { HEARTH_PRESENCE_ENABLED: 'false' });

off('PUT is accepted and ignored; GET answers offline; /sync carries no presence', async ({ s, alice, bob }) => {
  const since = (await sync(s, bob)).next_batch;
  ok(await putPresence(s, alice, { presence: 'online', status_msg: 'nobody hears this' }));
  assert.equal(ok(await getPresence(s, bob, alice.user_id)), { presence: 'offline' });
  assert.equal(ok(await getPresence(s, alice, alice.user_id)), { presence: 'offline' });
  assertError(await putPresence(s, bob, { presence: 'online' }, alice.user_id), 403, 'M_FORBIDDEN', 'still only for oneself');
  const initial = await sync(s, bob);
  assert.equal(initial.presence.events, []);
  const inc = await sync(s, bob, { since });
  assert.equal(inc.presence.events, []);
  assert.is(parseToken(inc.next_batch).presence, 0);
});

off.run();
