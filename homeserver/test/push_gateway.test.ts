// The push gateway sender against a real HTTP push gateway stand-in (push gateway API,
// POST /_matrix/push/v1/notify): the notification body in full and event_id_only formats
// (counts, devices with data minus url, tweaks, prio); a gateway that is down (connection
// refused) while messages are sent gets every one exactly once and in order once it is back;
// notifications pending when the homeserver stops are delivered by the next process; a 4xx skips
// one notification; `rejected` removes the pusher; and with two homeserver processes on one
// database each notification is still sent once.
import http from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { api, createRoom, join, ok, send, type User } from './support/rooms.js';
import { beforeAll } from './support/hooks.js';

const ENV = {
  HEARTH_PUSH_ALLOW_PRIVATE_ADDRESSES: 'true', // the stand-in listens on 127.0.0.1
  HEARTH_PUSH_RETRY_BASE_MS: '20',
  HEARTH_PUSH_RETRY_MAX_MS: '200',
  ...(process.env.HEARTH_TEST_REDIS_URL ? { HEARTH_REDIS_URL: process.env.HEARTH_TEST_REDIS_URL } : {}),
};

type Reply = { status: number; body: unknown };

/** A push gateway on 127.0.0.1 that records what it is sent; `reply` decides each answer. */
class Gateway {
  readonly received: any[] = [];
  reply: (body: any) => Reply = () => ({ status: 200, body: { rejected: [] } });
  private server: http.Server | null = null;
  port = 0;

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        const r = req.url === '/_matrix/push/v1/notify' && req.method === 'POST' ? this.reply(body) : { status: 404, body: {} };
        if (r.status === 200) this.received.push(body);
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(r.body));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Stops listening: further connections are refused. */
  async stop(): Promise<void> {
    const server = this.server!;
    this.server = null;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/_matrix/push/v1/notify`;
  }

  eventIds(): string[] {
    return this.received.map((b) => b.notification.event_id);
  }
}

/** Waits (up to a generous deadline) until `cond` holds; the assertions come after. */
async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const setPusher = (s: TestServer, u: User, url: string, o: Record<string, unknown> = {}) =>
  api(s, u, 'POST', '/pushers/set', {
    kind: 'http',
    app_id: 'org.hearth.test',
    pushkey: `pk-${u.user_id}`,
    app_display_name: 'Hearth',
    device_display_name: 'Phone',
    lang: 'en',
    data: { url, extra: 'kept' },
    ...o,
  }).then((r) => ok(r, 'pushers/set'));

/** The stream position of an event, and whether a pusher's cursor has reached it. */
async function cursorReached(s: TestServer, userId: string, eventId: string): Promise<boolean> {
  const db = s.hs.deps.db;
  const pos = Number((await db.query<{ s: string }>('select stream_ordering as s from events where event_id = ?', [eventId]))[0]!.s);
  const rows = await db.query<{ c: string }>('select last_stream_ordering as c from pushers where user_id = ?', [userId]);
  return rows.length > 0 && rows.every((r) => Number(r.c) >= pos);
}

type Ctx = { s: TestServer; alice: User; bob: User; carol: User; gw: Gateway; roomId: string };
const t = suite<Ctx>('push gateway sender');

beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer(ENV);
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
  ctx.carol = await registerUser(ctx.s, 'carol');
  ctx.roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat', name: 'Gateway room' });
  await join(ctx.s, ctx.bob, ctx.roomId);
  await join(ctx.s, ctx.carol, ctx.roomId);
  ctx.gw = new Gateway();
  await ctx.gw.start();
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

t('the gateway gets the notification: full and event_id_only formats', async ({ s, alice, bob, carol, gw, roomId }) => {
  await setPusher(s, bob, gw.url);
  await setPusher(s, carol, gw.url, { data: { url: gw.url, format: 'event_id_only' } });
  const e1 = await send(s, alice, roomId, 'hello push');
  await until(() => gw.received.length >= 2, 'two notifications');
  const byKey = new Map(gw.received.map((b) => [b.notification.devices[0].pushkey, b.notification]));
  const full = byKey.get(`pk-${bob.user_id}`);
  const device = full.devices[0];
  assert.type(device.pushkey_ts, 'number');
  assert.ok(device.pushkey_ts < 1e11, 'pushkey_ts is in seconds');
  assert.equal(full, {
    event_id: e1,
    room_id: roomId,
    type: 'm.room.message',
    sender: alice.user_id,
    sender_display_name: 'alice',
    room_name: 'Gateway room',
    content: { msgtype: 'm.text', body: 'hello push' },
    prio: 'low',
    counts: { unread: 1 },
    devices: [{ app_id: 'org.hearth.test', pushkey: `pk-${bob.user_id}`, pushkey_ts: device.pushkey_ts, data: { extra: 'kept' }, tweaks: {} }],
  });
  const slim = byKey.get(`pk-${carol.user_id}`);
  assert.equal(Object.keys(slim).sort(), ['counts', 'devices', 'event_id', 'prio', 'room_id'], 'event_id_only: ids, counts, devices');
  assert.equal(slim.devices[0].data, { format: 'event_id_only' }, 'data without url');

  gw.received.length = 0;
  const e2 = await send(s, alice, roomId, { msgtype: 'm.text', body: 'ping bob', 'm.mentions': { user_ids: [bob.user_id] } });
  await until(() => gw.received.length >= 2, 'the mention');
  const m = gw.received.map((b) => b.notification).find((n) => n.devices[0].pushkey === `pk-${bob.user_id}`);
  assert.is(m.event_id, e2);
  assert.is(m.prio, 'high');
  assert.equal(m.devices[0].tweaks, { sound: 'default', highlight: true });
  assert.equal(m.counts, { unread: 2 }, 'the badge counts every unread notification');
  ok(await api(s, carol, 'POST', '/pushers/set', { kind: null, app_id: 'org.hearth.test', pushkey: `pk-${carol.user_id}` }));
});

t('a gateway that is down gets every notification exactly once, in order, once back', async ({ s, alice, bob, gw, roomId }) => {
  await until(() => cursorReached(s, bob.user_id, gw.received[gw.received.length - 1].notification.event_id), 'the earlier sends to settle');
  gw.received.length = 0;
  let refused = 0;
  const origPost = s.hs.deps.services.push.sender.deps.post;
  // Counts the failed attempts on the real HTTP path (no mock: the connection really is refused).
  const { postNotification } = await import('../src/services/push/gateway.js');
  s.hs.deps.services.push.sender.deps.post = async (url, body, opts) => {
    const r = await postNotification(url, body, opts);
    if (r.kind === 'retry') refused++;
    return r;
  };
  await gw.stop();
  const sent: string[] = [];
  for (let i = 0; i < 5; i++) sent.push(await send(s, alice, roomId, `while down ${i}`));
  await until(() => refused >= 3, 'a few refused attempts');
  await gw.start(); // same port
  await until(() => cursorReached(s, bob.user_id, sent[4]!), 'the backlog to be delivered');
  assert.equal(gw.eventIds(), sent, 'each once, in order');
  s.hs.deps.services.push.sender.deps.post = origPost;
});

t('a 4xx skips that notification; the next one still goes', async ({ s, alice, bob, gw, roomId }) => {
  gw.received.length = 0;
  let first = true;
  gw.reply = () => {
    if (!first) return { status: 200, body: { rejected: [] } };
    first = false;
    return { status: 400, body: { errcode: 'M_BAD_JSON' } };
  };
  const skipped = await send(s, alice, roomId, 'refused for good');
  const next = await send(s, alice, roomId, 'accepted');
  await until(() => cursorReached(s, bob.user_id, next), 'both handled');
  assert.equal(gw.eventIds(), [next], 'the refused one is not retried');
  assert.is.not(skipped, next);
  gw.reply = () => ({ status: 200, body: { rejected: [] } });
});

t('notifications pending when the homeserver stops are sent by the next process, once', async ({ s, alice, bob, gw, roomId }) => {
  gw.received.length = 0;
  await gw.stop();
  const sent = [await send(s, alice, roomId, 'before restart 1'), await send(s, alice, roomId, 'before restart 2')];
  await s.stop();
  const again = await startTestServer(ENV, { databaseUrl: s.databaseUrl });
  try {
    await gw.start();
    await until(() => cursorReached(again, bob.user_id, sent[1]!), 'the new process to deliver');
    assert.equal(gw.eventIds(), sent);
    // Two processes on one database: each notification is sent by one of them only.
    const second = await startTestServer(ENV, { databaseUrl: s.databaseUrl });
    try {
      gw.received.length = 0;
      const more: string[] = [];
      for (let i = 0; i < 8; i++) more.push(await send(i % 2 ? second : again, alice, roomId, `two processes ${i}`));
      await until(() => cursorReached(again, bob.user_id, more[7]!), 'both processes\' events to be delivered');
      assert.equal(gw.eventIds(), more, 'each once, in order');
    } finally {
      await second.stop();
    }
  } finally {
    await again.stop();
  }
});

t('a rejected pushkey removes the pusher', async ({ s, alice, bob, gw, roomId }) => {
  // The restart test swapped the server: start a fresh one on the same database.
  const srv = await startTestServer(ENV, { databaseUrl: s.databaseUrl });
  try {
    gw.reply = (b) => ({ status: 200, body: { rejected: [b.notification.devices[0].pushkey] } });
    await send(srv, alice, roomId, 'to a dead pushkey');
    await until(async () => ok(await api(srv, bob, 'GET', '/pushers')).pushers.length === 0, 'the pusher to go');
    assert.equal(ok(await api(srv, bob, 'GET', '/pushers')).pushers, []);
  } finally {
    await srv.stop();
  }
  await gw.stop();
});

t.run();
