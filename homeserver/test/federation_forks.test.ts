import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { asTestServer as ts, craft, currentStateMap, eventRow, eventually, inviteAndJoin, postTxn, startClusterWithUsers, type FederationCluster, type FederationTestServer } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, putState, type User } from './support/rooms.js';
import { loadSnapshot } from '../src/storage/state.js';
import { eventIdFor } from '../src/services/rooms/event_format.js';
import type { RoomVersionId } from '../src/services/rooms/pdu.js';

/**
 * Forks reaching a server one branch at a time. Events by C's users (carol, power 100; dave, 50)
 * are crafted on a common base event, signed by C and posted from C to A and B in chosen orders
 * and transactions; C itself never stores them, so nobody relays them and each server sees
 * exactly the order the test chose. Every fork checks the current state against an expectation
 * worked out here from the resolution rules (not from another server's answer), the forward
 * extremities, the DAG state kept for `/state_ids`, and the state at the event's position (what
 * `/context` and sync show) — before any event merges the branches.
 *
 * (federation_rooms_hostile's fork test crafts branches by users of A and B: each server's sender
 * relays its own users' events at once, so both servers saw the branches in the same order and
 * "last arrival wins" agreed with resolution there. Hence senders on C, which relays nothing.)
 */
type Ctx = {
  cluster: FederationCluster;
  a: FederationTestServer;
  b: FederationTestServer;
  c: FederationTestServer;
  alice: User;
  bob: User;
  carol: User;
  dave: User;
  /** Per server: the events its FederatedEventStore took down the fast path (persistLinear). */
  linear: Map<FederationTestServer, Set<string>>;
};
const t = suite<Ctx>('federation: forks arriving one branch at a time');

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b', 'hs-c'], { alice: 'hs-a', bob: 'hs-b', carol: 'hs-c', dave: 'hs-c' });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'], c: servers['hs-c'] }, users);
  ctx.linear = new Map([ctx.a, ctx.b].map((s) => [s, watchLinear(s)]));
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

type Fork = { roomId: string; version: RoomVersionId; base: string; pre: Map<string, string>; pl: Record<string, any> };

/**
 * A room on A joined from B (bob) and C (carol 100, dave 50, bob 50), with a topic; returns once
 * all three servers hold one forward extremity (`base`) and the same state (`pre`).
 */
