import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import {
  asTestServer as ts,
  craft,
  createTestCa,
  currentStateMap,
  eventRow,
  eventually,
  postTxn,
  startClusterWithUsers, type FederationCluster,
  type FederationTestServer,
  type TestCa,
} from './support/federation.js';
import { startIdentityServer, strayKey, type TestIdentityServer } from './support/identity_server.js';
import { api, enc, ok, type User } from './support/rooms.js';
import { FederationError } from '../src/services/federation/client.js';

/**
 * Third-party invites across servers (server-server API "Third-party invites"): the room lives on A,
 * the address gets bound to a user of B; the identity server calls B's /3pid/onbind, B asks A
 * (/exchange_third_party_invite), A checks the proof and invites over federation. Also the other
 * direction (inviter on B, invitee on A, both in the room) and the receipt check of rule 4.4.1 on
 * events that arrive through /send.
 */
type Ctx = { ca: TestCa; is: TestIdentityServer; cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; roomId: string };
const t = suite<Ctx>('federation: third-party invites');

beforeAll(t, async (ctx) => {
  ctx.ca = await createTestCa('identity test CA');
  ctx.is = await startIdentityServer(ctx.ca);
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b'], { alice: 'hs-a', bob: 'hs-b' }, { env: () => ({ HEARTH_IDENTITY_CA_FILE: ctx.ca.caFile, HEARTH_IDENTITY_ALLOW_PRIVATE_ADDRESSES: 'true' }) });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'] }, users);
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
  await ctx.is?.close();
  ctx.ca?.remove();
});

const byEmail = (is: TestIdentityServer, address: string) => ({ id_server: is.serverName, id_access_token: is.accessToken, medium: 'email', address });
const onbind = (s: FederationTestServer) => (body: Record<string, unknown>) => ts(s).request('PUT', '/_matrix/federation/v1/3pid/onbind', { body });
const tokenOf = async (s: FederationTestServer, roomId: string): Promise<string[]> =>
  [...(await currentStateMap(s, roomId)).keys()].filter((k) => k.startsWith('m.room.third_party_invite|')).map((k) => k.slice('m.room.third_party_invite|'.length));

t('room on A, address bound to a user of B: onbind on B, exchange with A, the invite in both states, and the join', async (ctx) => {
  const { a, b, is, alice, bob } = ctx;
  ctx.roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { name: 'Cross-server' })).room_id;
  const roomId = ctx.roomId;
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'bob@example.org')));
  const [token] = await tokenOf(a, roomId);
  assert.ok(token, 'm.room.third_party_invite on A');
  a.federationRequests.length = 0;
  ok(await is.bind('email', 'bob@example.org', bob.user_id, onbind(b)), 'onbind on B');
  const exchange = a.federationRequests.find((r) => r.url === `/_matrix/federation/v1/exchange_third_party_invite/${enc(roomId)}`);
  assert.ok(exchange, 'B asked A to exchange the invite');
  assert.is(exchange!.method, 'PUT');
  assert.is(exchange!.origin, b.serverName);
  // A issued it (as alice, with the proof) and sent it to B over invite v2.
  const onA = (await currentStateMap(a, roomId)).get(`m.room.member|${bob.user_id}`);
  assert.ok(onA, 'the invite is in A\'s state');
  const ev = (await eventRow(a, onA!)).json;
  assert.is(ev.sender, alice.user_id);
  assert.is(ev.content.membership, 'invite');
  assert.equal(ev.content.third_party_invite, { display_name: 'b...@e...', signed: is.sign(bob.user_id, token!) });
  assert.is((await currentStateMap(b, roomId)).get(`m.room.member|${bob.user_id}`), onA, 'and in B\'s (the same event)');
  await eventually(async () => ok(await api(ts(b), bob, 'GET', '/sync?timeout=0')).rooms?.invite?.[roomId] !== undefined, 'the invite shows in bob\'s sync');
  ok(await api(ts(b), bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {}), 'bob joins through A');
  assert.is((await currentStateMap(a, roomId)).has(`m.room.member|${bob.user_id}`), true);
  const member = (await eventRow(a, (await currentStateMap(a, roomId)).get(`m.room.member|${bob.user_id}`)!)).json;
  assert.is(member.content.membership, 'join');
});

