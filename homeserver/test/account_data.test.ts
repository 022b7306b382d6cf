// Account data (spec: "Client Config", account-data.yaml), room tags ("Room Tagging", tags.yaml)
// and their delivery through /sync and the WebSocket sync: the account-data stream and the
// two-part sync token `s<events>_<accountData>`.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, type User } from './support/rooms.js';
import { syncAs as sync } from './support/e2e.js';
import { openSyncSocket } from './support/ws_sync.js';
import { formatToken, parseToken } from '../src/services/sync/token.js';

const globalData = (body: any): Record<string, unknown> => Object.fromEntries(body.account_data.events.map((e: any) => [e.type, e.content]));
const roomData = (body: any, roomId: string): Record<string, unknown> | undefined =>
  body.rooms.join[roomId] && Object.fromEntries(body.rooms.join[roomId].account_data.events.map((e: any) => [e.type, e.content]));

const t = suite<{ s: TestServer; alice: User; bob: User; roomId: string }>('account data');

beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer();
  ctx.alice = await registerUser(ctx.s, 'adalice');
  ctx.bob = await registerUser(ctx.s, 'adbob');
  ctx.roomId = ok(await api(ctx.s, ctx.alice, 'POST', '/createRoom', { name: 'AD' }), 'createRoom').room_id;
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

t('tokens: the two-part sync token round-trips; one-part tokens still parse', () => {
  const zeros = { receipts: 0, typing: 0, presence: 0, toDevice: 0, deviceLists: 0 };
  assert.equal(parseToken(formatToken({ events: 12, accountData: 3 })), { events: 12, accountData: 3, ...zeros });
  assert.is(formatToken({ events: 12, accountData: 3 }), 's12_3_0_0_0_0_0');
  assert.is(formatToken({ events: 12 }), 's12');
  assert.equal(parseToken('s12'), { events: 12, accountData: 0, ...zeros });
  // Older tokens with fewer parts still parse; parts beyond the known streams are ignored.
  assert.equal(parseToken('s12_3'), { events: 12, accountData: 3, ...zeros });
  assert.equal(parseToken('s12_3_9_1_2_3_4_99'), { events: 12, accountData: 3, receipts: 9, typing: 1, presence: 2, toDevice: 3, deviceLists: 4 });
  assert.throws(() => parseToken('s12_x'));
});

t('global and room account data: set, get, 404, 403 for other users, refused types', async ({ s, alice, bob, roomId }) => {
  const me = enc(alice.user_id);
  ok(await api(s, alice, 'PUT', `/user/${me}/account_data/org.example.cfg`, { a: 1 }), 'put global');
  assert.equal(ok(await api(s, alice, 'GET', `/user/${me}/account_data/org.example.cfg`), 'get global'), { a: 1 });
  ok(await api(s, alice, 'PUT', `/user/${me}/account_data/org.example.cfg`, { a: 2 }), 'replace global');
  assert.equal(ok(await api(s, alice, 'GET', `/user/${me}/account_data/org.example.cfg`), 'get global'), { a: 2 });
  ok(await api(s, alice, 'PUT', `/user/${me}/rooms/${enc(roomId)}/account_data/org.example.room`, { r: true }), 'put room');
  assert.equal(ok(await api(s, alice, 'GET', `/user/${me}/rooms/${enc(roomId)}/account_data/org.example.room`), 'get room'), { r: true });

  const missing = await api(s, alice, 'GET', `/user/${me}/account_data/org.example.none`);
  assert.is(missing.status, 404);
  assert.is(missing.body.errcode, 'M_NOT_FOUND');
  // Room data is not global data.
  assert.is((await api(s, alice, 'GET', `/user/${me}/account_data/org.example.room`)).status, 404);

  for (const [method, path] of [
    ['PUT', `/user/${me}/account_data/org.example.cfg`],
    ['GET', `/user/${me}/account_data/org.example.cfg`],
    ['PUT', `/user/${me}/rooms/${enc(roomId)}/account_data/x`],
    ['GET', `/user/${me}/rooms/${enc(roomId)}/tags`],
    ['PUT', `/user/${me}/rooms/${enc(roomId)}/tags/u.x`],
  ] as const) {
    const res = await api(s, bob, method, path, method === 'PUT' ? {} : undefined);
    assert.is(res.status, 403, `${method} ${path}`);
    assert.is(res.body.errcode, 'M_FORBIDDEN');
  }
  for (const type of ['m.fully_read', 'm.push_rules']) {
    const res = await api(s, alice, 'PUT', `/user/${me}/account_data/${type}`, {});
    assert.is(res.status, 405, type);
    assert.is(res.body.errcode, 'M_BAD_JSON');
  }
  const badRoom = await api(s, alice, 'PUT', `/user/${me}/rooms/not-a-room/account_data/x`, {});
  assert.is(badRoom.status, 400);
  assert.is(badRoom.body.errcode, 'M_INVALID_PARAM');
  const array = await s.request('PUT', `/_matrix/client/v3/user/${me}/account_data/x`, { token: alice.access_token, body: [1] });
  assert.is(array.status, 400);
  const big = await api(s, alice, 'PUT', `/user/${me}/account_data/org.example.big`, { x: 'y'.repeat(70_000) });
  assert.ok(big.status === 413 || big.status === 400, String(big.status));
});

