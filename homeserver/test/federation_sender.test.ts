import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { injector, registerUser, type TestServer } from './support/harness.js';
import { api, createRoom, enc, newTxn, ok, send, type User } from './support/rooms.js';
import {
  craftRemoteMember,
  restartServer,
  startExtraProcess,
  startFederationCluster,
  startRecordingPeer,
  type FederationCluster,
  type FederationTestServer,
  type RecordedTransaction,
  type RecordingPeer,
} from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { backoffMs, MAX_EDUS_PER_TXN, MAX_PDUS_PER_TXN } from '../src/services/federation/sender/destination.js';
import type { Homeserver } from '../src/server.js';

/**
 * The outgoing federation queue, against a recording stand-in destination (support/federation.ts)
 * that can be made unavailable: what A sends, in which transactions, and what survives a restart.
 */
const SENDER_ENV = {
  HEARTH_FEDERATION_RETRY_BASE_MS: '100',
  HEARTH_FEDERATION_RETRY_MAX_MS: '400',
  HEARTH_FEDERATION_CATCHUP_EVENTS_PER_ROOM: '20',
  ...(process.env.HEARTH_TEST_REDIS_URL ? { HEARTH_REDIS_URL: process.env.HEARTH_TEST_REDIS_URL } : {}),
};

type Ctx = { cluster: FederationCluster; a: FederationTestServer; peer: RecordingPeer; alice: User };
const t = suite<Ctx>('federation sender');

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a'], { env: () => SENDER_ENV });
  ctx.a = ctx.cluster.get('hs-a');
  ctx.peer = await startRecordingPeer(ctx.cluster, 'peer');
  ctx.alice = await registerUser(ctx.a as unknown as TestServer, 'alice');
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
  await ctx.peer?.close();
});

const srv = (s: FederationTestServer) => s as unknown as TestServer;
const bodiesOf = (txns: RecordedTransaction[], roomId: string) =>
  txns.flatMap((x) => x.pdus).filter((p) => p.room_id === roomId && p.type === 'm.room.message').map((p) => (p.content as { body: string }).body);
async function destinationRow(a: FederationTestServer, destination: string) {
  const [row] = await a.hs.deps.db.query<{ retry_count: number; stream_cursor: string; catch_up_target: string | null }>('select * from federation_destinations where destination = ?', [destination]);
  return row;
}
/** A room of alice's that the peer's user has joined (crafted: remote joins are another helper's). */
async function sharedRoom(a: FederationTestServer, alice: User, peer: RecordingPeer): Promise<string> {
  const roomId = await createRoom(srv(a), alice);
  await craftRemoteMember(a, roomId, `@p:${peer.serverName}`);
  return roomId;
}

t('back-off doubles per failure, is capped, and jitters within ±50%', () => {
  const cfg = { retryBaseMs: 100, retryMaxMs: 1000, catchUpEventsPerRoom: 1, leaseMs: 1000, remoteKeysTimeoutMs: 1000, remoteMediaMaxBytes: 1 };
  assert.equal([1, 2, 3, 4, 5, 6].map((n) => backoffMs(cfg, n, 0.5)), [100, 200, 400, 800, 1000, 1000]);
  assert.is(backoffMs(cfg, 3, 0), 200);
  assert.is(backoffMs(cfg, 3, 0.999), 600);
  assert.is(backoffMs(cfg, 9, 0.999), 1499);
});

t('our events reach the joined server in order, at most 50 PDUs per transaction; nothing from before it joined', async ({ a, alice, peer }) => {
  const roomId = await sharedRoom(a, alice, peer);
  const sent: string[] = [];
  for (let i = 0; i < 120; i++) {
    const body = `m${i}`;
    sent.push(body);
    await send(srv(a), alice, roomId, body);
  }
  await peer.waitFor((all) => bodiesOf(all, roomId).length >= 120);
  assert.equal(bodiesOf(peer.transactions, roomId), sent);
  for (const x of peer.transactions) assert.ok(x.pdus.length <= MAX_PDUS_PER_TXN, `${x.pdus.length} PDUs in one transaction`);
  assert.ok(!peer.transactions.some((x) => x.pdus.some((p) => p.type === 'm.room.create' && p.room_id === roomId)), 'history from before the join is not sent');
  assert.is(new Set(peer.transactions.map((x) => x.txnId)).size, peer.transactions.length, 'transaction ids are unique');
  for (const x of peer.transactions) assert.is(x.origin, a.serverName);
  // A PDU is sent as stored: signed by A, no event_id (room v3+), no unsigned.
  const pdu = peer.transactions.flatMap((x) => x.pdus)[0]!;
  assert.ok((pdu.signatures as Record<string, unknown>)[a.serverName]);
  assert.is(pdu.event_id, undefined);
});

