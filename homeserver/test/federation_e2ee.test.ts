// End-to-end encryption between users of two Hearth servers, with matrix-js-sdk 37's Rust crypto.
// Alice's client on A learns Bob's devices through A (`/keys/query` → federation
// `/user/keys/query` on B), claims a one-time key of his (`/keys/claim` → `/user/keys/claim`),
// sends the room key olm-encrypted to his device (`/sendToDevice` → an `m.direct_to_device` EDU
// to B), and the megolm-encrypted message reaches B as a PDU. Bob's client on B decrypts it; and
// the other way round. The room is joined over federation (invite v2, make_join/send_join).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { registerUser } from './support/harness.js';
import { startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import type { User } from './support/rooms.js';
import { cryptoClient, muteConsole, quietSdk, unrefLongTimers, waitUntil, decryptedBody } from './support/sdk.js';

quietSdk();

/** Crypto set-up, federation and decryption on a loaded machine: each wait may take this long. */
const WAIT_MS = 45_000;

type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; aliceLogin: User; bobLogin: User; clients: sdk.MatrixClient[]; restore: (() => void)[] };
const t = suite<Ctx>('federation: end-to-end encryption across servers (matrix-js-sdk Rust crypto)');


beforeAll(t, async (ctx) => {
  ctx.restore = [unrefLongTimers(), muteConsole()];
  ctx.clients = [];
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b']);
  ctx.a = ctx.cluster.get('hs-a');
  ctx.b = ctx.cluster.get('hs-b');
  ctx.aliceLogin = await registerUser(ts(ctx.a), 'alice');
  ctx.bobLogin = await registerUser(ts(ctx.b), 'bob');
});
t.after(async (ctx) => {
  for (const c of ctx.clients ?? []) c.stopClient();
  await ctx.cluster?.close();
  for (const r of (ctx.restore ?? []).splice(0).reverse()) r();
});


t('alice on A and bob on B read each other\'s encrypted messages; the servers only see ciphertext', async (ctx) => {
  const { a, b, aliceLogin, bobLogin } = ctx;
  const alice = await cryptoClient(await a.listen(), aliceLogin, { track: ctx.clients, timeoutMs: WAIT_MS });
  const bob = await cryptoClient(await b.listen(), bobLogin, { track: ctx.clients, timeoutMs: WAIT_MS });
  const bobId = bob.getUserId()!;

  b.federationRequests.length = 0;
  const { room_id: roomId } = await alice.createRoom({
    preset: sdk.Preset.PrivateChat,
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  await waitUntil(alice, [sdk.ClientEvent.Room, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.hasEncryptionStateEvent() === true, 'alice sees the encrypted room', WAIT_MS);
  // The invite goes to B (invite v2); bob's join goes through A (make_join/send_join).
  await alice.invite(roomId, bobId);
  await waitUntil(bob, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'invite', "bob's invite reaches B", WAIT_MS);
  await bob.joinRoom(roomId);
  await waitUntil(bob, [sdk.ClientEvent.Room, sdk.RoomEvent.Timeline], () => bob.getRoom(roomId)?.hasEncryptionStateEvent() === true, 'bob sees the room as encrypted', WAIT_MS);
  await waitUntil(alice, [sdk.RoomMemberEvent.Membership, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.getMember(bobId)?.membership === 'join', "alice sees bob's join", WAIT_MS);

  const first = await alice.sendTextMessage(roomId, 'hello bob on another server');
  assert.is(await decryptedBody(bob, roomId, first.event_id, 'bob decrypts alice\'s message', WAIT_MS), 'hello bob on another server');
  // Alice's server asked B for bob's keys and sent the room key as a to-device EDU.
  const toB = b.federationRequests.filter((r) => r.origin === a.serverName).map((r) => r.url.replace(/\?.*$/, ''));
  // Either answer carries bob's device keys: keys/query, or user/devices when A started tracking
  // bob's device list at the join (which of the two happens first depends on timing).
  assert.ok(
    toB.includes('/_matrix/federation/v1/user/keys/query') || toB.some((u) => u.startsWith('/_matrix/federation/v1/user/devices/')),
    `A fetched bob's device keys from B (${JSON.stringify(toB)})`,
  );
  assert.ok(toB.includes('/_matrix/federation/v1/user/keys/claim'), "A claimed one of bob's one-time keys on B");
  // B stores the message as ciphertext.
  const raw = (await b.request('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(first.event_id)}`, { token: bobLogin.access_token })).body;
  assert.is(raw.type, 'm.room.encrypted');
  assert.not.ok(JSON.stringify(raw).includes('hello bob'), 'B never sees the plaintext');

  const reply = await bob.sendTextMessage(roomId, 'hi alice, decrypted fine');
  assert.is(await decryptedBody(alice, roomId, reply.event_id, 'alice decrypts bob\'s reply', WAIT_MS), 'hi alice, decrypted fine');
  const onA = (await a.request('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(reply.event_id)}`, { token: aliceLogin.access_token })).body;
  assert.is(onA.type, 'm.room.encrypted');
  assert.not.ok(JSON.stringify(onA).includes('hi alice'), 'A never sees the plaintext');
});

t.run();
