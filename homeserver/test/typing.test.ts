// Typing notifications (spec: "Typing Notifications"): PUT /rooms/{roomId}/typing/{userId}
// validation and authorization, m.typing in /sync (initial: current typists; incremental: the full
// list whenever it changes; long-polls woken), expiry without typing:false (timer, cap on the
// timeout, after a restart), leaving stops typing, ignored users left out, the WebSocket sync, and
// two homeserver processes on one database.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { openSyncSocket } from './support/ws_sync.js';
import { syncAs as sync } from './support/e2e.js';
import { api, assertError, createRoom, enc, join, ok, type User } from './support/rooms.js';

/** A wait for something the server does on its own fails the test after this long. */
const WAIT_MS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


const putTyping = (s: TestServer, u: User, roomId: string, body: Record<string, unknown>, target = u.user_id) =>
  api(s, u, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(target)}`, body);

/** The m.typing user ids of a room in a sync response (undefined: no m.typing event). */
function typingIn(body: any, roomId: string): string[] | undefined {
  const evs = body.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
  const t = evs.filter((e: any) => e.type === 'm.typing');
  assert.ok(t.length <= 1, 'at most one m.typing per room and response');
  return t[0] ? [...t[0].content.user_ids].sort() : undefined;
}

/** Long-polls until the room's m.typing list satisfies `pred`; returns it and the token after it. */
async function waitTyping(s: TestServer, viewer: User, since: string, roomId: string, pred: (ids: string[]) => boolean): Promise<{ ids: string[]; since: string }> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const body = await sync(s, viewer, { since, timeout: 5_000 });
    since = body.next_batch;
    const ids = typingIn(body, roomId);
    if (ids && pred(ids)) return { ids, since };
    if (Date.now() > deadline) throw new Error(`no m.typing in ${roomId} matching the condition (last: ${JSON.stringify(ids)})`);
  }
}

const t = suite<{ s: TestServer; alice: User; bob: User; carol: User; roomId: string }>('typing: API and /sync');

beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer();
  for (const name of ['alice', 'bob', 'carol'] as const) ctx[name] = await registerUser(ctx.s, name);
  ctx.roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat', name: 'Typing' });
  await join(ctx.s, ctx.bob, ctx.roomId);
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

t('bad requests are refused with the spec errors', async ({ s, alice, bob, carol, roomId }) => {
  assertError(await putTyping(s, alice, roomId, { typing: true, timeout: 1000 }, bob.user_id), 403, 'M_FORBIDDEN', "typing for another user");
  assertError(await putTyping(s, carol, roomId, { typing: true, timeout: 1000 }), 403, 'M_FORBIDDEN', 'not a member');
  assertError(await putTyping(s, alice, '!nowhere:hearth.test', { typing: true }), 403, 'M_FORBIDDEN', 'unknown room');
  assertError(await putTyping(s, alice, roomId, {}), 400, 'M_MISSING_PARAM', 'no typing');
  assertError(await putTyping(s, alice, roomId, { typing: 'yes' }), 400, 'M_BAD_JSON', 'typing not a boolean');
  assertError(await putTyping(s, alice, roomId, { typing: true, timeout: 'soon' }), 400, 'M_BAD_JSON', 'timeout not a number');
  assertError(await putTyping(s, alice, roomId, { typing: true, timeout: -5 }), 400, 'M_BAD_JSON', 'negative timeout');
  assertError(await api(s, null, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.user_id)}`, { typing: true }), 401, 'M_MISSING_TOKEN');
  // Nothing of that reached the room.
  assert.is(typingIn(await sync(s, bob), roomId), undefined);
});

