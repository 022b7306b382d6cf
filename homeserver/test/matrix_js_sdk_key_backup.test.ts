// Server-side room key backup with the real matrix-js-sdk 37 and its Rust crypto, against a
// homeserver on a real port: resetKeyBackup creates a backup version the client then trusts and
// enables; the Megolm key of an encrypted message lands in the backup (PUT /room_keys/keys); a device
// that logs in later, given the backup decryption key, restores it from the server and reads the
// message it never received a key for.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import { CryptoEvent } from 'matrix-js-sdk/lib/crypto-api/index.js';
import { LoggerLevel, Tracing } from '@matrix-org/matrix-sdk-crypto-wasm';
import { startTestServer, registerUser, login, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';

for (const l of [sdkLogger, sdkLogger.getChild('[MatrixRTCSessionManager]')]) (l as unknown as { setLevel(level: 'silent'): void }).setLevel('silent');

const WAIT_MS = 40_000;
const PASSWORD = 'correct horse battery';
type Login = { user_id: string; access_token: string; device_id: string };

interface Ctx {
  s: TestServer;
  baseUrl: string;
  clients: sdk.MatrixClient[];
}
const t = suite<Ctx>('matrix-js-sdk 37: server-side key backup with the Rust crypto');

/**
 * The SDK arms a long timer per request and never clears it, and its backup loop first sleeps a
 * random 0-10 s: while this suite runs, SDK timers of a second or more do not keep the process alive
 * (they still fire). The suite's own wait bound uses the real setTimeout.
 */
const realSetTimeout = globalThis.setTimeout;
/** The wasm crypto and the SDK's backup loop log through console.*: muted during the suite. */
const realConsole = { debug: console.debug, log: console.log, info: console.info };
function unrefLongTimers(): void {
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = realSetTimeout(fn, ms, ...args);
    if ((ms ?? 0) >= 1000) timer.unref();
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
async function cryptoClient(ctx: Ctx, u: Login): Promise<sdk.MatrixClient> {
  const client = sdk.createClient({ baseUrl: ctx.baseUrl, accessToken: u.access_token, userId: u.user_id, deviceId: u.device_id });
  ctx.clients.push(client);
  await client.initRustCrypto({ useIndexedDB: false });
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
    const timer = realSetTimeout(() => done(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)), WAIT_MS);
    for (const e of events) emitter.on(e, listener);
    listener();
  });
}

t('resetKeyBackup creates a trusted backup; sent room keys are backed up; a new device restores them', async (ctx) => {
  const aliceLogin = await registerUser(ctx.s, 'kbsdkalice');
  const alice = await cryptoClient(ctx, aliceLogin);
  const crypto = alice.getCrypto()!;
  const room = (path: string) => ctx.s.request('GET', `/_matrix/client/v3${path}`, { token: aliceLogin.access_token });

  assert.is(await crypto.getActiveSessionBackupVersion(), null, 'no backup at first');
  assert.is((await room('/room_keys/version')).status, 404);

  await crypto.resetKeyBackup();
  const info = (await room('/room_keys/version')).body;
  assert.is(info.algorithm, 'm.megolm_backup.v1.curve25519-aes-sha2');
  assert.type(info.auth_data.public_key, 'string');
  assert.ok(info.auth_data.signatures?.[aliceLogin.user_id]?.[`ed25519:${aliceLogin.device_id}`], 'auth_data signed by the device');
  const check = await crypto.checkKeyBackupAndEnable();
  assert.is(check?.backupInfo.version, info.version);
  assert.ok(check?.trustInfo.trusted, 'the client trusts the backup');
  assert.is(await crypto.getActiveSessionBackupVersion(), info.version);

  // A second reset replaces the backup: the old version is deleted on the server.
  await crypto.resetKeyBackup();
  const second = (await room('/room_keys/version')).body;
  assert.is.not(second.version, info.version);
  assert.is((await room(`/room_keys/version/${info.version}`)).status, 404, 'the first backup was deleted');
  await waitUntil(alice, [CryptoEvent.KeyBackupStatus], async () => (await crypto.getActiveSessionBackupVersion()) === second.version, 'the new backup is active');

  // An encrypted message: its Megolm session key is uploaded to the backup.
  const { room_id: roomId } = await alice.createRoom({
    preset: sdk.Preset.PrivateChat,
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  await waitUntil(alice, [sdk.ClientEvent.Room, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.hasEncryptionStateEvent() === true, 'the encrypted room');
  const sent = await alice.sendTextMessage(roomId, 'a secret worth backing up');
  const raw = (await room(`/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sent.event_id)}`)).body;
  const sessionId = raw.content.session_id as string;
  assert.ok(sessionId, 'the message is Megolm-encrypted');

  let backedUp: any;
  await waitUntil(
    alice,
    [CryptoEvent.KeyBackupSessionsRemaining, sdk.ClientEvent.Sync],
    async () => {
      const res = await room(`/room_keys/keys?version=${second.version}`);
      backedUp = res.body?.rooms?.[roomId]?.sessions?.[sessionId];
      return res.status === 200 && backedUp !== undefined;
    },
    'the session key in the backup',
  );
  assert.is(backedUp.first_message_index, 0);
  assert.type(backedUp.is_verified, 'boolean');
  assert.type(backedUp.session_data.ciphertext, 'string');
  assert.type(backedUp.session_data.ephemeral, 'string');
  assert.not.ok(JSON.stringify(backedUp).includes('a secret worth'), 'the backup holds ciphertext only');
  const counted = (await room('/room_keys/version')).body;
  assert.ok(counted.count >= 1, 'the version counts the key');

  // A device that logs in afterwards never received this room key; with the backup key it restores it.
  const laptopLogin = (await login(ctx.s, aliceLogin.user_id, PASSWORD)).body as Login;
  const laptop = await cryptoClient(ctx, laptopLogin);
  const laptopCrypto = laptop.getCrypto()!;
  const backupKey = await crypto.getSessionBackupPrivateKey();
  assert.ok(backupKey, 'alice holds the backup decryption key');
  await laptopCrypto.storeSessionBackupPrivateKey(backupKey!, second.version);
  const restored = await laptopCrypto.restoreKeyBackup();
  assert.ok(restored.imported >= 1, `imported ${restored.imported} of ${restored.total}`);
  const event = new sdk.MatrixEvent(raw);
  await laptop.decryptEventIfNeeded(event);
  assert.is(event.isDecryptionFailure(), false, 'the restored key decrypts the message');
  assert.is(event.getClearContent()?.body, 'a secret worth backing up');
  // The laptop now holds the matching decryption key, so it trusts the backup too.
  const laptopCheck = await laptopCrypto.checkKeyBackupAndEnable();
  assert.is(laptopCheck?.backupInfo.version, second.version);
  assert.ok(laptopCheck?.trustInfo.matchesDecryptionKey, 'the stored key matches the backup');
});

t.run();
