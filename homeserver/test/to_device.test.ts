// Send-to-device messaging (send_to_device.md, to_device.yaml): delivery exactly once through
// /sync `to_device` (re-sent while unacknowledged, deleted once the next sync acknowledges it),
// batches of 100, `*` devices, idempotent transaction ids across a restart, deleted devices,
// long-poll wake-ups and the WebSocket sync.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { createTestDatabase, login, registerUser, startTestServer, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, assertError, enc, ok, type User } from './support/rooms.js';
import { syncAs } from './support/e2e.js';
import { openSyncSocket, type SyncSocket } from './support/ws_sync.js';

const PASSWORD = 'correct horse battery';
type Ctx = { s: TestServer; alice: User; bob: User; drop: () => Promise<void> };
const t = suite<Ctx>('send-to-device');

beforeAll(t, async (ctx) => {
  // The database outlives one server: the restart test starts a second one on it.
  const db = await createTestDatabase();
  ctx.drop = db.drop;
  ctx.s = await startTestServer({}, { databaseUrl: db.url });
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
});
t.after(async (ctx) => {
  await ctx.s?.close();
  await ctx.drop?.();
});

let txn = 0;
const sendTo = (s: TestServer, from: User, messages: Record<string, Record<string, unknown>>, txnId = `t${++txn}`, type = 'org.example.ping') =>
  api(s, from, 'PUT', `/sendToDevice/${enc(type)}/${enc(txnId)}`, { messages });
const toDevice = (body: any): any[] => body.to_device.events;

async function inboxSize(s: TestServer, u: User): Promise<number> {
  const c = new pg.Client({ connectionString: s.databaseUrl });
  await c.connect();
  try {
    const r = await c.query('select count(*)::int as n from to_device_inbox where user_id = $1 and device_id = $2', [u.user_id, u.device_id]);
    return r.rows[0].n as number;
  } finally {
    await c.end();
  }
}

t('delivered once: re-sent while unacknowledged, deleted once the next sync acknowledges it', async ({ s, alice, bob }) => {
  const start = await syncAs(s, bob);
  assert.equal(toDevice(start), []);
  ok(await sendTo(s, alice, { [bob.user_id]: { [bob.device_id]: { n: 1 } } }), 'send');
  ok(await sendTo(s, alice, { [bob.user_id]: { [bob.device_id]: { n: 2 } } }), 'send');
  const first = await syncAs(s, bob, { since: start.next_batch });
  assert.equal(toDevice(first), [
    { sender: alice.user_id, type: 'org.example.ping', content: { n: 1 } },
    { sender: alice.user_id, type: 'org.example.ping', content: { n: 2 } },
  ]);
  // The response was lost: the client repeats the same since and gets the same messages.
  const again = await syncAs(s, bob, { since: start.next_batch });
  assert.equal(toDevice(again).map((e) => e.content.n), [1, 2]);
  assert.is(await inboxSize(s, bob), 2, 'kept until acknowledged');
  const next = await syncAs(s, bob, { since: again.next_batch });
  assert.equal(toDevice(next), [], 'never twice');
  assert.is(await inboxSize(s, bob), 0, 'acknowledged messages are deleted');
  // Alice (the sender) receives nothing.
  assert.equal(toDevice(await syncAs(s, alice)), []);
});

t('an initial sync delivers what waits; `*` reaches every device of the user', async ({ s, alice, bob }) => {
  const phone = ok(await login(s, bob.user_id, PASSWORD), 'login') as User;
  ok(await sendTo(s, alice, { [bob.user_id]: { '*': { all: true } } }), 'send *');
  const onPhone = await syncAs(s, phone);
  assert.equal(toDevice(onPhone).map((e) => e.content), [{ all: true }], 'initial sync of the phone');
  const onMain = toDevice(await syncAs(s, bob)).map((e) => e.content);
  assert.ok(onMain.some((c) => c.all === true), 'the other device too');
  ok(await api(s, phone, 'POST', '/logout'), 'logout');
});

t('a capped batch: 100 per response, the rest in the next ones', async ({ s, alice, bob }) => {
  let pos = (await syncAs(s, bob)).next_batch;
  pos = (await syncAs(s, bob, { since: pos })).next_batch; // acknowledge anything left by earlier tests
  for (let i = 0; i < 130; i++) ok(await sendTo(s, alice, { [bob.user_id]: { [bob.device_id]: { i } } }), 'send');
  const a = await syncAs(s, bob, { since: pos });
  assert.equal(toDevice(a).map((e) => e.content.i), Array.from({ length: 100 }, (_, i) => i));
  const b = await syncAs(s, bob, { since: a.next_batch, timeout: 0 });
  assert.equal(toDevice(b).map((e) => e.content.i), Array.from({ length: 30 }, (_, i) => 100 + i));
  const c = await syncAs(s, bob, { since: b.next_batch, timeout: 0 });
  assert.equal(toDevice(c), []);
});