async function forkRoom({ a, b, c, alice, bob, carol, dave }: Ctx): Promise<Fork> {
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat' })).room_id as string;
  await inviteAndJoin(a, alice, b, bob, roomId, { invite: false });
  await inviteAndJoin(a, alice, c, carol, roomId, { invite: false });
  await inviteAndJoin(a, alice, c, dave, roomId, { invite: false });
  // C, already in the room, makes dave's join itself and sends it on: A must hold it before the
  // power levels, or the graph forks here already.
  await eventually(async () => (await currentStateMap(a, roomId)).has(`m.room.member|${dave.user_id}`), "dave's join reaches A");
  const pl = { ...ok(await api(ts(a), alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.power_levels/`)), users: { [alice.user_id]: 100, [carol.user_id]: 100, [dave.user_id]: 50, [bob.user_id]: 50 } };
  await putState(ts(a), alice, roomId, 'm.room.power_levels', '', pl);
  const base = await putState(ts(a), alice, roomId, 'm.room.topic', '', { topic: 'before the fork' });
  const view = async () => JSON.stringify(await Promise.all([a, b, c].map(async (s) => [await extremities(s, roomId), sorted(await currentStateMap(s, roomId))])));
  const settled = JSON.stringify(await Promise.all([a, b, c].map(async () => [[base], sorted(await currentStateMap(a, roomId))])));
  await eventually(async () => (await view()) === settled, 'every server holds the same single extremity and state').catch(async (err: Error) => {
    throw new Error(`${err.message}: base ${base}, ${await view()}`);
  });
  const version = (await a.hs.deps.db.query<{ room_version: string }>('select room_version from rooms where room_id = ?', [roomId]))[0]!.room_version as RoomVersionId;
  return { roomId, version, base, pre: await currentStateMap(a, roomId), pl };
}

t('a single-prev fork arriving alone after the other branch: resolved state, both extremities, its own DAG state', async (ctx) => {
  const { a, b, c, alice, carol, dave, linear } = ctx;
  const { roomId, base, pre } = await forkRoom(ctx);
  const t0 = Date.now();
  // Same mainline (both authorised by the same power levels): resolution orders them by
  // origin_server_ts, so X (later) is applied last and wins, in whatever order they arrive.
  const x = await craft(a, c, roomId, { type: 'm.room.topic', state_key: '', sender: carol.user_id, content: { topic: 'X side' } }, [base], { ts: t0 + 2000 });
  const y = await craft(a, c, roomId, { type: 'm.room.topic', state_key: '', sender: dave.user_id, content: { topic: 'Y side' } }, [base], { ts: t0 + 1000 });
  const expected = new Map(pre).set('m.room.topic|', x.id);

  // A: X extends the room; then Y, alone in its own transaction, forks at base.
  accepted(await postTxn(c, a, [x.pdu]), x.id);
  assert.equal(sorted(await currentStateMap(a, roomId)), sorted(expected), 'X applied');
  assert.ok(linear.get(a)!.has(x.id), 'A: X extends the room: the fast path');
  accepted(await postTxn(c, a, [y.pdu]), y.id);
  assert.not.ok(linear.get(a)!.has(y.id), 'A: never the fast path for a fork');
  assert.equal(sorted(await currentStateMap(a, roomId)), sorted(expected), 'A: the resolved state, not the last arrival');
  assert.equal(await extremities(a, roomId), [x.id, y.id].sort(), 'A: both branches are forward extremities');
  const dagY = await dagState(a, y.id);
  assert.equal(sorted(dagY.before), sorted(pre), "Y's state before is the base's, not the current state");
  assert.equal(sorted(dagY.after), sorted(new Map(pre).set('m.room.topic|', y.id)), "Y's state after is the base's plus Y");
  assert.equal(sorted(await stateAtPosition(a, y.id)), sorted(expected), "the state at Y's stream position is the room's resolved state");
  assert.is(ok(await api(ts(a), alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.topic/`)).topic, 'X side');
  assert.equal(sorted(await stateIdsAt(c, a, roomId, y.id)), sorted(pre), '/state_ids at Y: the state before Y');

  // B: the other order (Y extends, then X forks). Same resolved state as A and as expected.
  accepted(await postTxn(c, b, [y.pdu]), y.id);
  accepted(await postTxn(c, b, [x.pdu]), x.id);
  assert.ok(linear.get(b)!.has(y.id) && !linear.get(b)!.has(x.id), 'B: Y fast, X (the fork) not');
  assert.equal(sorted(await currentStateMap(b, roomId)), sorted(expected), 'B: the resolved state');
  assert.equal(sorted(await currentStateMap(b, roomId)), sorted(await currentStateMap(a, roomId)), 'A and B agree');
  assert.equal(await extremities(b, roomId), [x.id, y.id].sort(), 'B: both branches are forward extremities');
  assert.equal(sorted((await dagState(b, x.id)).before), sorted(pre), "B: X's state before is the base's");
  assert.equal(sorted(await stateIdsAt(c, b, roomId, x.id)), sorted(pre), '/state_ids at X on B: the state before X');
});

