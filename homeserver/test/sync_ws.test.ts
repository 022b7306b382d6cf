// WebSocket sync (protocol-spec/websocket-sync.md) with a real `ws` client: authentication in the
// first frame only, delivery in order across cut connections resumed from the last acknowledged
// position, backpressure (unacknowledged batches and the send buffer), ping/pong, logout.
import { EventEmitter } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { createRoom, type User } from './support/rooms.js';
import { connectSyncSocket, openSyncSocket, SYNC_WS_PATH as PATH } from './support/ws_sync.js';
import { SyncSocket } from '../src/api/ws/sync_session.js';

const enc = encodeURIComponent;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const messageIds = (frame: any, roomId: string): string[] =>
  (frame.data.rooms.join[roomId]?.timeline.events ?? []).filter((e: any) => e.type === 'm.room.message').map((e: any) => e.event_id);

/** Sends `n` messages through the TimelineService, `batch` at a time. */
async function sendMany(s: TestServer, u: User, roomId: string, n: number, batch = 50, delayMs = 0): Promise<void> {
  const timeline = s.hs.deps.services.rooms.timeline;
  for (let i = 0; i < n; i += batch) {
    const count = Math.min(batch, n - i);
    await Promise.all(Array.from({ length: count }, (_, j) => timeline.send(roomId, { type: 'm.room.message', sender: u.user_id, content: { msgtype: 'm.text', body: `m${i + j}` } })));
    if (delayMs) await sleep(delayMs);
  }
}

/** Every message of the room after `from`, in stream order. */
async function streamOrder(s: TestServer, u: User, roomId: string, from: string): Promise<string[]> {
  const res = await s.request('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=f&limit=1000&from=${from}`, { token: u.access_token });
  return res.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.event_id);
}

interface Ctx {
  s: TestServer;
  base: string;
}
const t = suite<Ctx>('WebSocket sync');

beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer({ HEARTH_WS_AUTH_TIMEOUT_MS: '300', HEARTH_WS_MAX_UNACKED: '2' });
  ctx.base = await ctx.s.listen();
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

t('authentication is the first frame; the token is never taken from the URL', async ({ s, base }) => {
  const u = await registerUser(s, 'auth');
  const roomId = await createRoom(s, u, { name: 'WS' });

  for (const [path, status] of [[`${PATH}?access_token=${u.access_token}`, 400], ['/_hearth/client/v1/nope', 404]] as const) {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + path);
    ws.on('error', () => {});
    const res = await new Promise<{ statusCode?: number }>((resolve) => ws.once('unexpected-response', (_req, r) => resolve(r)));
    assert.is(res.statusCode, status, path.replace(u.access_token, 'TOKEN'));
    ws.terminate();
  }

  const silent = await connectSyncSocket(s);
  assert.is((await silent.next()).errcode, 'M_MISSING_TOKEN');
  assert.is((await silent.closed).code, 4001, 'no auth frame in time');

  const early = await connectSyncSocket(s);
  early.send({ type: 'ack', pos: 's1' });
  assert.is((await early.closed).code, 4001, 'another frame before auth');

  const bad = await connectSyncSocket(s);
  bad.send({ type: 'auth', access_token: 'not-a-token' });
  assert.is((await bad.next()).errcode, 'M_UNKNOWN_TOKEN');
  assert.is((await bad.closed).code, 4003);

  const badSince = await connectSyncSocket(s);
  badSince.send({ type: 'auth', access_token: u.access_token, since: 'nonsense' });
  assert.is((await badSince.next()).errcode, 'M_INVALID_PARAM');
  assert.is((await badSince.closed).code, 4000);

  const c = await openSyncSocket(s, u, { auth: { filter: { room: { timeline: { limit: 5 } } } } });
  const first = await c.next();
  assert.is(first.type, 'sync');
  assert.is(first.pos, first.data.next_batch, 'pos is the batch next_batch');
  assert.ok(first.data.rooms.join[roomId], 'an initial sync');
  assert.is(first.data.rooms.join[roomId].timeline.events.length, 5, 'the inline filter applies');
  await c.close();
});

