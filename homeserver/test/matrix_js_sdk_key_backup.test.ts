// Server-side room key backup with the real matrix-js-sdk 37 and its Rust crypto, against a
// homeserver on a real port: resetKeyBackup creates a backup version the client then trusts and
// enables; the Megolm key of an encrypted message lands in the backup (PUT /room_keys/keys); a device
// that logs in later, given the backup decryption key, restores it from the server and reads the
// message it never received a key for.
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { CryptoEvent } from 'matrix-js-sdk/lib/crypto-api/index.js';
import { registerUser, login } from './support/harness.js';
import type { User } from './support/rooms.js';
import { cryptoClient, quietSdk, sdkSuite, waitUntil } from './support/sdk.js';

quietSdk();

/** Crypto set-up and the backup loop are slow on a loaded machine: each wait here may take this long. */
const WAIT_MS = 40_000;
const PASSWORD = 'correct horse battery';

/**
 * The SDK arms a long timer per request and never clears it, and its backup loop first sleeps a
 * random 0-10 s: while this suite runs, timers of a second or more do not keep the process alive
 * (they still fire; waitUntil's own deadline keeps the real setTimeout). The wasm crypto and the
 * SDK's backup loop log through console.*: muted during the suite.
 */
const t = sdkSuite('matrix-js-sdk 37: server-side key backup with the Rust crypto', [], { unrefTimersFrom: 1000, muteConsole: true });

t('resetKeyBackup creates a trusted backup; sent room keys are backed up; a new device restores them', async (ctx) => {
  const aliceLogin = await registerUser(ctx.s, 'kbsdkalice');
  const alice = await cryptoClient(ctx.baseUrl, aliceLogin, { track: ctx.clients, timeoutMs: WAIT_MS });
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
  await waitUntil(alice, [CryptoEvent.KeyBackupStatus], async () => (await crypto.getActiveSessionBackupVersion()) === second.version, 'the new backup is active', WAIT_MS);

  // An encrypted message: its Megolm session key is uploaded to the backup.
  const { room_id: roomId } = await alice.createRoom({
    preset: sdk.Preset.PrivateChat,
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  await waitUntil(alice, [sdk.ClientEvent.Room, sdk.RoomEvent.Timeline], () => alice.getRoom(roomId)?.hasEncryptionStateEvent() === true, 'the encrypted room', WAIT_MS);
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
    WAIT_MS,
  );
  assert.is(backedUp.first_message_index, 0);
  assert.type(backedUp.is_verified, 'boolean');
  assert.type(backedUp.session_data.ciphertext, 'string');
  assert.type(backedUp.session_data.ephemeral, 'string');
  assert.not.ok(JSON.stringify(backedUp).includes('a secret worth'), 'the backup holds ciphertext only');
  const counted = (await room('/room_keys/version')).body;
  assert.ok(counted.count >= 1, 'the version counts the key');

  // A device that logs in afterwards never received this room key; with the backup key it restores it.
  const laptopLogin = (await login(ctx.s, aliceLogin.user_id, PASSWORD)).body as User;
  const laptop = await cryptoClient(ctx.baseUrl, laptopLogin, { track: ctx.clients, timeoutMs: WAIT_MS });
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