t('a single-prev fork on an older event carrying a message: current state unchanged, extremities grow', async (ctx) => {
  const { a, b, c, alice, carol, dave, linear } = ctx;
  const { roomId, base, pre } = await forkRoom(ctx);
  const x1 = await craft(a, c, roomId, { type: 'm.room.topic', state_key: '', sender: carol.user_id, content: { topic: 'moved on' } }, [base]);
  const x2 = await craft(a, c, roomId, { type: 'm.room.message', sender: carol.user_id, content: { msgtype: 'm.text', body: 'after the topic' } }, [x1.id], { depth: x1.pdu.depth + 1 });
  const m = await craft(a, c, roomId, { type: 'm.room.message', sender: dave.user_id, content: { msgtype: 'm.text', body: 'a late reply' } }, [base]);
  const expected = new Map(pre).set('m.room.topic|', x1.id);
  for (const s of [a, b]) {
    accepted(await postTxn(c, s, [x1.pdu, x2.pdu]), x2.id);
    accepted(await postTxn(c, s, [m.pdu]), m.id);
    assert.ok(linear.get(s)!.has(x2.id), `${s.label}: X2 extends the room`);
    assert.not.ok(linear.get(s)!.has(m.id), `${s.label}: the late message is a fork`);
    assert.equal(sorted(await currentStateMap(s, roomId)), sorted(expected), `${s.label}: the message changed no state`);
    assert.equal(await extremities(s, roomId), [x2.id, m.id].sort(), `${s.label}: the message is a new extremity, next to X2`);
    assert.ok((await eventRow(s, m.id)).streamOrdering !== null, `${s.label}: in the timeline`);
    const dag = await dagState(s, m.id);
    assert.equal(sorted(dag.before), sorted(pre), `${s.label}: the message's DAG state is the base's`);
    assert.equal(sorted(dag.after), sorted(pre));
    assert.equal(sorted(await stateAtPosition(s, m.id)), sorted(expected), `${s.label}: the state at its position is the current state, not the base's`);
  }
  // What a client sees at the message: the room's state then (topic X1), not the fork's.
  const context = ok(await api(ts(a), alice, 'GET', `/rooms/${enc(roomId)}/context/${enc(m.id)}?limit=0`));
  const topic = (context.state as { type: string; event_id: string }[]).find((e) => e.type === 'm.room.topic');
  assert.is(topic?.event_id, x1.id, '/context state at the late message');
  assert.equal(sorted(await stateIdsAt(c, a, roomId, m.id)), sorted(pre), '/state_ids at the message: its DAG state');
});

t('the losing branch loses on both servers, whatever the order: demotion vs topic', async (ctx) => {
  const { a, b, c, carol, dave, linear } = ctx;
  const { roomId, base, pre, pl } = await forkRoom(ctx);
  const t0 = Date.now();
  // Dave's topic is newer (it would win on timestamps) but carol's demotion takes his power away.
  const demote = await craft(a, c, roomId, { type: 'm.room.power_levels', state_key: '', sender: carol.user_id, content: { ...pl, users: { ...pl.users, [dave.user_id]: 0 } } }, [base], { ts: t0 + 1000 });
  const topic = await craft(a, c, roomId, { type: 'm.room.topic', state_key: '', sender: dave.user_id, content: { topic: 'dave was here' } }, [base], { ts: t0 + 2000 });
  const expected = new Map(pre).set('m.room.power_levels|', demote.id);
  accepted(await postTxn(c, a, [demote.pdu]), demote.id);
  accepted(await postTxn(c, a, [topic.pdu]), topic.id);
  accepted(await postTxn(c, b, [topic.pdu]), topic.id);
  assert.is((await currentStateMap(b, roomId)).get('m.room.topic|'), topic.id, 'B: the topic applied while unopposed');
  accepted(await postTxn(c, b, [demote.pdu]), demote.id);
  for (const s of [a, b]) assert.equal(sorted(await currentStateMap(s, roomId)), sorted(expected), `${s.label}: demotion kept, topic lost`);
  assert.not.ok(linear.get(a)!.has(topic.id) || linear.get(b)!.has(demote.id), 'the second arrival is a fork on each');
  assert.ok((await eventRow(a, topic.id)).softFailed, 'A: the topic came after the demotion: soft-failed');
  assert.equal(await extremities(a, roomId), [demote.id]);
  assert.equal(await extremities(b, roomId), [demote.id, topic.id].sort());
  // A merge over both branches (the soft-failed topic included, as B sees them) changes nothing.
  const merge = await craft(b, c, roomId, { type: 'm.room.message', sender: carol.user_id, content: { msgtype: 'm.text', body: 'merge' } }, [demote.id, topic.id].sort());
  for (const s of [b, a]) {
    accepted(await postTxn(c, s, [merge.pdu]), merge.id);
    assert.equal(await extremities(s, roomId), [merge.id], `${s.label}: the merge is the only extremity`);
    assert.equal(sorted(await currentStateMap(s, roomId)), sorted(expected), `${s.label}: same state after the merge`);
  }
  // Once merged, the room is linear again: the next event takes the fast path on both.
  const next = await craft(b, c, roomId, { type: 'm.room.message', sender: carol.user_id, content: { msgtype: 'm.text', body: 'after the merge' } }, [merge.id]);
  for (const s of [a, b]) {
    accepted(await postTxn(c, s, [next.pdu]), next.id);
    assert.ok(linear.get(s)!.has(next.id), `${s.label}: the event after the merge extends the room`);
    assert.equal(sorted(await currentStateMap(s, roomId)), sorted(expected));
  }
});