t('a long-poll wakes with the typist, and again with the empty list when they stop', async ({ s, alice, bob, roomId }) => {
  const since = (await sync(s, bob)).next_batch;
  const waiting = sync(s, bob, { since, timeout: 10_000 });
  await sleep(50);
  ok(await putTyping(s, alice, roomId, { typing: true, timeout: 60_000 }));
  const woke = await waiting;
  assert.equal(typingIn(woke, roomId), [alice.user_id], 'the long-poll returned with alice typing');

  // Renewing a running notice changes nothing visible: no new m.typing.
  ok(await putTyping(s, alice, roomId, { typing: true, timeout: 60_000 }));
  const quiet = await sync(s, bob, { since: woke.next_batch });
  assert.is(typingIn(quiet, roomId), undefined, 'a renewal is not a change');

  // Initial sync: the current typists.
  assert.equal(typingIn(await sync(s, bob), roomId), [alice.user_id], 'initial sync shows who types now');

  const stopWait = sync(s, bob, { since: woke.next_batch, timeout: 10_000 });
  await sleep(50);
  ok(await putTyping(s, alice, roomId, { typing: false }));
  assert.equal(typingIn(await stopWait, roomId), [], 'the stop arrives as the full (empty) list');
  assert.is(typingIn(await sync(s, bob), roomId), undefined, 'initial sync: nobody types, no m.typing');
});

