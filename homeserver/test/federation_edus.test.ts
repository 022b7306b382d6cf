import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, type TestServer } from './support/harness.js';
import { api, createRoom, enc, ok, type User } from './support/rooms.js';
import { craftRemoteMember, startFederationCluster, type FederationCluster, type FederationTestServer } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { FederationError } from '../src/services/federation/client.js';

/**
 * EDUs into B from A (the EDU handler PUT /send hands them to), and E2EE keys between real servers:
 * B's clients query and claim keys of A's users over federation (/user/keys/query|claim, /user/devices).
 * A's user is made a member of B's room by crafting B's membership state (remote joins are another part).
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; roomId: string };
const t = suite<Ctx>('federation EDUs and keys');

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b']);
  ctx.a = ctx.cluster.get('hs-a');
  ctx.b = ctx.cluster.get('hs-b');
  ctx.alice = await registerUser(srv(ctx.a), 'alice');
  ctx.bob = await registerUser(srv(ctx.b), 'bob');
  ctx.roomId = await createRoom(srv(ctx.b), ctx.bob);
  await craftRemoteMember(ctx.b, ctx.roomId, ctx.alice.user_id);
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

const srv = (s: FederationTestServer) => s as unknown as TestServer;
const receive = (s: FederationTestServer, origin: string, edus: { edu_type: string; content: Record<string, unknown> }[]) => s.hs.deps.services.federation.edus.receive(origin, edus);

async function syncBob(b: FederationTestServer, bob: User, since?: string): Promise<any> {
  return ok(await api(srv(b), bob, 'GET', `/sync?timeout=0${since ? `&since=${enc(since)}` : ''}`));
}

t('typing from A reaches B’s members; a server cannot speak for another server’s user or a non-member', async ({ a, b, alice, bob, roomId }) => {
  const first = await syncBob(b, bob);
  // hs-c claims alice; A claims a user of B; A's user types in a room alice is not in.
  await receive(b, 'hs-c.localhost:1', [{ edu_type: 'm.typing', content: { room_id: roomId, user_id: alice.user_id, typing: true } }]);
  await receive(b, a.serverName, [{ edu_type: 'm.typing', content: { room_id: roomId, user_id: bob.user_id, typing: true } }]);
  const other = await createRoom(srv(b), bob);
  await receive(b, a.serverName, [{ edu_type: 'm.typing', content: { room_id: other, user_id: alice.user_id, typing: true } }]);
  const none = await syncBob(b, bob, first.next_batch);
  assert.is(JSON.stringify(none.rooms?.join?.[roomId]?.ephemeral ?? {}).includes('m.typing'), false, 'nothing applied');
  assert.is(JSON.stringify(none.rooms?.join?.[other]?.ephemeral ?? {}).includes(alice.user_id), false);

  await receive(b, a.serverName, [
    { edu_type: 'm.bogus', content: {} },
    { edu_type: 'm.typing', content: { room_id: roomId, user_id: alice.user_id, typing: true } },
  ]);
  const got = await syncBob(b, bob, first.next_batch);
  const typing = got.rooms.join[roomId].ephemeral.events.find((e: any) => e.type === 'm.typing');
  assert.equal(typing.content.user_ids, [alice.user_id]);
});

t('read receipts from A (only for A’s users)', async ({ a, b, alice, bob, roomId }) => {
  const ev = ok(await api(srv(b), bob, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/r1`, { msgtype: 'm.text', body: 'hi' })).event_id;
  const first = await syncBob(b, bob);
  const receipt = (user: string) => ({ edu_type: 'm.receipt', content: { [roomId]: { 'm.read': { [user]: { event_ids: [ev], data: { ts: 1 } } } } } });
  await receive(b, a.serverName, [receipt(bob.user_id)]);
  await receive(b, a.serverName, [receipt(alice.user_id)]);
  const got = await syncBob(b, bob, first.next_batch);
  const r = got.rooms.join[roomId].ephemeral.events.find((e: any) => e.type === 'm.receipt');
  assert.equal(Object.keys(r.content[ev]['m.read']), [alice.user_id]);
});

t('presence from A for a user sharing a room', async ({ a, b, alice, bob }) => {
  await receive(b, a.serverName, [{ edu_type: 'm.presence', content: { push: [{ user_id: alice.user_id, presence: 'online', status_msg: 'hello', last_active_ago: 5, currently_active: true }] } }]);
  const p = ok(await api(srv(b), bob, 'GET', `/presence/${enc(alice.user_id)}/status`));
  assert.is(p.presence, 'online');
  assert.is(p.status_msg, 'hello');
  // hs-c cannot set alice's presence.
  await receive(b, 'hs-c.localhost:1', [{ edu_type: 'm.presence', content: { push: [{ user_id: alice.user_id, presence: 'offline' }] } }]);
  assert.is(ok(await api(srv(b), bob, 'GET', `/presence/${enc(alice.user_id)}/status`)).presence, 'online');
});

t('to-device from A is delivered once per message_id, only when the sender is A’s', async ({ a, b, alice, bob }) => {
  const first = await syncBob(b, bob);
  const edu = (sender: string, id: string) => ({ edu_type: 'm.direct_to_device', content: { sender, type: 'm.test', message_id: id, messages: { [bob.user_id]: { [bob.device_id]: { n: id } } } } });
  await receive(b, a.serverName, [edu(alice.user_id, 'one')]);
  await receive(b, a.serverName, [edu(alice.user_id, 'one')]); // the origin retried its transaction
  await receive(b, 'hs-c.localhost:1', [edu(alice.user_id, 'forged')]);
  const got = await syncBob(b, bob, first.next_batch);
  assert.equal(got.to_device.events, [{ sender: alice.user_id, type: 'm.test', content: { n: 'one' } }]);
});

t('keys of A’s users for B’s clients: /keys/query and /keys/claim over federation; device list updates mark changes', async ({ a, b, alice, bob }) => {
  const deviceKeys = {
    user_id: alice.user_id,
    device_id: alice.device_id,
    algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
    keys: { [`ed25519:${alice.device_id}`]: 'edkey', [`curve25519:${alice.device_id}`]: 'curvekey' },
    signatures: { [alice.user_id]: { [`ed25519:${alice.device_id}`]: 'sig' } },
  };
  ok(await api(srv(a), alice, 'POST', '/keys/upload', { device_keys: deviceKeys, one_time_keys: { 'signed_curve25519:AAAA': { key: 'otk1', signatures: { [alice.user_id]: { [`ed25519:${alice.device_id}`]: 's' } } } } }));

  const q = ok(await api(srv(b), bob, 'POST', '/keys/query', { device_keys: { [alice.user_id]: [], '@x:nowhere.localhost:1': [] } }));
  assert.equal(q.device_keys[alice.user_id][alice.device_id].keys, deviceKeys.keys);
  assert.ok(q.failures['nowhere.localhost:1'], 'an unreachable server is reported in failures');
  assert.is(q.failures[a.serverName], undefined);

  const c = ok(await api(srv(b), bob, 'POST', '/keys/claim', { one_time_keys: { [alice.user_id]: { [alice.device_id]: 'signed_curve25519' } } }));
  assert.is(c.one_time_keys[alice.user_id][alice.device_id]['signed_curve25519:AAAA'].key, 'otk1');
  const again = ok(await api(srv(b), bob, 'POST', '/keys/claim', { one_time_keys: { [alice.user_id]: { [alice.device_id]: 'signed_curve25519' } } }));
  assert.equal(again.one_time_keys, {}, 'a one-time key is handed out once');

  // /user/devices over federation: A's answer for its own user; B may not ask A about B's users.
  const fed = b.hs.deps.services.federation.client;
  const devices = await fed.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/user/devices/${enc(alice.user_id)}` });
  assert.is(devices.user_id, alice.user_id);
  assert.equal((devices.devices as any[]).map((d) => d.device_id), [alice.device_id]);
  try {
    await fed.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/user/devices/${enc(bob.user_id)}` });
    assert.unreachable('not A’s user');
  } catch (err) {
    assert.ok(err instanceof FederationError && err.status === 400, String(err));
  }

  // A device list update from A: bob's next sync lists alice as changed, and the cached list follows it.
  const first = await syncBob(b, bob);
  const cached = ok(await api(srv(b), bob, 'POST', '/keys/query', { device_keys: { [alice.user_id]: [] } }));
  assert.ok(cached.device_keys[alice.user_id][alice.device_id]);
  const [before] = await b.hs.deps.db.query<{ stream_id: string; stale: boolean }>('select stream_id, stale from remote_device_lists where user_id = ?', [alice.user_id]);
  assert.is(before!.stale, false, 'the list of a user sharing a room is cached');
  const base = Number(before!.stream_id);
  const streamId = base + 1;
  await receive(b, a.serverName, [{ edu_type: 'm.device_list_update', content: { user_id: alice.user_id, device_id: alice.device_id, stream_id: streamId, prev_id: [base], deleted: true } }]);
  const got = await syncBob(b, bob, first.next_batch);
  assert.ok(got.device_lists.changed.includes(alice.user_id));
  // hs-c cannot report alice's devices.
  await receive(b, 'hs-c.localhost:1', [{ edu_type: 'm.device_list_update', content: { user_id: alice.user_id, device_id: 'X', stream_id: streamId + 1, prev_id: [streamId], keys: {} } }]);
  const [row] = await b.hs.deps.db.query<{ stream_id: string; devices: string }>('select stream_id, devices from remote_device_lists where user_id = ?', [alice.user_id]);
  assert.is(Number(row!.stream_id), streamId);
  assert.equal(JSON.parse(row!.devices), {}, 'the deleted device is gone from the cached list');
});

t.run();