t('at most 100 EDUs per transaction', async ({ a, peer }) => {
  peer.transactions.length = 0;
  const { outbox } = a.hs.deps.services.federationMessaging;
  const edus = Array.from({ length: 250 }, (_, i) => ({ destination: peer.serverName, eduType: 'org.example.test', content: JSON.stringify({ i }) }));
  const dests = await a.hs.deps.db.transaction((tx) => outbox.queue(tx, edus));
  outbox.queued(dests);
  await peer.waitFor((all) => all.flatMap((x) => x.edus).filter((e) => e.edu_type === 'org.example.test').length >= 250);
  const got = peer.transactions.flatMap((x) => x.edus).filter((e) => e.edu_type === 'org.example.test').map((e) => e.content.i);
  assert.equal(got, Array.from({ length: 250 }, (_, i) => i));
  for (const x of peer.transactions) assert.ok(x.edus.length <= MAX_EDUS_PER_TXN, `${x.edus.length} EDUs in one transaction`);
});

t('destination down: back-off grows, events wait (also across a restart of A), then arrive once and in order; back-off resets', async (ctx) => {
  const { alice, peer } = ctx;
  const roomId = await sharedRoom(ctx.a, alice, peer);
  peer.mode = 'down';
  const before = peer.requests.length;
  const sent: string[] = [];
  for (let i = 0; i < 10; i++) {
    sent.push(`down${i}`);
    await send(srv(ctx.a), alice, roomId, `down${i}`);
  }
  // Retries keep coming (timers only) and the recorded failure count grows.
  await waitUntil(async () => peer.requests.length - before >= 4 && ((await destinationRow(ctx.a, peer.serverName))?.retry_count ?? 0) >= 3);
  assert.is(bodiesOf(peer.transactions, roomId).length, 0);

  ctx.a = await restartServer(ctx.cluster, 'hs-a', SENDER_ENV);
  assert.ok(((await destinationRow(ctx.a, peer.serverName))?.retry_count ?? 0) >= 3, 'the back-off state survived the restart');
  peer.mode = 'ok';
  await peer.waitFor((all) => bodiesOf(all, roomId).length >= 10);
  await new Promise((r) => setTimeout(r, 300)); // a duplicate would show by now
  assert.equal(bodiesOf(peer.transactions, roomId), sent);
  await waitUntil(async () => (await destinationRow(ctx.a, peer.serverName))?.retry_count === 0);
});

t('catch-up after an outage sends the newest events per room, not the whole backlog', async (ctx) => {
  const { alice, peer } = ctx;
  const roomId = await sharedRoom(ctx.a, alice, peer);
  peer.mode = 'refuse';
  for (let i = 0; i < 30; i++) await send(srv(ctx.a), alice, roomId, `c${i}`);
  // Two more refused attempts after the last send: the second one began after c29 committed, and a
  // failure clears the catch-up target, so the attempt that succeeds targets all 30 (an attempt
  // begun mid-sends could otherwise succeed with an older target and send one event more).
  const afterSends = peer.requests.length;
  await waitUntil(async () => peer.requests.length - afterSends >= 2);
  peer.mode = 'ok';
  await peer.waitFor((all) => bodiesOf(all, roomId).includes('c29'));
  await waitUntil(async () => (await destinationRow(ctx.a, peer.serverName))?.catch_up_target === null);
  // The newest 20 (HEARTH_FEDERATION_CATCHUP_EVENTS_PER_ROOM), in order; the peer fetches the rest itself.
  assert.equal(bodiesOf(peer.transactions, roomId), Array.from({ length: 20 }, (_, i) => `c${i + 10}`));
  // Afterwards, sending is back to normal.
  await send(srv(ctx.a), alice, roomId, 'after');
  await peer.waitFor((all) => bodiesOf(all, roomId).includes('after'));
});

t('two homeserver processes on one database: every event goes out exactly once', async (ctx) => {
  if (!process.env.HEARTH_TEST_REDIS_URL) return; // the processes wake each other through Redis
  const { alice, peer } = ctx;
  const roomId = await sharedRoom(ctx.a, alice, peer);
  let second: Homeserver | undefined;
  try {
    second = await startExtraProcess(ctx.cluster, ctx.a, process.env.HEARTH_TEST_REDIS_URL);
    const request2 = injector(second.app.callback());
    const s2 = { request: request2 } as unknown as TestServer;
    const sent: string[] = [];
    await Promise.all(
      Array.from({ length: 2 }, async (_, p) => {
        for (let i = 0; i < 40; i++) {
          await send(p === 0 ? srv(ctx.a) : s2, alice, roomId, `p${p}-${i}`);
          sent.push(`p${p}-${i}`);
        }
      }),
    );
    await peer.waitFor((all) => bodiesOf(all, roomId).length >= 80);
    await new Promise((r) => setTimeout(r, 500));
    const got = bodiesOf(peer.transactions, roomId);
    assert.is(got.length, 80, 'no event sent twice');
    assert.equal([...got].sort(), [...sent].sort());
  } finally {
    await second?.close();
  }
});

