// End to end with a real homeserver: a room member gets a call token from
// POST /_hearth/client/v1/rooms/{roomId}/call/token, and the SFU (configured only with the
// homeserver's JWKS URL and server name) admits it to that room's call and no other.
import './support/worker_bin.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from '../../homeserver/test/support/harness.js';
import { createRoom, join } from '../../homeserver/test/support/rooms.js';
import { SignalClient, startTestSfu, type TestSfu } from './support/sfu.js';

let hs: TestServer;
let env: TestSfu;
const clients: SignalClient[] = [];

test.before(async () => {
  hs = await startTestServer();
  const base = await hs.listen();
  env = await startTestSfu({ env: { HEARTH_SFU_JWKS_URL: `${base}/_hearth/call/v1/jwks.json`, HEARTH_SFU_ISSUER: hs.config.serverName } });
});
test.after(async () => {
  for (const c of clients) await c.close();
  await env?.close();
  await hs?.close();
});

async function callToken(accessToken: string, roomId: string) {
  return hs.request('POST', `/_hearth/client/v1/rooms/${encodeURIComponent(roomId)}/call/token`, { token: accessToken, body: {} });
}

test('a token from the homeserver joins its room\'s call; the same token is refused for another room', async () => {
  const alice = await registerUser(hs, 'alice');
  const bob = await registerUser(hs, 'bob');
  const roomId = await createRoom(hs, alice, { preset: 'public_chat' });
  const otherRoom = await createRoom(hs, alice);
  await join(hs, bob, roomId);

  const res = await callToken(bob.access_token, roomId);
  assert.is(res.status, 200, JSON.stringify(res.body));
  const c = await SignalClient.connect(env.url);
  clients.push(c);
  const { routerRtpCapabilities: rtpCapabilities } = await c.call('getRouterRtpCapabilities');

  const wrongRoom = await c.request('join', { token: res.body.token, roomId: otherRoom, rtpCapabilities });
  assert.is(wrongRoom.error.code, 'forbidden');

  const joined = await c.call('join', { token: res.body.token, roomId, rtpCapabilities });
  assert.is(joined.userId, bob.user_id);
  assert.is(joined.deviceId, bob.device_id);
  assert.equal(env.sfu.stats().calls.map((call) => call.roomId), [roomId]);

  // Bob is not in the other room: the homeserver refuses him a token for it.
  assert.is((await callToken(bob.access_token, otherRoom)).status, 403);
});

test('a token signed by another homeserver (other key, same claims) is refused', async () => {
  const other = await startTestServer();
  try {
    const carol = await registerUser(other, 'carol');
    const roomId = await createRoom(other, carol);
    const foreign = await other.request('POST', `/_hearth/client/v1/rooms/${encodeURIComponent(roomId)}/call/token`, { token: carol.access_token, body: {} });
    assert.is(foreign.status, 200);
    const c = await SignalClient.connect(env.url);
    clients.push(c);
    const { routerRtpCapabilities: rtpCapabilities } = await c.call('getRouterRtpCapabilities');
    const r = await c.request('join', { token: foreign.body.token, roomId, rtpCapabilities });
    assert.is(r.error.code, 'unauthorized');
  } finally {
    await other.close();
  }
});

test.run();
