// End-to-end encryption between real matrix-js-sdk 37 clients using its Rust crypto (the
// matrix-sdk-crypto-wasm build it ships), against a homeserver on a real port. The server only
// stores and relays: device and one-time keys (/keys/upload, /keys/query, /keys/claim), room keys in
// olm-encrypted to-device messages (/sendToDevice, /sync to_device), and device-list changes
// (/sync device_lists), which is how Alice's client learns of Bob's second device.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import { CryptoEvent } from 'matrix-js-sdk/lib/crypto-api/index.js';
import { LoggerLevel, Tracing } from '@matrix-org/matrix-sdk-crypto-wasm';
import { startTestServer, registerUser, login, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';

for (const l of [sdkLogger, sdkLogger.getChild('[MatrixRTCSessionManager]')]) (l as unknown as { setLevel(level: 'silent'): void }).setLevel('silent');

const WAIT_MS = 30_000;
const PASSWORD = 'correct horse battery';

interface Ctx {
  s: TestServer;
  baseUrl: string;
  clients: sdk.MatrixClient[];
}
const t = suite<Ctx>('matrix-js-sdk 37: end-to-end encryption with the Rust crypto');

/** The SDK arms a long timer per request and never clears it: such timers must not keep the process alive. */
const realSetTimeout = globalThis.setTimeout;
/** The wasm crypto traces at debug level through console.debug from every initRustCrypto, and the SDK's per-room encryption loggers through console.log/info: muted during the suite. */
const realConsole = { debug: console.debug, log: console.log, info: console.info };
function unrefLongTimers(): void {
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = realSetTimeout(fn, ms, ...args);
    if ((ms ?? 0) >= 60_000) timer.unref();
    return timer;
  }) as typeof setTimeout;
}

beforeAll(t, async (ctx) => {
  unrefLongTimers();
  console.debug = console.log = console.info = () => {};
  ctx.clients = [];
  ctx.s = await startTestServer();
  ctx.baseUrl = await ctx.s.listen();
});
t.after(async (ctx) => {
  for (const c of ctx.clients ?? []) c.stopClient();
  await ctx.s?.close();
  globalThis.setTimeout = realSetTimeout;
  Object.assign(console, realConsole);
});

/** A started client with Rust crypto (in memory) for this login, after its first sync. */
async function cryptoClient(ctx: Ctx, u: { user_id: string; access_token: string; device_id: string }): Promise<sdk.MatrixClient> {
  const client = sdk.createClient({ baseUrl: ctx.baseUrl, accessToken: u.access_token, userId: u.user_id, deviceId: u.device_id });
  ctx.clients.push(client);
  await client.initRustCrypto({ useIndexedDB: false });
  // initRustCrypto turns the wasm module's tracing on at debug level: keep only errors (the expected "no key for an older message" warnings would read like failures).
  new Tracing(LoggerLevel.Error).turnOn();
  const errors: unknown[] = [];
  client.on(sdk.ClientEvent.Sync, (state: sdk.SyncState, _p: sdk.SyncState | null, data?: { error?: unknown }) => {
    if (state === sdk.SyncState.Error) errors.push(data?.error);
  });
  await client.startClient({ initialSyncLimit: 20 });
  await waitUntil(client, [sdk.ClientEvent.Sync], () => {
    if (errors.length) throw new Error(`sync failed: ${String(errors[0])}`);
    return client.isInitialSyncComplete();
  }, `${u.user_id} ${u.device_id} initial sync`);
  return client;
}

/** Resolves once `check()` holds, re-evaluated when the client emits one of `events`; fails after WAIT_MS. */
function waitUntil(client: sdk.MatrixClient, events: string[], check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const emitter = client as unknown as { on(e: string, f: () => void): void; off(e: string, f: () => void): void };
    let finished = false;
    const done = (err?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      for (const e of events) emitter.off(e, listener);
      if (err) reject(err);
      else resolve();
    };
    const listener = () => {
      Promise.resolve()
        .then(check)
        .then((ok) => ok && done(), (err: unknown) => done(err as Error));
    };
    const timer = setTimeout(() => done(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)), WAIT_MS);
    for (const e of events) emitter.on(e, listener);
    listener();
  });
}

