import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, type TestServer } from './support/harness.js';
import { eventually, startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, send, type User } from './support/rooms.js';
import { aliceJoinsPeerRoom, history, membershipOn, noneRejected, peerServer, reactionsAndRedactionsBothWays, remoteJoinsHearthRoom, sameState, seen, typingAndReceipts, type Interop } from './support/interop.js';
import { startSynapse, type SynapsePeer } from './support/synapse.js';
import * as sdk from 'matrix-js-sdk';
import { cryptoClient, muteConsole, quietSdk, unrefLongTimers, waitUntil, decryptedBody } from './support/sdk.js';

quietSdk();
/** Crypto set-up and decryption across two servers on a loaded machine: each wait may take this long. */
const WAIT_MS = 45_000;

/**
 * Interop with Synapse (the reference homeserver), run as a real child process: rooms created on
 * either side, joins both ways (Synapse's make_join/send_join against Hearth, and Hearth's against
 * Synapse), backfill, messages, reactions, redactions, EDUs, profile/alias queries, leaves and
 * end-to-end encryption between matrix-js-sdk clients, each checked through both servers' client
 * APIs. One Synapse for the whole file (a few seconds to start). Most Synapse rooms here are
 * created as version 11; one uses Synapse's default, room version 12.
 */
type Ctx = { cluster: FederationCluster; h: FederationTestServer; sy: SynapsePeer; alice: User; sam: User; roomA: string; roomB: string; clients: sdk.MatrixClient[]; restore: (() => void)[] };
const t = suite<Ctx>('federation: interop with Synapse');

beforeAll(t, async (ctx) => {
  ctx.restore = [unrefLongTimers(), muteConsole()];
  ctx.clients = [];
  // An IP-literal name for Hearth: Synapse resolves through getaddrinfo, which knows no *.localhost here.
  ctx.cluster = await startFederationCluster(['hs-h'], { hostname: () => '127.0.0.1' });
  ctx.h = ctx.cluster.get('hs-h');
  ctx.sy = await startSynapse(ctx.cluster);
  ctx.alice = await registerUser(ts(ctx.h), 'alice');
  ctx.sam = await registerUser(peerServer(ctx.sy), 'sam');
});
t.after(async (ctx) => {
  for (const c of ctx.clients ?? []) c.stopClient();
  for (const r of (ctx.restore ?? []).splice(0).reverse()) r();
  await ctx.sy?.stop();
  await ctx.cluster?.close();
});

/** The pairing the shared steps of support/interop.ts run on. */
const pair = (ctx: Ctx): Interop => ({ h: ctx.h, alice: ctx.alice, peer: ctx.sy, peerName: 'Synapse', remote: ctx.sam, remoteName: 'sam' });

t('alice on Hearth invites sam on Synapse; sam joins through Hearth (Synapse\'s make_join/send_join)', async (ctx) => {
  const { h, alice } = ctx;
  ctx.roomA = ok(await api(ts(h), alice, 'POST', '/createRoom', { name: 'Hearth room', preset: 'private_chat' })).room_id;
  await send(ts(h), alice, ctx.roomA, 'hello before sam');
  await remoteJoinsHearthRoom(pair(ctx), ctx.roomA);
  // Synapse asks for a partial-state join.
  const sendJoin = h.federationRequests.find((r) => r.url.startsWith('/_matrix/federation/v2/send_join/'))!;
  assert.ok(sendJoin.url.endsWith('?omit_members=true'), `Synapse asks for a partial-state join (${sendJoin.url})`);
  // Synapse holds the room's full state as Hearth has it.
  await sameState(pair(ctx), ctx.roomA);
});

t('messages both ways in the Hearth room, read through both client APIs', async (ctx) => {
  const { h, sy, alice, sam, roomA } = ctx;
  await send(peerServer(sy), sam, roomA, 'from sam on Synapse');
  await seen(ts(h), alice, roomA, 'from sam on Synapse', 'Hearth receives sam\'s message');
  await send(ts(h), alice, roomA, 'from alice on Hearth');
  await seen(peerServer(sy), sam, roomA, 'from alice on Hearth', 'Synapse receives alice\'s message');
  // Synapse saw the history before its join too (its /messages reaches back over the full state it got).
  const onSynapse = await history(peerServer(sy), sam, roomA);
  assert.equal(onSynapse.slice(0, 2), ['from alice on Hearth', 'from sam on Synapse'], 'same order on Synapse');
  assert.equal((await history(ts(h), alice, roomA)).slice(0, 3), ['from alice on Hearth', 'from sam on Synapse', 'hello before sam'], 'same order on Hearth');
  // Synapse's /sync shows the room as joined with the message, sent by alice of Hearth.
  const sync = ok(await api(peerServer(sy), sam, 'GET', '/sync?timeout=0'));
  const timeline = sync.rooms.join[roomA].timeline.events as any[];
  const msg = timeline.find((e) => e.content?.body === 'from alice on Hearth');
  assert.is(msg?.sender, alice.user_id);
});