t('1,000 messages arrive in order through two cut connections, resumed from the last acknowledged position', async ({ s }) => {
  const u = await registerUser(s, 'many');
  const roomId = await createRoom(s, u, { name: 'Many' });
  let c = await openSyncSocket(s, u);
  const initial = await c.next();
  c.send({ type: 'ack', pos: initial.pos });
  let acked: string = initial.pos;

  const sending = sendMany(s, u, roomId, 1000, 50, 5);
  const applied: string[] = [];
  const cuts = [300, 650];
  let frames = 0;
  while (applied.length < 1000) {
    const f = await c.next();
    assert.ok(f, `a frame (after ${applied.length} messages)`);
    assert.is(f.type, 'sync', JSON.stringify(f).slice(0, 200));
    assert.is(f.pos, f.data.next_batch);
    assert.is(f.data.rooms.join[roomId]?.timeline.limited ?? false, false, 'never a gap');
    frames++;
    if (cuts.length > 0 && applied.length >= cuts[0]!) {
      // Cut with this batch received but not applied nor acknowledged: it must come again.
      cuts.shift();
      c.ws.terminate();
      await c.closed;
      c = await openSyncSocket(s, u, { since: acked });
      continue;
    }
    applied.push(...messageIds(f, roomId));
    c.send({ type: 'ack', pos: f.pos });
    acked = f.pos;
  }
  await sending;
  assert.is(cuts.length, 0, 'cut twice');
  assert.is(new Set(applied).size, applied.length, 'no message twice');
  assert.equal(applied, await streamOrder(s, u, roomId, initial.pos), 'exactly the 1,000, in stream order');
  console.log(`    1000 messages in ${frames} batches, two resumes`);
  await c.close();
});

t('catching up over several rooms: batches hold up to the timeline limit per room, never a gap', async ({ s }) => {
  const u = await registerUser(s, 'rooms');
  const [r1, r2] = [await createRoom(s, u, { name: 'R1' }), await createRoom(s, u, { name: 'R2' })];
  let c = await openSyncSocket(s, u);
  const initial = await c.next();
  await c.close();
  for (let i = 0; i < 30; i++) for (const r of [r1, r2]) await sendMany(s, u, r, 1);

  c = await openSyncSocket(s, u, { since: initial.pos });
  const got: Record<string, string[]> = { [r1]: [], [r2]: [] };
  const sizes: number[] = [];
  while (got[r1]!.length + got[r2]!.length < 60) {
    const f = await c.next();
    assert.ok(f?.type === 'sync', JSON.stringify(f).slice(0, 200));
    for (const r of [r1, r2]) {
      assert.is(f.data.rooms.join[r]?.timeline.limited ?? false, false);
      got[r]!.push(...messageIds(f, r));
    }
    sizes.push(messageIds(f, r1).length + messageIds(f, r2).length);
    c.send({ type: 'ack', pos: f.pos });
  }
  assert.equal(sizes, [20, 20, 20], 'ten per room per batch (the default limit), both rooms together');
  for (const r of [r1, r2]) assert.equal(got[r], await streamOrder(s, u, r, initial.pos));
  await c.close();
});

t('backpressure: at most HEARTH_WS_MAX_UNACKED batches in flight; acknowledging releases the rest', async ({ s }) => {
  const u = await registerUser(s, 'slow');
  const roomId = await createRoom(s, u, { name: 'Slow' });
  const c = await openSyncSocket(s, u);
  const initial = await c.next();
  const received = [initial];
  const order = await streamOrder(s, u, roomId, initial.pos);
  assert.equal(order, []);
  // Twelve commits, each its own wake-up; the client acknowledges nothing.
  for (let i = 0; i < 12; i++) {
    await sendMany(s, u, roomId, 1);
    await sleep(15);
  }
  await sleep(300);
  for (let f = await c.poll(50); f; f = await c.poll(50)) received.push(f);
  assert.is(received.length, 2, 'the initial batch and one more (HEARTH_WS_MAX_UNACKED=2)');

  const ids = received.slice(1).flatMap((f) => messageIds(f, roomId));
  let last = received.at(-1).pos;
  while (ids.length < 12) {
    c.send({ type: 'ack', pos: last });
    const f = await c.next();
    assert.ok(f, `more after the ack (${ids.length} of 12)`);
    ids.push(...messageIds(f, roomId));
    last = f.pos;
  }
  assert.equal(ids, await streamOrder(s, u, roomId, initial.pos), 'all twelve, in order, once');
  await c.close();
});