t('validation: bad bodies, user ids, sizes', async ({ s, alice, bob }) => {
  assertError(await api(s, alice, 'PUT', '/sendToDevice/x/t-bad1', {}), 400, 'M_BAD_JSON', 'no messages');
  assertError(await api(s, alice, 'PUT', '/sendToDevice/x/t-bad2', { messages: [] }), 400, 'M_BAD_JSON');
  assertError(await sendTo(s, alice, { 'not-a-user': { D: {} } }), 400, 'M_INVALID_PARAM');
  assertError(await sendTo(s, alice, { [bob.user_id]: { D: 'text' } }), 400, 'M_BAD_JSON');
  assertError(await sendTo(s, alice, { [bob.user_id]: { [bob.device_id]: { big: 'x'.repeat(70_000) } } }), 413, 'M_TOO_LARGE');
  assert.is((await s.request('PUT', '/_matrix/client/v3/sendToDevice/x/t1', { body: { messages: {} } })).status, 401);
  // Unknown devices and remote users: accepted and dropped.
  ok(await sendTo(s, alice, { [bob.user_id]: { NOSUCHDEVICE: { a: 1 } }, '@x:remote.example': { D: { a: 1 } } }), 'dropped');
});

t('messages to a deleted device are dropped and its inbox cleared', async ({ s, alice, bob }) => {
  const tablet = ok(await login(s, bob.user_id, PASSWORD), 'login') as User;
  ok(await sendTo(s, alice, { [bob.user_id]: { [tablet.device_id]: { a: 1 } } }), 'send');
  assert.is(await inboxSize(s, tablet), 1);
  ok(await api(s, tablet, 'POST', '/logout'), 'logout');
  assert.is(await inboxSize(s, tablet), 0, 'inbox cleared');
  ok(await sendTo(s, alice, { [bob.user_id]: { [tablet.device_id]: { a: 2 } } }), 'send to the deleted device');
  assert.is(await inboxSize(s, tablet), 0, 'dropped');
});

t('a long-poll wakes up for a message; the WebSocket sync delivers one too', async ({ s, alice, bob }) => {
  let pos = (await syncAs(s, bob)).next_batch;
  pos = (await syncAs(s, bob, { since: pos })).next_batch;
  const waiting = syncAs(s, bob, { since: pos, timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 100));
  ok(await sendTo(s, alice, { [bob.user_id]: { [bob.device_id]: { woke: 1 } } }), 'send');
  const woke = await waiting;
  assert.equal(toDevice(woke).map((e) => e.content), [{ woke: 1 }]);

  const sock = await openSyncSocket(s, bob, { since: woke.next_batch });
  ok(await sendTo(s, alice, { [bob.user_id]: { [bob.device_id]: { ws: 1 } } }), 'send');
  let frame = await sock.next();
  while (frame.type === 'sync' && toDevice(frame.data).length === 0) frame = await sock.next();
  assert.equal(toDevice(frame.data).map((e: any) => e.content), [{ ws: 1 }]);
  await sock.close();
});

t('WebSocket sync: messages of unacknowledged batches survive a dropped connection', async ({ s, alice, bob }) => {
  const start = (await syncAs(s, bob)).next_batch;
  const first = await openSyncSocket(s, bob, { since: start });
  ok(await sendTo(s, alice, { [bob.user_id]: { [bob.device_id]: { n: 1 } } }), 'send');
  const got: unknown[] = [];
  await collectToDevice(first, got, 1);
  // A second batch is computed from the first (never acknowledged); the connection then drops.
  ok(await sendTo(s, alice, { [bob.user_id]: { [bob.device_id]: { n: 2 } } }), 'send');
  await collectToDevice(first, got, 2);
  assert.equal(got, [{ n: 1 }, { n: 2 }]);
  first.ws.terminate();
  // Resuming from the last acknowledged position (the start) gets both again.
  const again = await openSyncSocket(s, bob, { since: start });
  const resent: unknown[] = [];
  await collectToDevice(again, resent, 2);
  assert.equal(resent, [{ n: 1 }, { n: 2 }]);
  await again.close();
});

/** Appends the to-device contents of the socket's next frames to `into` until it holds `n`. */
async function collectToDevice(sock: SyncSocket, into: unknown[], n: number): Promise<void> {
  while (into.length < n) into.push(...toDevice((await sock.next()).data ?? { to_device: { events: [] } }).map((e: any) => e.content));
}

t('transaction ids: a retry is applied once, also after a restart', async (ctx) => {
  const { alice, bob } = ctx;
  let pos = (await syncAs(ctx.s, bob)).next_batch;
  pos = (await syncAs(ctx.s, bob, { since: pos })).next_batch;
  ok(await sendTo(ctx.s, alice, { [bob.user_id]: { [bob.device_id]: { once: 1 } } }, 'same-txn'), 'send');
  ok(await sendTo(ctx.s, alice, { [bob.user_id]: { [bob.device_id]: { once: 2 } } }, 'same-txn'), 'retry');
  const url = ctx.s.databaseUrl;
  await ctx.s.stop();
  ctx.s = await startTestServer({}, { databaseUrl: url });
  ok(await sendTo(ctx.s, alice, { [bob.user_id]: { [bob.device_id]: { once: 3 } } }, 'same-txn'), 'retry after restart');
  const r = await syncAs(ctx.s, bob, { since: pos });
  assert.equal(toDevice(r).map((e) => e.content), [{ once: 1 }]);
});

t.run();