t('the list carries every typist; leaving the room stops the leaver', async ({ s, alice, bob, roomId }) => {
  const since = (await sync(s, bob)).next_batch;
  ok(await putTyping(s, alice, roomId, { typing: true, timeout: 60_000 }));
  ok(await putTyping(s, bob, roomId, { typing: true, timeout: 60_000 }));
  const both = await waitTyping(s, bob, since, roomId, (ids) => ids.length === 2);
  assert.equal(both.ids, [alice.user_id, bob.user_id].sort(), 'the typist sees themself too');
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/leave`, {}));
  const after = await waitTyping(s, bob, both.since, roomId, (ids) => !ids.includes(alice.user_id));
  assert.equal(after.ids, [bob.user_id], 'alice left: only bob types');
  ok(await putTyping(s, bob, roomId, { typing: false }));
  await join(s, alice, roomId);
});

t('an ignored user typing is left out of the list', async ({ s, alice, bob, roomId }) => {
  ok(await api(s, bob, 'PUT', `/user/${enc(bob.user_id)}/account_data/m.ignored_user_list`, { ignored_users: { [alice.user_id]: {} } }));
  try {
    const sinceBob = (await sync(s, bob)).next_batch;
    const sinceAlice = (await sync(s, alice)).next_batch;
    ok(await putTyping(s, alice, roomId, { typing: true, timeout: 60_000 }));
    // alice sees herself typing; bob, ignoring her, sees an empty list.
    await waitTyping(s, alice, sinceAlice, roomId, (ids) => ids.includes(alice.user_id));
    const seen = await sync(s, bob, { since: sinceBob });
    assert.ok(!(typingIn(seen, roomId) ?? []).includes(alice.user_id), 'bob does not see alice typing');
    assert.is(typingIn(await sync(s, bob), roomId), undefined, 'nor in an initial sync');
  } finally {
    ok(await api(s, bob, 'PUT', `/user/${enc(bob.user_id)}/account_data/m.ignored_user_list`, { ignored_users: {} }));
    ok(await putTyping(s, alice, roomId, { typing: false }));
  }
});

t('the WebSocket sync delivers typing changes', async ({ s, alice, bob, roomId }) => {
  const sock = await openSyncSocket(s, bob, { autoAck: true });
  try {
    await sock.nextSync();
    ok(await putTyping(s, alice, roomId, { typing: true, timeout: 60_000 }));
    const f = await sock.nextSync((x) => typingIn(x.data, roomId) !== undefined, WAIT_MS);
    assert.equal(typingIn(f.data, roomId), [alice.user_id]);
    ok(await putTyping(s, alice, roomId, { typing: false }));
    const g = await sock.nextSync((x) => typingIn(x.data, roomId) !== undefined, WAIT_MS);
    assert.equal(typingIn(g.data, roomId), []);
  } finally {
    await sock.close();
  }
});

t.run();

// ---------------------------------------------------------------------------------------------
// Expiry: a server whose longest typing notice is one second.
const SHORT = { HEARTH_TYPING_MAX_TIMEOUT_MS: '1000' };
const exp = suite('typing: expiry, restarts, two processes');

exp('a notice expires without typing:false: the stop reaches a waiting long-poll and the WebSocket sync', async () => {
  const s = await startTestServer(SHORT);
  try {
    const alice = await registerUser(s, 'alice');
    const bob = await registerUser(s, 'bob');
    const roomId = await createRoom(s, alice, { preset: 'public_chat' });
    await join(s, bob, roomId);
    const sock = await openSyncSocket(s, bob, { autoAck: true });
    const nextSync = (pred: (f: any) => boolean) => sock.nextSync(pred, WAIT_MS);
    try {
      await sock.nextSync();
      const since = (await sync(s, bob)).next_batch;
      // An hour asked for, capped at a second by HEARTH_TYPING_MAX_TIMEOUT_MS.
      ok(await putTyping(s, alice, roomId, { typing: true, timeout: 3_600_000 }));
      const started = await waitTyping(s, bob, since, roomId, (ids) => ids.length > 0);
      assert.equal(started.ids, [alice.user_id]);
      // The next change is the expiry: the long-poll waits for it (nobody sends anything).
      const stopped = await sync(s, bob, { since: started.since, timeout: 15_000 });
      assert.equal(typingIn(stopped, roomId), [], 'the expiry arrived as an empty list');
      const wsStart = await nextSync((x) => typingIn(x.data, roomId) !== undefined);
      // The socket may have seen the start, then the stop (or both collapsed into the stop).
      if ((typingIn(wsStart.data, roomId) ?? []).length > 0) {
        const wsStop = await nextSync((x) => typingIn(x.data, roomId) !== undefined);
        assert.equal(typingIn(wsStop.data, roomId), [], 'the WebSocket sync saw the expiry');
      }
      assert.is(typingIn(await sync(s, bob), roomId), undefined, 'nobody types any more');
    } finally {
      await sock.close();
    }
  } finally {
    await s.close();
  }
});

exp('a notice left running by a stopped process is stopped when a process starts', async () => {
  const s = await startTestServer(SHORT);
  let s2: TestServer | undefined;
  try {
    const alice = await registerUser(s, 'alice');
    const bob = await registerUser(s, 'bob');
    const roomId = await createRoom(s, alice, { preset: 'public_chat' });
    await join(s, bob, roomId);
    const since = (await sync(s, bob)).next_batch;
    ok(await putTyping(s, alice, roomId, { typing: true, timeout: 1000 }));
    const started = await waitTyping(s, bob, since, roomId, (ids) => ids.length > 0);
    await s.stop(); // its expiry timer dies with it
    await sleep(1200);
    const [row] = await dbQuery(s.databaseUrl, 'select typing from typing');
    assert.is(row.typing, true, 'the stopped process left the notice running');
    s2 = await startTestServer(SHORT, { databaseUrl: s.databaseUrl });
    const after = await sync(s2, bob, { since: started.since, timeout: 15_000 });
    assert.equal(typingIn(after, roomId), [], 'the new process stopped it: a change in the typing stream');
  } finally {
    await s2?.close();
    await s.close();
  }
});

exp('two processes on one database: typing set on A reaches a long-poll on B, and so does its expiry', async () => {
  const redis = process.env.HEARTH_TEST_REDIS_URL;
  assert.ok(redis, 'HEARTH_TEST_REDIS_URL is set');
  const a = await startTestServer({ ...SHORT, HEARTH_REDIS_URL: redis! });
  let b: TestServer | undefined;
  try {
    b = await startTestServer({ ...SHORT, HEARTH_REDIS_URL: redis! }, { databaseUrl: a.databaseUrl });
    const alice = await registerUser(a, 'alice');
    const bob = await registerUser(b, 'bob');
    const roomId = await createRoom(a, alice, { preset: 'public_chat' });
    await join(b, bob, roomId);
    const since = (await sync(b, bob)).next_batch;
    const waiting = sync(b, bob, { since, timeout: 15_000 });
    await sleep(50);
    ok(await putTyping(a, alice, roomId, { typing: true, timeout: 1000 }));
    const woke = await waiting;
    assert.equal(typingIn(woke, roomId), [alice.user_id], 'B answered with the typing set on A');
    const stopped = await sync(b, bob, { since: woke.next_batch, timeout: 15_000 });
    assert.equal(typingIn(stopped, roomId), [], "A's expiry reached B");
  } finally {
    await b?.close();
    await a.close();
  }
});

exp.run();

/** One query on the test database (to look at what a stopped process left behind). */
async function dbQuery(url: string, sql: string): Promise<any[]> {
  const pg = await import('pg');
  const client = new pg.default.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}