t('a room of Synapse\'s default version (12): alice on Hearth is invited, joins through Synapse, messages flow both ways', async (ctx) => {
  const { h, sy, alice, sam } = ctx;
  const v12 = ok(await api(peerServer(sy), sam, 'POST', '/createRoom', { name: 'Synapse v12', preset: 'private_chat' })).room_id as string;
  const version = ok(await api(peerServer(sy), sam, 'GET', `/rooms/${enc(v12)}/state/m.room.create/`)).room_version;
  assert.is(version, '12', "Synapse's default room version");
  await send(peerServer(sy), sam, v12, 'v12 before alice');
  ok(await api(peerServer(sy), sam, 'POST', `/rooms/${enc(v12)}/invite`, { user_id: alice.user_id }), 'invite alice');
  await eventually(async () => ok(await api(ts(h), alice, 'GET', '/sync?timeout=0')).rooms?.invite?.[v12] !== undefined, 'the v12 invite reaches Hearth', 300, 100);
  const joined = await api(ts(h), alice, 'POST', `/join/${enc(v12)}?server_name=${enc(sy.serverName)}`, {});
  assert.is(joined.status, 200, `alice joins the v12 room through Synapse: ${JSON.stringify(joined.body)}\n${sy.logTail()}`);
  await membershipOn(peerServer(sy), sam, v12, alice.user_id, 'Synapse sees alice\'s join');
  await send(peerServer(sy), sam, v12, 'v12 from sam');
  await seen(ts(h), alice, v12, 'v12 from sam', 'Hearth receives sam\'s v12 message');
  await send(ts(h), alice, v12, 'v12 from alice');
  await seen(peerServer(sy), sam, v12, 'v12 from alice', 'Synapse receives alice\'s v12 message');
  await noneRejected(h, v12);
  // alice leaves again: later cases expect Synapse to share no room with her (device list tracking).
  ok(await api(ts(h), alice, 'POST', `/rooms/${enc(v12)}/leave`, {}), 'alice leaves the v12 room');
  await membershipOn(peerServer(sy), sam, v12, alice.user_id, 'Synapse sees alice leave the v12 room', 'leave');
});

t('sam creates a room on Synapse, invites alice; alice joins through Synapse and backfills its history', async (ctx) => {
  ctx.roomB = await aliceJoinsPeerRoom(pair(ctx), { room_version: '11' });
});

t('messages, reactions and redactions both ways in the Synapse room', async (ctx) => {
  await reactionsAndRedactionsBothWays(pair(ctx), ctx.roomB);
});

t('EDUs: sam\'s typing reaches Hearth, alice\'s read receipt reaches Synapse', async (ctx) => {
  await typingAndReceipts(pair(ctx), ctx.roomB);
});

