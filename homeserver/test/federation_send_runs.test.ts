import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { asTestServer as ts, craft, currentStateMap, eventRow, eventually, inviteAndJoin, postTxn, startFederationCluster, type FederationCluster, type FederationTestServer } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, ok, type User } from './support/rooms.js';
import { loadSnapshot } from '../src/storage/state.js';

/**
 * A `/send` transaction's linear run of PDUs is persisted in one locked transaction
 * (services/federation/pdu_runs.ts). The same 30 PDUs (crafted by C's users, signed by C, never
 * stored on C so nobody relays them) go to A in ONE transaction and to B one PDU per transaction
 * (the sequential path): every answer and every stored outcome must be the same on both.
 * PDU 5 is dave's leave, PDU 10 dave's message built on it (passes against its auth events,
 * which still name dave's join; rejected against the state before it), PDU 19 erin's leave and
 * PDU 20 erin's message whose prev event is PDU 18 (allowed by the state there, soft-failed
 * against the current state); every 7th is a state event (carol's displayname); every other PDU's
 * only prev event is the PDU before it.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; c: FederationTestServer; alice: User; bob: User; carol: User; dave: User; erin: User };
const t = suite<Ctx>('federation: /send persists linear runs of PDUs in one transaction');

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b', 'hs-c']);
  [ctx.a, ctx.b, ctx.c] = ['hs-a', 'hs-b', 'hs-c'].map((l) => ctx.cluster.get(l)) as [FederationTestServer, FederationTestServer, FederationTestServer];
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
  ctx.carol = await registerUser(ts(ctx.c), 'carol');
  ctx.dave = await registerUser(ts(ctx.c), 'dave');
  ctx.erin = await registerUser(ts(ctx.c), 'erin');
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

const extremities = async (s: FederationTestServer, roomId: string) =>
  (await s.hs.deps.db.query<{ event_id: string }>('select event_id from forward_extremities where room_id = ? order by event_id', [roomId])).map((r) => r.event_id);
const sorted = (m: Map<string, string>) => [...m].sort(([x], [y]) => (x < y ? -1 : 1));

/** How many locked transactions A's FederatedEventStore opens (one per PDU on the sequential path). */
function countLocked(s: FederationTestServer): { n: number } {
  const store = s.hs.deps.services.federationRooms.store as unknown as Record<string, unknown>;
  const original = store.locked;
  if (typeof original !== 'function') throw new Error('FederatedEventStore.locked is gone: update this test');
  const counter = { n: 0 };
  store.locked = function (this: unknown, ...args: unknown[]) {
    counter.n++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
  return counter;
}

/** What a server stored for an event, comparable across servers (snapshot ids differ, their contents not). */
async function outcome(s: FederationTestServer, eventId: string): Promise<unknown> {
  const row = await eventRow(s, eventId);
  const [dag] = await s.hs.deps.db.query<{ state_before: string; state_after: string }>('select state_before, state_after from event_dag_state where event_id = ?', [eventId]);
  const snap = async (id: string | undefined) => (id === undefined ? null : sorted(await loadSnapshot(s.hs.deps.db, Number(id))));
  return { inTimeline: row.streamOrdering !== null, outlier: row.outlier, rejected: row.rejected !== null, softFailed: row.softFailed, dagBefore: await snap(dag?.state_before), dagAfter: await snap(dag?.state_after) };
}

t('a run of 30 PDUs with a rejected and a soft-failed one: same answers and outcomes as one by one; a retry answers the same, stores nothing twice', async (ctx) => {
  const { a, b, c, alice, bob, carol, dave, erin } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat' })).room_id as string;
  await inviteAndJoin(a, alice, b, bob, roomId, { invite: false });
  for (const u of [carol, dave, erin]) await inviteAndJoin(a, alice, c, u, roomId, { invite: false });
  // A and B hold the same single extremity and state before the run.
  const view = async (s: FederationTestServer) => JSON.stringify([await extremities(s, roomId), sorted(await currentStateMap(s, roomId))]);
  await eventually(async () => (await view(a)) === (await view(b)) && (await extremities(a, roomId)).length === 1 && (await currentStateMap(a, roomId)).has(`m.room.member|${erin.user_id}`), 'A and B agree on the room');
  const [base] = await extremities(a, roomId);
  const baseDepth = (await eventRow(a, base!)).json.depth as number;

  const pdus: { id: string; pdu: Record<string, any> }[] = [];
  for (let i = 1; i <= 30; i++) {
    const prev = i === 1 ? base! : i === 20 ? pdus[17]!.id : pdus[i - 2]!.id;
    const depth = baseDepth + (i === 20 ? 19 : i);
    const msg = (sender: User) => ({ type: 'm.room.message', sender: sender.user_id, content: { msgtype: 'm.text', body: `pdu ${i}` } });
    const ev =
      i === 5 ? { type: 'm.room.member', sender: dave.user_id, state_key: dave.user_id, content: { membership: 'leave' } }
      : i === 10 ? msg(dave)
      : i === 19 ? { type: 'm.room.member', sender: erin.user_id, state_key: erin.user_id, content: { membership: 'leave' } }
      : i === 20 ? msg(erin)
      : i % 7 === 0 ? { type: 'm.room.member', sender: carol.user_id, state_key: carol.user_id, content: { membership: 'join', displayname: `carol ${i}` } }
      : msg(carol);
    pdus.push(await craft(a, c, roomId, ev, [prev], { depth }));
  }

  const locked = countLocked(a);
  const wakes: { roomIds: string[]; userIds: string[]; remoteOnly?: boolean }[] = [];
  const unlisten = a.hs.deps.bus.notifier.listen('all', (change) => {
    if (change.position > 0 && change.roomIds.includes(roomId)) wakes.push(change);
  });
  const txnId = `run${Date.now()}`;
  const batched = await postTxn(c, a, pdus.map((p) => p.pdu), txnId);
  unlisten();
  assert.is(locked.n, 2, 'A: two locked transactions (PDUs 1-19, then 20-30 whose first is built on PDU 18)');
  assert.is(wakes.length, 2, 'one wake per commit');
  assert.ok(wakes[0]!.userIds.includes(dave.user_id) && wakes[0]!.userIds.includes(erin.user_id), "the first wake names every user whose membership changed (dave's and erin's leaves)");
  assert.ok(wakes.every((w) => w.remoteOnly === true), "only C's events: nothing for A's federation sender");
  const sequential: Record<string, unknown> = {};
  for (const p of pdus) Object.assign(sequential, (await postTxn(c, b, [p.pdu])).pdus);
  assert.equal(batched.pdus, sequential, 'the same answer per PDU');
  assert.ok(batched.pdus[pdus[9]!.id]?.error, 'PDU 10 is answered as rejected');
  assert.equal(Object.keys(batched.pdus).length, 30);

  for (const [i, p] of pdus.entries()) assert.equal(await outcome(a, p.id), await outcome(b, p.id), `PDU ${i + 1}: the same stored outcome`);
  const o10 = (await eventRow(a, pdus[9]!.id));
  const o20 = (await eventRow(a, pdus[19]!.id));
  assert.ok(o10.rejected !== null && o10.streamOrdering === null, 'PDU 10 rejected');
  assert.ok(o20.softFailed && o20.streamOrdering === null, 'PDU 20 soft-failed');
  assert.equal(sorted(await currentStateMap(a, roomId)), sorted(await currentStateMap(b, roomId)), 'the same current state');
  assert.equal(await extremities(a, roomId), await extremities(b, roomId), 'the same forward extremities');
  assert.is((await currentStateMap(a, roomId)).get(`m.room.member|${dave.user_id}`), pdus[4]!.id, "dave's leave is current");
  // Stream positions in PDU order, as one by one.
  const positions = [];
  for (const p of pdus) {
    const pos = (await eventRow(a, p.id)).streamOrdering;
    if (pos !== null) positions.push(pos);
  }
  assert.is(positions.length, 28);
  assert.equal(positions, [...positions].sort((x, y) => x - y), 'positions follow the PDU order');

  // A retried transaction id gets the stored answer; one whose answer was lost (a crash after
  // the commit) finds every PDU stored: the same answer, no row twice, no new position.
  const count = async () => (await a.hs.deps.db.query<{ n: string; max: string }>('select count(*) as n, max(stream_ordering) as max from events where room_id = ?', [roomId]))[0]!;
  const before = await count();
  assert.equal((await postTxn(c, a, pdus.map((p) => p.pdu), txnId)).pdus, batched.pdus, 'a retry gets the same answer');
  await a.hs.deps.db.query('delete from federation_txns where txn_id = ?', [txnId]);
  assert.equal((await postTxn(c, a, pdus.map((p) => p.pdu), txnId)).pdus, batched.pdus, 'the same answer when it was lost');
  assert.equal(await count(), before, 'nothing stored twice');
});

t.run();