t('tags: put with order, get, delete; order is validated', async ({ s, alice, roomId }) => {
  const base = `/user/${enc(alice.user_id)}/rooms/${enc(roomId)}/tags`;
  ok(await api(s, alice, 'PUT', `${base}/u.work`, { order: 0.25 }), 'put tag');
  ok(await api(s, alice, 'PUT', `${base}/m.favourite`, {}), 'put tag');
  assert.equal(ok(await api(s, alice, 'GET', base), 'get tags'), { tags: { 'u.work': { order: 0.25 }, 'm.favourite': {} } });
  const bad = await api(s, alice, 'PUT', `${base}/u.bad`, { order: 'first' });
  assert.is(bad.status, 400);
  ok(await api(s, alice, 'DELETE', `${base}/u.work`), 'delete tag');
  assert.equal(ok(await api(s, alice, 'GET', base), 'get tags'), { tags: { 'm.favourite': {} } });
});

t('initial sync has all account data; incremental only the changes; m.direct and ignored users are stored', async ({ s, alice, roomId }) => {
  const me = enc(alice.user_id);
  const initial = await sync(s, alice);
  assert.match(initial.next_batch, /^s\d+(?:_\d+){6}$/);
  assert.equal(globalData(initial)['org.example.cfg'], { a: 2 });
  assert.equal(roomData(initial, roomId)?.['m.tag'], { tags: { 'm.favourite': {} } });
  assert.equal(roomData(initial, roomId)?.['org.example.room'], { r: true });

  const quiet = await sync(s, alice, { since: initial.next_batch });
  assert.equal(quiet.account_data.events, []);
  assert.equal(quiet.rooms.join, {}, 'nothing changed');

  ok(await api(s, alice, 'PUT', `/user/${me}/account_data/m.direct`, { [alice.user_id]: [roomId] }), 'm.direct');
  ok(await api(s, alice, 'PUT', `/user/${me}/account_data/m.ignored_user_list`, { ignored_users: { '@x:hearth.test': {} } }), 'ignore');
  ok(await api(s, alice, 'PUT', `/user/${me}/rooms/${enc(roomId)}/tags/u.later`, { order: 0.5 }), 'tag');
  const inc = await sync(s, alice, { since: initial.next_batch });
  assert.equal(globalData(inc), { 'm.direct': { [alice.user_id]: [roomId] }, 'm.ignored_user_list': { ignored_users: { '@x:hearth.test': {} } } });
  // The room appears with only its account-data change (no new events).
  assert.equal(inc.rooms.join[roomId].timeline.events, []);
  assert.equal(roomData(inc, roomId), { 'm.tag': { tags: { 'm.favourite': {}, 'u.later': { order: 0.5 } } } });

  // An old one-part token is accepted (its account-data position reads as 0: everything again).
  const old = `s${parseToken(inc.next_batch).events}`;
  const fromOld = await sync(s, alice, { since: old });
  assert.ok(fromOld.account_data.events.length >= 3);
  assert.is(parseToken(fromOld.next_batch).accountData, parseToken(inc.next_batch).accountData);
  // A token from the future is refused.
  const res = await api(s, alice, 'GET', `/sync?since=s1_999999999`);
  assert.is(res.status, 400);
});

t('a waiting long-poll wakes on an account-data change', async ({ s, alice }) => {
  const since = (await sync(s, alice)).next_batch;
  const started = Date.now();
  const waiting = sync(s, alice, { since, timeout: 10_000 });
  await new Promise((r) => setTimeout(r, 200));
  ok(await api(s, alice, 'PUT', `/user/${enc(alice.user_id)}/account_data/org.example.wake`, { n: 1 }), 'put');
  const body = await waiting;
  assert.ok(Date.now() - started < 5_000, 'woke early');
  assert.equal(globalData(body), { 'org.example.wake': { n: 1 } });
});

t('WebSocket sync delivers an account-data change and accepts the two-part ack', async ({ s, alice }) => {
  const sock = await openSyncSocket(s, alice);
  const first = await sock.next();
  assert.is(first.type, 'sync');
  assert.match(first.pos, /^s\d+(?:_\d+){6}$/);
  assert.equal(globalData(first.data)['org.example.wake'], { n: 1 });
  sock.send({ type: 'ack', pos: first.pos });
  ok(await api(s, alice, 'PUT', `/user/${enc(alice.user_id)}/account_data/org.example.ws`, { via: 'ws' }), 'put');
  const second = await sock.next();
  assert.is(second?.type, 'sync', JSON.stringify(second));
  assert.equal(globalData(second.data), { 'org.example.ws': { via: 'ws' } });
  assert.is(parseToken(second.pos).events, parseToken(first.pos).events);
  assert.ok(parseToken(second.pos).accountData! > parseToken(first.pos).accountData!);
  sock.send({ type: 'ack', pos: second.pos });
  // Acknowledging a position that was not sent (account-data part ahead) is a protocol error.
  const p = parseToken(second.pos);
  sock.send({ type: 'ack', pos: formatToken({ events: p.events, accountData: p.accountData! + 5 }) });
  const err = await sock.next();
  assert.is(err?.errcode, 'M_INVALID_PARAM');
  // The server closes the socket (protocol error); let the close handshake finish.
  assert.is((await sock.closed).code, 4000);
});

t.run();
