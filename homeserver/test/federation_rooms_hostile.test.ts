import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { craft, currentStateMap, eventRow, eventually, postTxn, startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts, inviteAndJoin } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, bodies, enc, ok, putState, type User } from './support/rooms.js';

/**
 * Crafted transactions against a real server (B) in a room shared with A: each hostile PDU is
 * refused, rejected, redacted or soft-failed as the spec says while the rest of the transaction is
 * applied; a retried transaction gets its first answer; forks converge to the same state.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; c: FederationTestServer; alice: User; bob: User; roomId: string };
const t = suite<Ctx>('federation: hostile PDUs, soft failure, forks');

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b', 'hs-c']);
  [ctx.a, ctx.b, ctx.c] = ['hs-a', 'hs-b', 'hs-c'].map((l) => ctx.cluster.get(l)) as [FederationTestServer, FederationTestServer, FederationTestServer];
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
  ctx.roomId = ok(await api(ts(ctx.a), ctx.alice, 'POST', '/createRoom', { preset: 'public_chat', room_version: '10' })).room_id;
  await inviteAndJoin(ctx.a, ctx.alice, ctx.b, ctx.bob, ctx.roomId, { invite: false });
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

t('one transaction: bad signature, bad hash, forged sender, auth violation, oversized — the good PDU still lands', async ({ a, b, bob, alice, roomId }) => {
  const good = await craft(b, a, roomId, { type: 'm.room.message', sender: alice.user_id, content: { msgtype: 'm.text', body: 'good one' } });
  const badSig = await craft(b, a, roomId, { type: 'm.room.message', sender: alice.user_id, content: { msgtype: 'm.text', body: 'bad sig' } });
  const sigs = badSig.pdu.signatures[a.serverName];
  const keyId = Object.keys(sigs)[0]!;
  sigs[keyId] = `${sigs[keyId].slice(0, -4)}AAAA`;
  const badHash = await craft(b, a, roomId, { type: 'm.room.message', sender: alice.user_id, content: { msgtype: 'm.text', body: 'original' } });
  badHash.pdu.content.body = 'tampered'; // the signature covers the redacted form only: still valid
  const forged = await craft(b, a, roomId, { type: 'm.room.message', sender: `@mallory:${b.serverName}`, content: { msgtype: 'm.text', body: 'forged' } });
  const violation = await craft(b, b, roomId, { type: 'm.room.power_levels', state_key: '', sender: bob.user_id, content: { users: { [bob.user_id]: 100 } } });
  const huge = await craft(b, a, roomId, { type: 'm.room.message', sender: alice.user_id, content: { msgtype: 'm.text', body: 'small' } });
  huge.pdu.content.body = 'x'.repeat(70_000); // over 65,536 bytes: refused before anything else
  const res = await postTxn(a, b, [good.pdu, badSig.pdu, badHash.pdu, forged.pdu, violation.pdu, huge.pdu]);
  assert.equal(res.pdus[good.id], {});
  assert.match(res.pdus[badSig.id].error, /signature/);
  assert.match(res.pdus[forged.id].error, /signature/);
  assert.match(res.pdus[violation.id].error, /rejected/);
  assert.match(res.pdus[huge.id].error, /format|bytes/);
  assert.equal(res.pdus[badHash.id], {});
  // Stored or not, as the spec says.
  assert.is((await eventRow(b, good.id)).streamOrdering !== null, true);
  assert.not.ok(await held(b, badSig.id));
  assert.not.ok(await held(b, forged.id));
  assert.not.ok(await held(b, huge.id));
  const rejected = await eventRow(b, violation.id);
  assert.ok(rejected.rejected, 'the auth-rule violation is stored as rejected');
  assert.is.not((await currentStateMap(b, roomId)).get('m.room.power_levels|'), violation.id, 'never part of state');
  const redacted = await eventRow(b, badHash.id);
  assert.equal(redacted.json.content, {}, 'bad content hash: stored redacted');
  const page = ok(await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=20`));
  const got = bodies(page.chunk);
  assert.ok(got.includes('good one'));
  for (const x of ['bad sig', 'tampered', 'original', 'forged']) assert.not.ok(got.includes(x), x);
});

t('a retried transaction id gets its earlier answer', async ({ a, b, alice, roomId }) => {
  const first = await craft(b, a, roomId, { type: 'm.room.message', sender: alice.user_id, content: { msgtype: 'm.text', body: 'once' } });
  const txnId = `retry${Date.now()}`;
  const r1 = await postTxn(a, b, [first.pdu], txnId);
  const other = await craft(b, a, roomId, { type: 'm.room.message', sender: alice.user_id, content: { msgtype: 'm.text', body: 'never' } });
  const r2 = await postTxn(a, b, [other.pdu], txnId);
  assert.equal(r2, r1);
  assert.not.ok(await held(b, other.id), 'the retry did not process new PDUs');
});

t('soft failure: valid against the state before it, not against current state', async ({ a, b, bob, alice, roomId }) => {
  const mallory = `@mallory:${a.serverName}`;
  const join = await craft(b, a, roomId, { type: 'm.room.member', state_key: mallory, sender: mallory, content: { membership: 'join' } });
  assert.equal((await postTxn(a, b, [join.pdu])).pdus[join.id], {});
  const ban = await craft(b, a, roomId, { type: 'm.room.member', state_key: mallory, sender: alice.user_id, content: { membership: 'ban' } }, [join.id]);
  assert.equal((await postTxn(a, b, [ban.pdu])).pdus[ban.id], {});
  // Mallory's message on the fork before the ban: her auth events still say "joined".
  const sneaky = await craft(b, a, roomId, { type: 'm.room.message', sender: mallory, content: { msgtype: 'm.text', body: 'sneaky' } }, [join.id]);
  const { hashes: _h, signatures: _s, ...unsignedPdu } = sneaky.pdu;
  const fixed = a.hs.deps.services.rooms.signingKey.build({ ...unsignedPdu, auth_events: await authFor(b, roomId, join.id) } as never, '10');
  const res = await postTxn(a, b, [JSON.parse(fixed.json)]);
  assert.equal(res.pdus[fixed.event.event_id], {}, 'accepted at the protocol level');
  const row = await eventRow(b, fixed.event.event_id);
  assert.ok(row.softFailed, 'soft-failed');
  assert.is(row.streamOrdering, null, 'not in the timeline');
  assert.not.ok(bodies(ok(await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=20`)).chunk).includes('sneaky'));
  assert.is((await currentStateMap(b, roomId)).get(`m.room.member|${mallory}`), ban.id);
});

/** Auth events of a message by `sender` at `memberId` (create, power levels, the member event). */
async function authFor(s: FederationTestServer, roomId: string, memberId: string): Promise<string[]> {
  const state = await currentStateMap(s, roomId);
  return [state.get('m.room.create|')!, state.get('m.room.power_levels|')!, memberId];
}