t('the losing branch loses on both servers, whatever the order: ban vs name', async (ctx) => {
  const { a, b, c, carol, dave, linear } = ctx;
  const { roomId, base, pre } = await forkRoom(ctx);
  const t0 = Date.now();
  const ban = await craft(a, c, roomId, { type: 'm.room.member', state_key: dave.user_id, sender: carol.user_id, content: { membership: 'ban' } }, [base], { ts: t0 + 1000 });
  const name = await craft(a, c, roomId, { type: 'm.room.name', state_key: '', sender: dave.user_id, content: { name: "dave's room" } }, [base], { ts: t0 + 2000 });
  const afterBan = new Map(pre).set(`m.room.member|${dave.user_id}`, ban.id);
  accepted(await postTxn(c, b, [ban.pdu]), ban.id);
  accepted(await postTxn(c, b, [name.pdu]), name.id);
  accepted(await postTxn(c, a, [name.pdu]), name.id);
  assert.is((await currentStateMap(a, roomId)).get('m.room.name|'), name.id, 'A: the name applied while unopposed');
  accepted(await postTxn(c, a, [ban.pdu]), ban.id);
  for (const s of [a, b]) {
    assert.equal(sorted(await currentStateMap(s, roomId)), sorted(afterBan), `${s.label}: dave banned, his name change gone`);
    const m = await s.hs.deps.db.query<{ membership: string }>(`select membership from current_state where room_id = ? and type = 'm.room.member' and state_key = ?`, [roomId, dave.user_id]);
    assert.is(m[0]?.membership, 'ban');
  }
  assert.ok((await eventRow(b, name.id)).softFailed, 'B: the name came after the ban: soft-failed');
  assert.not.ok(linear.get(a)!.has(ban.id) || linear.get(b)!.has(name.id), 'the second arrival is a fork on each');
});

t('/state_ids and /state at events of each branch answer that branch\u2019s DAG state', async (ctx) => {
  const { a, b, c, carol, dave, linear } = ctx;
  const { roomId, version, base, pre } = await forkRoom(ctx);
  const x1 = await craft(a, c, roomId, { type: 'm.room.topic', state_key: '', sender: carol.user_id, content: { topic: 'X branch' } }, [base]);
  const x2 = await craft(a, c, roomId, { type: 'm.room.message', sender: carol.user_id, content: { msgtype: 'm.text', body: 'on X' } }, [x1.id], { depth: x1.pdu.depth + 1 });
  const y1 = await craft(a, c, roomId, { type: 'm.room.name', state_key: '', sender: dave.user_id, content: { name: 'Y branch' } }, [base]);
  const y2 = await craft(a, c, roomId, { type: 'm.room.message', sender: dave.user_id, content: { msgtype: 'm.text', body: 'on Y' } }, [y1.id], { depth: y1.pdu.depth + 1 });
  for (const [s, first, second] of [[a, [x1, x2], [y1, y2]], [b, [y1, y2], [x1, x2]]] as const) {
    accepted(await postTxn(c, s, first.map((e) => e.pdu)), first[1].id);
    accepted(await postTxn(c, s, second.map((e) => e.pdu)), second[1].id);
  }
  assert.not.ok(linear.get(a)!.has(y1.id) || linear.get(b)!.has(x1.id), 'the second branch is a fork on each');
  const onX = new Map(pre).set('m.room.topic|', x1.id);
  const onY = new Map(pre).set('m.room.name|', y1.id);
  for (const [asker, s] of [[c, a], [c, b], [b, a], [a, b]] as const) {
    const at = (id: string) => stateIdsAt(asker, s, roomId, id).then(sorted);
    assert.equal(await at(x1.id), sorted(pre), `${s.label}: before X1`);
    assert.equal(await at(y1.id), sorted(pre), `${s.label}: before Y1`);
    assert.equal(await at(x2.id), sorted(onX), `${s.label}: before X2 (X branch)`);
    assert.equal(await at(y2.id), sorted(onY), `${s.label}: before Y2 (Y branch)`);
  }
  for (const s of [a, b]) {
    const res = await c.hs.deps.services.federation.client.request({ destination: s.serverName, method: 'GET', path: `/_matrix/federation/v1/state/${enc(roomId)}`, query: { event_id: y2.id } });
    const ids = (res.pdus as Record<string, unknown>[]).map((p) => eventIdFor(p, version));
    assert.equal(ids.sort(), [...onY.values()].sort(), `${s.label}: /state at Y2 serves the Y branch's events`);
    assert.ok((res.auth_chain as unknown[]).length > 0);
    // The branches merge in current state (different keys: nothing to resolve).
    assert.equal(sorted(await currentStateMap(s, roomId)), sorted(new Map(onX).set('m.room.name|', y1.id)));
  }
});

