// End-to-end encryption between real matrix-js-sdk 37 clients using its Rust crypto (the
// matrix-sdk-crypto-wasm build it ships), against a homeserver on a real port. The server only
// stores and relays: device and one-time keys (/keys/upload, /keys/query, /keys/claim), room keys in
// olm-encrypted to-device messages (/sendToDevice, /sync to_device), and device-list changes
// (/sync device_lists), which is how Alice's client learns of Bob's second device.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { CryptoEvent } from 'matrix-js-sdk/lib/crypto-api/index.js';
import { registerUser, login } from './support/harness.js';
import type { User } from './support/rooms.js';
import { cryptoClient, quietSdk, sdkSuite, waitUntil, decryptedBody } from './support/sdk.js';

quietSdk();

/** Crypto set-up and decryption are slow on a loaded machine: each wait here may take this long. */
const WAIT_MS = 30_000;
const PASSWORD = 'correct horse battery';

// The wasm crypto traces through console.debug, the SDK's per-room encryption loggers through console.log/info: muted during the suite.
const t = sdkSuite('matrix-js-sdk 37: end-to-end encryption with the Rust crypto', [], { muteConsole: true });


t('alice and bob talk in an encrypted room; bob\'s second device gets the room key and reads later messages', async (ctx) => {
  const aliceLogin = await registerUser(ctx.s, 'alice');
  const bobLogin = await registerUser(ctx.s, 'bob');
  const alice = await cryptoClient(ctx.baseUrl, aliceLogin, { track: ctx.clients, timeoutMs: WAIT_MS });
  const bob = await cryptoClient(ctx.baseUrl, bobLogin, { track: ctx.clients, timeoutMs: WAIT_MS });
  const [aliceId, bobId] = [alice.getUserId()!, bob.getUserId()!];

  const { room_id: roomId } = await alice.createRoom({
    preset: sdk.Preset.PrivateChat,
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  await waitUntil(alice, [sdk.ClientEvent.Room, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.hasEncryptionStateEvent() === true, 'alice sees the encrypted room', WAIT_MS);
  await alice.invite(roomId, bobId);
  await waitUntil(bob, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'invite', "bob's invite", WAIT_MS);
  await bob.joinRoom(roomId);
  await waitUntil(alice, [sdk.RoomMemberEvent.Membership, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.getMember(bobId)?.membership === 'join', "alice sees bob's join", WAIT_MS);

  const first = await alice.sendTextMessage(roomId, 'hello bob, this is encrypted');
  // What the server stores is ciphertext.
  const raw = (await ctx.s.request('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(first.event_id)}`, { token: bobLogin.access_token })).body;
  assert.is(raw.type, 'm.room.encrypted');
  assert.is(raw.content.algorithm, 'm.megolm.v1.aes-sha2');
  assert.not.ok(JSON.stringify(raw).includes('hello bob'), 'the server never sees the plaintext');
  assert.is(await decryptedBody(bob, roomId, first.event_id, 'bob decrypts the first message', WAIT_MS), 'hello bob, this is encrypted');
  // Bob's client had published its identity keys, and Alice's claimed one of its one-time keys.
  const keys = (await ctx.s.request('POST', '/_matrix/client/v3/keys/query', { token: aliceLogin.access_token, body: { device_keys: { [bobId]: [] } } })).body;
  assert.ok(keys.device_keys[bobId][bobLogin.device_id]?.keys[`curve25519:${bobLogin.device_id}`], "bob's device keys are on the server");

  // Bob logs in on a second device; its keys reach Alice's client through device_lists.changed.
  const phoneLogin = (await login(ctx.s, bobId, PASSWORD)).body as User;
  const phone = await cryptoClient(ctx.baseUrl, phoneLogin, { track: ctx.clients, timeoutMs: WAIT_MS });
  const aliceCrypto = alice.getCrypto()!;
  await waitUntil(
    alice,
    [CryptoEvent.DevicesUpdated, sdk.ClientEvent.Sync],
    async () => (await aliceCrypto.getUserDeviceInfo([bobId])).get(bobId)?.has(phoneLogin.device_id) === true,
    "alice's client learns of bob's second device",
    WAIT_MS,
  );

  const second = await alice.sendTextMessage(roomId, 'hello to both of your devices');
  assert.is(await decryptedBody(phone, roomId, second.event_id, "bob's phone decrypts a later message", WAIT_MS), 'hello to both of your devices');
  assert.is(await decryptedBody(bob, roomId, second.event_id, 'bob decrypts it too', WAIT_MS), 'hello to both of your devices');
  assert.ok(aliceId);
});

t.run();