t('EDUs out: typing, public read receipts (never private), presence, to-device (once per request), device list updates', async (ctx) => {
  const { a, alice, peer } = ctx;
  const roomId = await sharedRoom(a, alice, peer);
  const peerUser = `@p:${peer.serverName}`;
  const edusOf = (type: string) => peer.transactions.flatMap((x) => x.edus).filter((e) => e.edu_type === type);

  ok(await api(srv(a), alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.user_id)}`, { typing: true, timeout: 10_000 }));
  await peer.waitFor(() => edusOf('m.typing').some((e) => e.content.room_id === roomId && e.content.typing === true));
  assert.equal(edusOf('m.typing').find((e) => e.content.room_id === roomId)!.content, { room_id: roomId, user_id: alice.user_id, typing: true });

  const privateEv = await send(srv(a), alice, roomId, 'private');
  ok(await api(srv(a), alice, 'POST', `/rooms/${enc(roomId)}/receipt/m.read.private/${enc(privateEv)}`, {}));
  const publicEv = await send(srv(a), alice, roomId, 'public');
  ok(await api(srv(a), alice, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(publicEv)}`, {}));
  await peer.waitFor(() => edusOf('m.receipt').some((e) => JSON.stringify(e.content).includes(publicEv)));
  const receipt = edusOf('m.receipt').find((e) => JSON.stringify(e.content).includes(publicEv))!.content as any;
  assert.equal(receipt[roomId]['m.read'][alice.user_id].event_ids, [publicEv]);
  assert.ok(!edusOf('m.receipt').some((e) => JSON.stringify(e.content).includes(privateEv)), 'private receipts stay home');

  ok(await api(srv(a), alice, 'PUT', `/presence/${enc(alice.user_id)}/status`, { presence: 'unavailable', status_msg: 'lunch' }));
  await peer.waitFor(() => edusOf('m.presence').some((e) => JSON.stringify(e.content).includes('lunch')));
  const push = (edusOf('m.presence').find((e) => JSON.stringify(e.content).includes('lunch'))!.content as any).push[0];
  assert.is(push.user_id, alice.user_id);
  assert.is(push.presence, 'unavailable');

  const txnId = newTxn();
  const toDevice = { messages: { [peerUser]: { PEERDEV: { secret: 'hi' } } } };
  ok(await api(srv(a), alice, 'PUT', `/sendToDevice/m.test/${txnId}`, toDevice));
  ok(await api(srv(a), alice, 'PUT', `/sendToDevice/m.test/${txnId}`, toDevice)); // a retried request
  await peer.waitFor(() => edusOf('m.direct_to_device').length >= 1);
  ok(await api(srv(a), alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.user_id)}`, { typing: false }));
  await peer.waitFor(() => edusOf('m.typing').some((e) => e.content.room_id === roomId && e.content.typing === false));
  const dtd = edusOf('m.direct_to_device');
  assert.is(dtd.length, 1, 'a retried request is not sent twice');
  assert.equal(dtd[0]!.content.messages, toDevice.messages);
  assert.is(dtd[0]!.content.sender, alice.user_id);
  assert.is(dtd[0]!.content.type, 'm.test');
  assert.type(dtd[0]!.content.message_id, 'string');

  // A new device with keys: an m.device_list_update following on the previous one.
  const before = edusOf('m.device_list_update').length;
  const login = ok(await srv(a).request('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'correct horse battery' } }));
  const deviceKeys = { user_id: alice.user_id, device_id: login.device_id, algorithms: ['m.olm.v1.curve25519-aes-sha2'], keys: { [`ed25519:${login.device_id}`]: 'k1', [`curve25519:${login.device_id}`]: 'k2' }, signatures: { [alice.user_id]: { [`ed25519:${login.device_id}`]: 'sig' } } };
  ok(await srv(a).request('POST', '/_matrix/client/v3/keys/upload', { token: login.access_token, body: { device_keys: deviceKeys } }));
  await peer.waitFor(() => edusOf('m.device_list_update').slice(before).some((e) => e.content.device_id === login.device_id && e.content.keys !== undefined));
  const updates = edusOf('m.device_list_update').map((e) => e.content as any);
  const mine = updates.find((u) => u.device_id === login.device_id && u.keys)!;
  assert.is(mine.user_id, alice.user_id);
  assert.equal(mine.keys, deviceKeys);
  assert.type(mine.stream_id, 'number');
  // stream ids chain: each prev_id names the update before it.
  const ids = updates.map((u) => u.stream_id);
  updates.forEach((u, i) => assert.equal(u.prev_id, i === 0 ? (u.stream_id > 1 ? [u.stream_id - 1] : []) : [ids[i - 1]]));
});

async function waitUntil(cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.run();
