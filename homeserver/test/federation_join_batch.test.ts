// Joining a room over federation stores the resident's whole state and auth chain in batches
// (storage/federated_events.ts insertOutliers, applyCurrentStateChanges): every event with its
// auth and prev edges, the current state equal to the resident's, one membership change per
// member (what sync and device lists read), and the resident's signing key fetched once.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, createRoom, enc, join, ok, putState, send, type User } from './support/rooms.js';
import { asTestServer, currentStateMap, eventually, inviteAndJoin, startFederationCluster, type FederationCluster, type FederationTestServer } from './support/federation.js';

type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; roomId: string };
const t = suite<Ctx>('federation: joining stores the state and auth chain in batches');
const MEMBERS_ON_A = 5;

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b']);
  [ctx.a, ctx.b] = ['hs-a', 'hs-b'].map((l) => ctx.cluster.get(l)) as [FederationTestServer, FederationTestServer];
  const A = asTestServer(ctx.a);
  ctx.alice = await registerUser(A, 'alice');
  ctx.bob = await registerUser(asTestServer(ctx.b), 'bob');
  ctx.roomId = await createRoom(A, ctx.alice, { preset: 'public_chat', name: 'Batch' });
  for (let i = 0; i < MEMBERS_ON_A; i++) {
    const u = await registerUser(A, `m${i}`);
    await join(A, u, ctx.roomId);
    await send(A, u, ctx.roomId, `hello from m${i}`);
  }
  await putState(A, ctx.alice, ctx.roomId, 'm.room.topic', '', { topic: 'joined in batches' });
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

t('the joining server holds every state and auth event with its edges, and the resident\'s current state', async ({ a, b, alice, bob, roomId }) => {
  const keyFetches = () => a.federationRequests.filter((r) => r.url === '/_matrix/key/v2/server').length;
  const keysBefore = keyFetches();
  await inviteAndJoin(a, alice, b, bob, roomId, { invite: false });
  await eventually(async () => (await currentStateMap(a, roomId)).has(`m.room.member|${bob.user_id}`), 'A applies the join');
  const onA = await currentStateMap(a, roomId);
  const onB = await currentStateMap(b, roomId);
  assert.equal(Object.fromEntries([...onB].sort()), Object.fromEntries([...onA].sort()), 'B\'s current state is A\'s');
  assert.ok(onB.size >= MEMBERS_ON_A + 6, 'a real state (create, power levels, join rules, members, name, topic…)');

  // Every event B stored for the room has exactly its auth_events and prev_events as edges.
  const db = b.hs.deps.db;
  const rows = await db.query<{ event_id: string; json: string }>('select event_id, json from events where room_id = ?', [roomId]);
  assert.ok(rows.length >= onB.size, 'the state and its auth chain are stored');
  const authRows = await db.query<{ event_id: string; auth_event_id: string }>('select a.event_id, a.auth_event_id from event_auth a join events e using (event_id) where e.room_id = ?', [roomId]);
  const edgeRows = await db.query<{ event_id: string; prev_event_id: string }>('select event_id, prev_event_id from event_edges where room_id = ?', [roomId]);
  const group = (list: [string, string][]) => {
    const m = new Map<string, string[]>();
    for (const [k, v] of list) m.set(k, [...(m.get(k) ?? []), v].sort());
    return m;
  };
  const auth = group(authRows.map((r) => [r.event_id, r.auth_event_id]));
  const edges = group(edgeRows.map((r) => [r.event_id, r.prev_event_id]));
  for (const r of rows) {
    const pdu = JSON.parse(r.json) as { auth_events: string[]; prev_events: string[] };
    assert.equal(auth.get(r.event_id) ?? [], [...pdu.auth_events].sort(), `auth edges of ${r.event_id}`);
    assert.equal(edges.get(r.event_id) ?? [], [...pdu.prev_events].sort(), `prev edges of ${r.event_id}`);
  }
  for (const id of onB.values()) assert.ok(rows.some((r) => r.event_id === id), `state event ${id} stored`);

  // One membership change per member of the state (sync, device lists and room hosts read them).
  const changes = await db.query<{ user_id: string; membership: string; event_id: string }>('select user_id, membership, event_id from membership_changes where room_id = ?', [roomId]);
  const members = [...onB].filter(([k]) => k.startsWith('m.room.member|'));
  assert.is(members.length, MEMBERS_ON_A + 2, 'alice, the members and bob');
  for (const [k, id] of members) {
    const userId = k.slice('m.room.member|'.length);
    assert.ok(changes.some((c) => c.user_id === userId && c.membership === 'join' && c.event_id === id), `membership change of ${userId}`);
  }
  assert.ok(keyFetches() - keysBefore <= 1, 'A\'s key is fetched at most once for the whole join');

  // The room works for bob: he reads the state over the client API.
  const state = ok(await api(asTestServer(b), bob, 'GET', `/rooms/${enc(roomId)}/state/m.room.topic/`)) as { topic: string };
  assert.is(state.topic, 'joined in batches');
});

t.run();