t('queries both ways: profiles and room aliases', async (ctx) => {
  const { h, sy, alice, sam, roomA } = ctx;
  ok(await api(ts(h), alice, 'PUT', `/profile/${enc(alice.user_id)}/displayname`, { displayname: 'Alice of Hearth' }));
  ok(await api(peerServer(sy), sam, 'PUT', `/profile/${enc(sam.user_id)}/displayname`, { displayname: 'Sam of Synapse' }));
  // Each server asks the other (federation query/profile); Synapse may cache an older answer, so poll.
  await eventually(async () => (await api(peerServer(sy), sam, 'GET', `/profile/${enc(alice.user_id)}/displayname`)).body?.displayname === 'Alice of Hearth', 'Synapse reads alice\'s profile from Hearth');
  await eventually(async () => (await api(ts(h), alice, 'GET', `/profile/${enc(sam.user_id)}/displayname`)).body?.displayname === 'Sam of Synapse', 'Hearth reads sam\'s profile from Synapse');
  // Aliases: resolved through the other server's query/directory.
  ok(await api(ts(h), alice, 'PUT', `/directory/room/${enc(`#hearth-room:${h.serverName}`)}`, { room_id: roomA }), 'alias on Hearth');
  const onSynapse = ok(await api(peerServer(sy), sam, 'GET', `/directory/room/${enc(`#hearth-room:${h.serverName}`)}`), 'Synapse resolves the Hearth alias');
  assert.is(onSynapse.room_id, roomA);
  assert.ok(onSynapse.servers.includes(h.serverName));
  ok(await api(peerServer(sy), sam, 'PUT', `/directory/room/${enc(`#synapse-room:${sy.serverName}`)}`, { room_id: ctx.roomB }), 'alias on Synapse');
  const onHearth = ok(await api(ts(h), alice, 'GET', `/directory/room/${enc(`#synapse-room:${sy.serverName}`)}`), 'Hearth resolves the Synapse alias');
  assert.is(onHearth.room_id, ctx.roomB);
});

t('leaves both ways: sam leaves the Hearth room, alice leaves the Synapse room', async (ctx) => {
  const { h, sy, alice, sam, roomA, roomB } = ctx;
  const membership = async (s: TestServer, u: User, roomId: string, userId: string) =>
    (await api(s, u, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`)).body?.membership;
  ok(await api(peerServer(sy), sam, 'POST', `/rooms/${enc(roomA)}/leave`, {}), 'sam leaves');
  await eventually(async () => (await membership(ts(h), alice, roomA, sam.user_id)) === 'leave', 'Hearth sees sam leave');
  ok(await api(ts(h), alice, 'POST', `/rooms/${enc(roomB)}/leave`, {}), 'alice leaves');
  await eventually(async () => (await membership(peerServer(sy), sam, roomB, alice.user_id)) === 'leave', 'Synapse sees alice leave');
  await noneRejected(h, roomA);
});


t('end-to-end encryption: alice (Hearth) and sam (Synapse) read each other\'s encrypted messages', async (ctx) => {
  const { h, sy, sam } = ctx;
  // Fresh logins: new devices whose keys the SDK uploads.
  const aliceLogin = ok(await ts(h).request('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'correct horse battery' } }), 'alice logs in');
  const samLogin = ok(await peerServer(sy).request('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'sam' }, password: 'correct horse battery' } }), 'sam logs in');
  const alice = await cryptoClient(await h.listen(), aliceLogin, { track: ctx.clients, timeoutMs: WAIT_MS });
  const samClient = await cryptoClient(sy.clientUrl, samLogin, { track: ctx.clients, timeoutMs: WAIT_MS });

  h.federationRequests.length = 0;
  const { room_id: roomId } = await alice.createRoom({
    preset: sdk.Preset.PrivateChat,
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  await alice.invite(roomId, sam.user_id);
  await waitUntil(samClient, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => samClient.getRoom(roomId)?.getMyMembership() === 'invite', 'sam\'s invite reaches Synapse', WAIT_MS);
  await samClient.joinRoom(roomId);
  await waitUntil(samClient, [sdk.ClientEvent.Room, sdk.RoomEvent.Timeline], () => samClient.getRoom(roomId)?.hasEncryptionStateEvent() === true, 'sam sees the room as encrypted', WAIT_MS);
  await waitUntil(alice, [sdk.RoomMemberEvent.Membership, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.getMember(sam.user_id)?.membership === 'join', 'alice sees sam\'s join', WAIT_MS);

  const first = await alice.sendTextMessage(roomId, 'secret from Hearth');
  assert.is(await decryptedBody(samClient, roomId, first.event_id, 'sam decrypts alice\'s message', WAIT_MS), 'secret from Hearth');
  const reply = await samClient.sendTextMessage(roomId, 'secret from Synapse');
  assert.is(await decryptedBody(alice, roomId, reply.event_id, 'alice decrypts sam\'s reply', WAIT_MS), 'secret from Synapse');
  // Each server fetched the other's user's device keys; Hearth claimed one of sam's one-time keys on Synapse
  // (alice's client opened the olm session; sam's answers over it, so Synapse need not claim).
  const fromSynapse = h.federationRequests.filter((r) => r.origin === sy.serverName).map((r) => r.url.replace(/\?.*$/, ''));
  // keys/query, or user/devices if Synapse began tracking alice's device list first: both carry her keys.
  assert.ok(
    fromSynapse.includes('/_matrix/federation/v1/user/keys/query') || fromSynapse.some((u) => u.startsWith('/_matrix/federation/v1/user/devices/')),
    `Synapse fetched alice's device keys from Hearth (${JSON.stringify(fromSynapse)})`,
  );
  const fromHearth = sy.federationRequests().filter((r) => r.origin === h.serverName && r.status === 200).map((r) => `${r.method} ${r.path}`);
  assert.ok(fromHearth.includes('POST /_matrix/federation/v1/user/keys/query') || fromHearth.includes(`GET /_matrix/federation/v1/user/devices/${enc(sam.user_id)}`),
    `Hearth fetched sam's device keys from Synapse (keys/query or user/devices: ${JSON.stringify(fromHearth)})`);
  assert.ok(fromHearth.includes('POST /_matrix/federation/v1/user/keys/claim'), 'Hearth claimed a one-time key of sam\'s on Synapse');
  // Neither server holds the plaintext.
  const onHearth = ok(await api(ts(h), aliceLogin, 'GET', `/rooms/${enc(roomId)}/event/${enc(reply.event_id)}`));
  assert.is(onHearth.type, 'm.room.encrypted');
  assert.not.ok(JSON.stringify(onHearth).includes('secret'), 'Hearth never sees the plaintext');
  const onSynapse = ok(await api(peerServer(sy), samLogin, 'GET', `/rooms/${enc(roomId)}/event/${enc(first.event_id)}`));
  assert.is(onSynapse.type, 'm.room.encrypted');
});

t.run();