t('forks: concurrent state changes on both sides converge to the same resolved state', async ({ a, b, c, alice, bob }) => {
  // A room of its own: both servers start from the same graph.
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat' })).room_id;
  ok(await api(ts(b), bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {}));
  await putState(ts(a), alice, roomId, 'm.room.power_levels', '', { ...(await currentPl(a, alice, roomId)), users: { [alice.user_id]: 100, [bob.user_id]: 50 } });
  await eventually(async () => (await currentStateMap(b, roomId)).get('m.room.power_levels|') === (await currentStateMap(a, roomId)).get('m.room.power_levels|'), 'power levels reach B');
  await eventually(async () => JSON.stringify(await extremities(a, roomId)) === JSON.stringify(await extremities(b, roomId)), 'same extremities');
  // "Partitioned": each side's topic change is built on the same extremity, without the other's.
  const base = await extremities(a, roomId);
  const topicA = await craft(a, a, roomId, { type: 'm.room.topic', state_key: '', sender: alice.user_id, content: { topic: 'A side' } }, base);
  const topicB = await craft(b, b, roomId, { type: 'm.room.topic', state_key: '', sender: bob.user_id, content: { topic: 'B side' } }, base);
  const nameB = await craft(b, b, roomId, { type: 'm.room.name', state_key: '', sender: bob.user_id, content: { name: 'named on B' } }, base);
  // Reconnect: each server learns the other branch, in opposite orders.
  await postTxn(c, a, [topicA.pdu, topicB.pdu, nameB.pdu]);
  await postTxn(c, b, [nameB.pdu, topicB.pdu, topicA.pdu]);
  const sa = await currentStateMap(a, roomId);
  const sb = await currentStateMap(b, roomId);
  assert.equal([...sa].sort(), [...sb].sort(), 'same resolved state on both');
  assert.ok([topicA.id, topicB.id].includes(sa.get('m.room.topic|')!));
  assert.is(sa.get('m.room.name|'), nameB.id);
  // A new local event on A merges the forks (several prev_events), and B accepts it.
  await api(ts(a), alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/m${Date.now()}`, { msgtype: 'm.text', body: 'merged' });
  await eventually(async () => bodies(ok(await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=5`)).chunk).includes('merged'), 'merge event reaches B');
  assert.equal([...(await currentStateMap(a, roomId))].sort(), [...(await currentStateMap(b, roomId))].sort(), 'still the same after the merge');
});

async function held(s: FederationTestServer, eventId: string): Promise<boolean> {
  return (await s.hs.deps.db.query('select 1 from events where event_id = ?', [eventId])).length > 0;
}

async function extremities(s: FederationTestServer, roomId: string): Promise<string[]> {
  return (await s.hs.deps.db.query<{ event_id: string }>('select event_id from forward_extremities where room_id = ? order by event_id', [roomId])).map((r) => r.event_id);
}

async function currentPl(s: FederationTestServer, u: User, roomId: string): Promise<Record<string, unknown>> {
  return ok(await api(ts(s), u, 'GET', `/rooms/${enc(roomId)}/state/m.room.power_levels/`));
}

t.run();