// --- helpers ---

/**
 * Records the events a server's store persists through its fast path (an observation point on the
 * real store, not a stand-in: the original method still runs).
 */
function watchLinear(s: FederationTestServer): Set<string> {
  const store = s.hs.deps.services.federationRooms.store as unknown as Record<string, unknown>;
  const original = store.persistLinear;
  if (typeof original !== 'function') throw new Error('FederatedEventStore.persistLinear is gone: update this test');
  const seen = new Set<string>();
  store.persistLinear = function (this: unknown, ...args: { event: { event_id: string } }[]) {
    seen.add(args[2]!.event.event_id);
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
  return seen;
}

const sorted = (m: Map<string, string>): [string, string][] => [...m].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));

/** The /send answer accepted this PDU (no error for it). */
function accepted(res: any, eventId: string): void {
  assert.equal(res.pdus?.[eventId], {}, `PDU ${eventId}: ${JSON.stringify(res.pdus?.[eventId])}`);
}

async function extremities(s: FederationTestServer, roomId: string): Promise<string[]> {
  return (await s.hs.deps.db.query<{ event_id: string }>('select event_id from forward_extremities where room_id = ? order by event_id', [roomId])).map((r) => r.event_id);
}

const asPipes = (m: Map<string, string>) => new Map([...m].map(([k, v]) => [k.replace('\u0000', '|'), v]));

/** The DAG state kept for an event received over federation (event_dag_state). */
async function dagState(s: FederationTestServer, eventId: string): Promise<{ before: Map<string, string>; after: Map<string, string> }> {
  const db = s.hs.deps.db;
  const [row] = await db.query<{ state_before: string; state_after: string }>('select state_before, state_after from event_dag_state where event_id = ?', [eventId]);
  if (!row) throw new Error(`${s.label} holds no DAG state for ${eventId}`);
  return { before: asPipes(await loadSnapshot(db, Number(row.state_before))), after: asPipes(await loadSnapshot(db, Number(row.state_after))) };
}

/** The room's state at the event's stream position (events.state_after: what sync and /context show). */
async function stateAtPosition(s: FederationTestServer, eventId: string): Promise<Map<string, string>> {
  const [row] = await s.hs.deps.db.query<{ state_after: string | null }>('select state_after from events where event_id = ?', [eventId]);
  if (!row?.state_after) throw new Error(`${s.label}: no state at ${eventId}`);
  return asPipes(await loadSnapshot(s.hs.deps.db, Number(row.state_after)));
}

/** `GET /state_ids` at an event, asked by `asker` of `server`: "type|state_key" → id (keys from the asker-independent stored events). */
async function stateIdsAt(asker: FederationTestServer, server: FederationTestServer, roomId: string, eventId: string): Promise<Map<string, string>> {
  const res = await asker.hs.deps.services.federation.client.request({ destination: server.serverName, method: 'GET', path: `/_matrix/federation/v1/state_ids/${enc(roomId)}`, query: { event_id: eventId } });
  const ids = res.pdu_ids as string[];
  const rows = await server.hs.deps.db.query<{ event_id: string; type: string; state_key: string }>('select event_id, type, state_key from events where event_id in (?)', [ids]);
  assert.is(rows.length, ids.length, 'every id is a stored event');
  return new Map(rows.map((r) => [`${r.type}|${r.state_key}`, r.event_id]));
}

t.run();