t('A refuses an exchange whose proof is forged, or that comes from a server other than the invitee\'s', async ({ a, b, is, alice }) => {
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', {})).room_id;
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'mallory@example.org')));
  const [token] = await tokenOf(a, roomId);
  const mallory = await registerUser(ts(b), 'mallory');
  // Through the real path: onbind with a signature by another key; B's exchange is refused by A.
  ok(await is.bind('email', 'mallory@example.org', mallory.user_id, onbind(b), { signWith: strayKey() }));
  assert.not.ok((await currentStateMap(a, roomId)).has(`m.room.member|${mallory.user_id}`), 'no invite on A');
  const exchange = (signed: Record<string, unknown>, target = mallory.user_id) =>
    b.hs.deps.services.federation.client.request({
      destination: a.serverName,
      method: 'PUT',
      path: `/_matrix/federation/v1/exchange_third_party_invite/${enc(roomId)}`,
      body: { type: 'm.room.member', room_id: roomId, sender: alice.user_id, state_key: target, content: { membership: 'invite', third_party_invite: { display_name: 'm', signed: signed as never } } },
    });
  const refused = async (p: Promise<unknown>, what: string) => {
    try {
      await p;
      assert.unreachable(what);
    } catch (err) {
      assert.instance(err, FederationError, what);
      assert.is((err as FederationError).status, 403, what);
    }
  };
  await refused(exchange(is.sign(mallory.user_id, token!, strayKey())), 'forged signature');
  await refused(exchange(is.sign(`@mallory:${a.serverName}`, token!), `@mallory:${a.serverName}`), 'invitee on another server than the caller');
  assert.not.ok((await currentStateMap(a, roomId)).has(`m.room.member|${mallory.user_id}`));
  // The genuine proof goes through.
  assert.equal(await exchange(is.sign(mallory.user_id, token!)), {});
  assert.ok((await currentStateMap(a, roomId)).has(`m.room.member|${mallory.user_id}`), 'the genuine proof is accepted');
});

t('inviter on B, invitee on A, both servers in the room: A exchanges with B, and accepts the invite B sends', async ({ a, b, is, alice, bob, roomId }) => {
  // B's user invites by email from B (B is in the room after the first test).
  ok(await api(ts(b), bob, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'dora@example.org')));
  const tokensOnB = await tokenOf(b, roomId);
  await eventually(async () => (await tokenOf(a, roomId)).length === tokensOnB.length, 'the m.room.third_party_invite reaches A');
  const dora = await registerUser(ts(a), 'dora');
  ok(await is.bind('email', 'dora@example.org', dora.user_id, onbind(a)), 'onbind on A');
  // B issued it (bob is B's), as an invite of A's user; A checked it on receipt (rule 4.4.1).
  await eventually(async () => (await currentStateMap(a, roomId)).has(`m.room.member|${dora.user_id}`), 'the invite reaches A');
  const ev = (await eventRow(a, (await currentStateMap(a, roomId)).get(`m.room.member|${dora.user_id}`)!)).json;
  assert.is(ev.sender, bob.user_id);
  assert.is(ev.content.third_party_invite.signed.mxid, dora.user_id);
  ok(await api(ts(a), dora, 'POST', `/join/${enc(roomId)}`, {}), 'dora joins');
  void alice;
});

t('a user of B joins A\'s room with third_party_signed: B exchanges the proof with A, then joins through A', async ({ a, b, is, alice }) => {
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', {})).room_id;
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'kim@example.org')));
  const [token] = await tokenOf(a, roomId);
  const kim = await registerUser(ts(b), 'kim');
  const proof = is.sign(kim.user_id, token!, undefined, { sender: alice.user_id });
  ok(await api(ts(b), kim, 'POST', `/join/${enc(roomId)}`, { third_party_signed: proof }), 'join with the proof');
  const member = (await eventRow(a, (await currentStateMap(a, roomId)).get(`m.room.member|${kim.user_id}`)!)).json;
  assert.is(member.content.membership, 'join');
  assert.is(member.sender, kim.user_id);
});

t('on receipt (/send), a third-party invite is accepted only with the identity server\'s signature', async ({ a, b, is, alice, roomId }) => {
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'zed@example.org')));
  const all = await tokenOf(a, roomId);
  await eventually(async () => (await tokenOf(b, roomId)).length === all.length, 'the m.room.third_party_invite reaches B');
  // The newest one is zed's.
  const zedToken = (await a.hs.deps.db.query<{ state_key: string }>(
    `select cs.state_key from current_state cs join events e on e.event_id = cs.event_id where cs.room_id = ? and cs.type = 'm.room.third_party_invite' order by e.stream_ordering desc limit 1`,
    [roomId],
  ))[0]!.state_key;
  const zed = `@zed:${b.serverName}`;
  const invite = (signed: Record<string, unknown>) =>
    craft(a, a, roomId, { type: 'm.room.member', state_key: zed, sender: alice.user_id, content: { membership: 'invite', third_party_invite: { display_name: 'z', signed } } });
  const forged = await invite(is.sign(zed, zedToken, strayKey()));
  const res = await postTxn(a, b, [forged.pdu]);
  assert.match(res.pdus[forged.id].error, /rejected/, 'a forged proof is rejected by the receiving server');
  assert.ok((await eventRow(b, forged.id)).rejected);
  assert.not.ok((await currentStateMap(b, roomId)).has(`m.room.member|${zed}`));
  const genuine = await invite(is.sign(zed, zedToken));
  assert.equal((await postTxn(a, b, [genuine.pdu])).pdus[genuine.id], {});
  assert.is((await currentStateMap(b, roomId)).get(`m.room.member|${zed}`), genuine.id, 'the genuine one is in B\'s state');
});

t.run();
