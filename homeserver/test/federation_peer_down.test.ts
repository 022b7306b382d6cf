import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { currentStateMap, eventually, restartServer, startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts, inviteAndJoin, pagedTimeline } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, putState, send, type User } from './support/rooms.js';

/**
 * Peer down (issue 5): B stops while A keeps sending into a room they share; B restarts with its
 * database and ends with every event, in the same order as A. A's catch-up sends only the newest
 * events of the room, so B must fetch the gap with `get_missing_events`.
 */
const ENV = {
  HEARTH_FEDERATION_RETRY_BASE_MS: '100',
  HEARTH_FEDERATION_RETRY_MAX_MS: '400',
  // Small, so the gap (60 messages and a state change) is far larger than what catch-up resends.
  HEARTH_FEDERATION_CATCHUP_EVENTS_PER_ROOM: '5',
  HEARTH_FEDERATION_MISSING_EVENTS_LIMIT: '100',
  HEARTH_LOG_LEVEL: process.env.PD_LOG ?? 'silent',
};

type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; roomId: string };
const t = suite<Ctx>('federation: peer down and catch-up');


beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b'], { env: () => ENV });
  ctx.a = ctx.cluster.get('hs-a');
  ctx.b = ctx.cluster.get('hs-b');
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

t('alice on A invites bob on B and bob joins; messages flow', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  ctx.roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { name: 'Outage', preset: 'private_chat' })).room_id;
  await inviteAndJoin(a, alice, b, bob, ctx.roomId);
  const id = await send(ts(a), alice, ctx.roomId, 'before the outage');
  await eventually(async () => (await api(ts(b), bob, 'GET', `/rooms/${enc(ctx.roomId)}/event/${enc(id)}`)).status === 200, 'A → B before the outage');
});

t('B is down while A sends 60 messages and a state change; after B restarts it holds every event in A\'s order', async (ctx) => {
  const { a, alice, bob, roomId } = ctx;
  await ctx.b.stop();
  const sent: string[] = [];
  for (let i = 1; i <= 30; i++) sent.push(await send(ts(a), alice, roomId, `during the outage ${i}`));
  sent.push(await putState(ts(a), alice, roomId, 'm.room.topic', '', { topic: 'changed while B was down' }));
  for (let i = 31; i <= 60; i++) sent.push(await send(ts(a), alice, roomId, `during the outage ${i}`));
  // A has tried (and failed) to reach B at least once, so the next attempt is a catch-up.
  await eventually(async () => {
    const [row] = await a.hs.deps.db.query<{ retry_count: number }>('select retry_count from federation_destinations where destination = ?', [ctx.b.serverName]);
    return (row?.retry_count ?? 0) > 0;
  }, 'A backs off from B');

  ctx.b = await restartServer(ctx.cluster, 'hs-b', ENV);
  const b = ctx.b;
  const last = sent[sent.length - 1]!;
  await eventually(async () => (await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(last)}`)).status === 200, 'the newest event reaches B', 300);
  // The gap came through get_missing_events (catch-up resent only the newest 5).
  assert.ok(a.federationRequests.some((r) => r.url.startsWith(`/_matrix/federation/v1/get_missing_events/`) && r.origin === b.serverName), 'B asked A for the missing events');
  for (const id of sent) {
    const res = await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(id)}`);
    assert.is(res.status, 200, `B holds ${id}`);
  }
  const onA = await pagedTimeline(ts(a), alice, roomId);
  const onB = await pagedTimeline(ts(b), bob, roomId);
  for (const id of sent) assert.ok(onB.includes(id), `B's timeline has ${id}`);
  assert.equal(onB, onA, 'the same events in the same order on both servers');
  assert.equal([...(await currentStateMap(b, roomId))].sort(), [...(await currentStateMap(a, roomId))].sort(), 'the same current state');
  const topic = ok(await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/state/m.room.topic/`));
  assert.is(topic.topic, 'changed while B was down');
});

t('after catch-up, messages flow both ways again', async (ctx) => {
  const { a, b, alice, bob, roomId } = ctx;
  const fromB = await send(ts(b), bob, roomId, 'B is back');
  await eventually(async () => (await api(ts(a), alice, 'GET', `/rooms/${enc(roomId)}/event/${enc(fromB)}`)).status === 200, 'B → A');
  const fromA = await send(ts(a), alice, roomId, 'welcome back');
  await eventually(async () => (await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(fromA)}`)).status === 200, 'A → B');
  assert.equal(await pagedTimeline(ts(b), bob, roomId), await pagedTimeline(ts(a), alice, roomId));
});

t.run();