/** The decrypted body of the room's event `eventId` at `client`, once it has arrived and been decrypted. */
async function decryptedBody(client: sdk.MatrixClient, roomId: string, eventId: string, what: string): Promise<string> {
  let body: string | undefined;
  await waitUntil(
    client,
    [sdk.RoomEvent.Timeline, sdk.MatrixEventEvent.Decrypted],
    () => {
      const ev = client.getRoom(roomId)?.getLiveTimeline().getEvents().find((e) => e.getId() === eventId);
      if (!ev || !ev.isEncrypted() || ev.isDecryptionFailure() || ev.getClearContent() === null) return false;
      body = ev.getClearContent()!.body as string;
      return true;
    },
    what,
  );
  return body!;
}

t('alice and bob talk in an encrypted room; bob\'s second device gets the room key and reads later messages', async (ctx) => {
  const aliceLogin = await registerUser(ctx.s, 'alice');
  const bobLogin = await registerUser(ctx.s, 'bob');
  const alice = await cryptoClient(ctx, aliceLogin);
  const bob = await cryptoClient(ctx, bobLogin);
  const [aliceId, bobId] = [alice.getUserId()!, bob.getUserId()!];

  const { room_id: roomId } = await alice.createRoom({
    preset: sdk.Preset.PrivateChat,
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  await waitUntil(alice, [sdk.ClientEvent.Room, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.hasEncryptionStateEvent() === true, 'alice sees the encrypted room');
  await alice.invite(roomId, bobId);
  await waitUntil(bob, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'invite', "bob's invite");
  await bob.joinRoom(roomId);
  await waitUntil(alice, [sdk.RoomMemberEvent.Membership, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.getMember(bobId)?.membership === 'join', "alice sees bob's join");

  const first = await alice.sendTextMessage(roomId, 'hello bob, this is encrypted');
  // What the server stores is ciphertext.
  const raw = (await ctx.s.request('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(first.event_id)}`, { token: bobLogin.access_token })).body;
  assert.is(raw.type, 'm.room.encrypted');
  assert.is(raw.content.algorithm, 'm.megolm.v1.aes-sha2');
  assert.not.ok(JSON.stringify(raw).includes('hello bob'), 'the server never sees the plaintext');
  assert.is(await decryptedBody(bob, roomId, first.event_id, 'bob decrypts the first message'), 'hello bob, this is encrypted');
  // Bob's client had published its identity keys, and Alice's claimed one of its one-time keys.
  const keys = (await ctx.s.request('POST', '/_matrix/client/v3/keys/query', { token: aliceLogin.access_token, body: { device_keys: { [bobId]: [] } } })).body;
  assert.ok(keys.device_keys[bobId][bobLogin.device_id]?.keys[`curve25519:${bobLogin.device_id}`], "bob's device keys are on the server");

  // Bob logs in on a second device; its keys reach Alice's client through device_lists.changed.
  const phoneLogin = (await login(ctx.s, bobId, PASSWORD)).body as { user_id: string; access_token: string; device_id: string };
  const phone = await cryptoClient(ctx, phoneLogin);
  const aliceCrypto = alice.getCrypto()!;
  await waitUntil(
    alice,
    [CryptoEvent.DevicesUpdated, sdk.ClientEvent.Sync],
    async () => (await aliceCrypto.getUserDeviceInfo([bobId])).get(bobId)?.has(phoneLogin.device_id) === true,
    "alice's client learns of bob's second device",
  );

  const second = await alice.sendTextMessage(roomId, 'hello to both of your devices');
  assert.is(await decryptedBody(phone, roomId, second.event_id, "bob's phone decrypts a later message"), 'hello to both of your devices');
  assert.is(await decryptedBody(bob, roomId, second.event_id, 'bob decrypts it too'), 'hello to both of your devices');
  assert.ok(aliceId);
});

t.run();