t('a full send buffer holds batches back; they resume once it drains', async ({ s }) => {
  const u = await registerUser(s, 'buffered');
  const roomId = await createRoom(s, u, { name: 'Buffered' });
  // A stand-in for a ws socket whose send buffer is as full as the test says.
  const fake = Object.assign(new EventEmitter(), {
    readyState: WebSocket.OPEN,
    bufferedAmount: 0,
    sent: [] as any[],
    send(data: string, cb?: (err?: Error) => void) {
      this.sent.push(JSON.parse(data));
      setImmediate(() => cb?.());
    },
    ping() {},
    close() {},
    terminate() {},
  });
  const deps = { ...s.hs.deps, config: { ...s.hs.deps.config, ws: { ...s.hs.deps.config.ws, maxUnacked: 100, maxBufferedBytes: 1000 } } };
  const sock = new SyncSocket(fake as never, deps, { authenticated() {}, closed() {} }, '127.0.0.1');
  const syncs = () => fake.sent.filter((f) => f.type === 'sync');
  const until = async (check: () => boolean) => {
    for (let i = 0; i < 200 && !check(); i++) await sleep(10);
  };
  try {
    fake.emit('message', Buffer.from(JSON.stringify({ type: 'auth', access_token: u.access_token })), false);
    await until(() => syncs().length === 1);
    assert.is(syncs().length, 1, 'the initial batch');

    fake.bufferedAmount = 5000; // over the limit: nothing more is computed
    await sendMany(s, u, roomId, 25, 5, 10);
    await sleep(300);
    assert.is(syncs().length, 1, 'held back while the buffer is full');

    fake.bufferedAmount = 0;
    await until(() => syncs().flatMap((f) => messageIds(f, roomId)).length === 25);
    const ids = syncs().flatMap((f) => messageIds(f, roomId));
    assert.equal(ids, await streamOrder(s, u, roomId, syncs()[0].pos), 'everything after the buffer drained, in order');
    assert.ok(syncs().length <= 4, `the backlog came in a few batches of at most the timeline limit (${syncs().length - 1})`);
  } finally {
    sock.terminate();
  }
});

t('a logout closes the socket with M_UNKNOWN_TOKEN', async ({ s }) => {
  const u = await registerUser(s, 'leaver');
  const c = await openSyncSocket(s, u);
  assert.is((await c.next()).type, 'sync');
  const res = await s.request('POST', '/_matrix/client/v3/logout', { token: u.access_token, body: {} });
  assert.is(res.status, 200);
  const err = await c.next();
  assert.is(err?.type, 'error');
  assert.is(err.errcode, 'M_UNKNOWN_TOKEN');
  assert.is((await c.closed).code, 4003);
});

t("a refreshed token replaces the socket's token; another device's token is refused", async ({ s }) => {
  const u = await registerUser(s, 'refresher', 'correct horse battery', { refresh_token: true });
  const roomId = await createRoom(s, u, { name: 'Refresh' });
  const c = await openSyncSocket(s, u);
  assert.is((await c.next()).type, 'sync');
  const fresh = await s.request('POST', '/_matrix/client/v3/refresh', { body: { refresh_token: u.refresh_token } });
  assert.is(fresh.status, 200);
  c.send({ type: 'token', access_token: fresh.body.access_token });
  // Using the new token supersedes the old one: the socket now lives on the new one.
  const sent = await s.request('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/r1`, {
    token: fresh.body.access_token,
    body: { msgtype: 'm.text', body: 'after refresh' },
  });
  assert.is(sent.status, 200);
  const f = await c.next();
  assert.is(f?.type, 'sync', JSON.stringify(f));
  assert.equal(messageIds(f, roomId), [sent.body.event_id]);

  const other = await registerUser(s, 'someone-else');
  c.send({ type: 'token', access_token: other.access_token });
  assert.is((await c.next()).errcode, 'M_FORBIDDEN');
  assert.is((await c.closed).code, 4003);
});

t('a newer connection of the same device replaces the older one', async ({ s }) => {
  const u = await registerUser(s, 'twice');
  const a = await openSyncSocket(s, u);
  const b = await openSyncSocket(s, u);
  assert.is((await a.closed).code, 4009);
  assert.is(b.ws.readyState, WebSocket.OPEN);
  await b.close();
});

t.run();

const ping = suite('WebSocket sync: ping/pong');

ping('a client that stops answering pings is dropped; one that answers stays', async () => {
  const s = await startTestServer({ HEARTH_WS_PING_INTERVAL_MS: '100' });
  try {
    const [u, v] = [await registerUser(s, 'mute'), await registerUser(s, 'live')];
    const mute = await connectSyncSocket(s, { ws: { autoPong: false } });
    mute.send({ type: 'auth', access_token: u.access_token });
    const live = await openSyncSocket(s, v);
    const closed = await Promise.race([mute.closed, sleep(2000).then(() => null)]);
    assert.ok(closed, 'the mute client was dropped');
    assert.is(closed!.code, 1006, 'terminated, no close handshake');
    await sleep(350);
    assert.is(live.ws.readyState, WebSocket.OPEN, 'the answering client is still connected');
    await live.close();
  } finally {
    await s.close();
  }
});

ping.run();
