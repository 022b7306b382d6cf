import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, createRoom, enc, newTxn, ok, send, type User } from './support/rooms.js';
import { crossSigningKey, newKey } from './support/e2e.js';
import {
  asTestServer as ts,
  craftRemoteMember,
  inviteAndJoin,
  startClusterWithUsers, startRecordingPeer,
  type FederationCluster,
  type FederationTestServer,
  type RecordingPeer,
} from './support/federation.js';
import { requestErrors, schemaErrors } from './support/spec_schema.js';
import { assertPdus, F, noErrors, PDU_SCHEMA, SS, versionOf, withoutStaleOrigin } from './support/federation_schema.js';
import type { FederationRequest } from '../src/services/federation/client.js';

/**
 * What Hearth sends to other servers, checked against the spec's schemas: the request bodies of
 * invite v2 (invite_room_state as PDUs, spec v1.16), send_join, send_leave, send_knock and the
 * user keys queries (recorded at the sending server's FederationClient), and the transactions a
 * recording peer receives (send_transaction request schema, PDUs per room version, each EDU type's
 * schema). The answers Hearth gives are in federation_schema.test.ts.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; peer: RecordingPeer; alice: User; bob: User };
const t = suite<Ctx>('federation: requests and transactions Hearth sends, against the spec schemas');

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b'], { alice: 'hs-a', bob: 'hs-b' });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'] }, users);
  ctx.peer = await startRecordingPeer(ctx.cluster, 'peer');
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
  await ctx.peer?.close();
});

/**
 * The requests `s` sends through its FederationClient from now on (method, path, body as given to
 * the client, which signs and sends exactly that): a pass-through recorder, nothing is changed.
 */
function recordOutgoing(s: FederationTestServer): { sent: FederationRequest[]; stop(): void } {
  const client = s.hs.deps.services.federation.client;
  const sent: FederationRequest[] = [];
  const request = client.request.bind(client);
  client.request = (req) => {
    sent.push(req);
    return request(req);
  };
  return { sent, stop: () => void (client.request = request) };
}

t('requests Hearth sends: invite v2 (invite_room_state as PDUs), send_join, send_leave, send_knock, user/keys/query and claim', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  const fromA = recordOutgoing(a);
  const fromB = recordOutgoing(b);
  try {
    const roomId = await createRoom(ts(a), alice, { name: 'Outgoing' });
    const version = await versionOf(a, roomId);
    await inviteAndJoin(a, alice, b, bob, roomId);
    const knockRoom = await createRoom(ts(a), alice, { name: 'Knock out', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
    ok(await api(ts(b), bob, 'POST', `/knock/${enc(knockRoom)}?server_name=${enc(a.serverName)}`, {}), 'bob knocks through A');
    // B got whole PDUs in knock_room_state and serves its client stripped state.
    const knockState = ok(await api(ts(b), bob, 'GET', '/sync?timeout=0')).rooms.knock[knockRoom].knock_state.events as any[];
    assert.ok(knockState.some((e) => e.type === 'm.room.create'), 'the create event in knock_state');
    for (const e of knockState) {
      noErrors(schemaErrors('event-schemas/schema/core-event-schema/stripped_state.yaml', e), `knock_state ${e.type}`);
      assert.not.ok('hashes' in e || 'signatures' in e || 'auth_events' in e, `stripped, not a PDU (${e.type})`);
    }
    ok(await api(ts(b), bob, 'POST', `/rooms/${enc(knockRoom)}/leave`, {}), 'bob withdraws the knock (make_leave/send_leave through A)');
    // A user of A sharing no room with B: B has no cached device list and asks A.
    const kai = await registerUser(ts(a), 'kai');
    ok(await api(ts(b), bob, 'POST', '/keys/query', { device_keys: { [kai.user_id]: [] } }), 'keys/query over federation');
    ok(await api(ts(b), bob, 'POST', '/keys/claim', { one_time_keys: { [kai.user_id]: { [kai.device_id]: 'signed_curve25519' } } }), 'keys/claim over federation');

    const one = (list: FederationRequest[], prefix: string) => {
      const r = list.find((x) => x.path.startsWith(`${F}${prefix}`));
      assert.ok(r, `a request to ${prefix}`);
      return r!;
    };
    const invite = one(fromA.sent, '/v2/invite/');
    noErrors(withoutStaleOrigin(requestErrors(SS('invites-v2.yaml'), '/invite/{roomId}/{eventId}', 'put', invite.body)), 'the invite A sends');
    const inviteBody = invite.body as any;
    assert.ok(inviteBody.invite_room_state.some((e: any) => e.type === 'm.room.create'), 'm.room.create in invite_room_state');
    assertPdus(inviteBody.invite_room_state, version, 'invite_room_state (spec v1.16: PDUs)');
    const sendJoin = one(fromB.sent, '/v2/send_join/');
    noErrors(withoutStaleOrigin(requestErrors(SS('joins-v2.yaml'), '/send_join/{roomId}/{eventId}', 'put', sendJoin.body)), 'the join B sends');
    noErrors(schemaErrors(PDU_SCHEMA[version], sendJoin.body), 'the join B sends (PDU)');
    const sendLeave = one(fromB.sent, '/v2/send_leave/');
    noErrors(withoutStaleOrigin(requestErrors(SS('leaving-v2.yaml'), '/send_leave/{roomId}/{eventId}', 'put', sendLeave.body)), 'the leave B sends');
    noErrors(schemaErrors(PDU_SCHEMA[version], sendLeave.body), 'the leave B sends (PDU)');
    const sendKnock = one(fromB.sent, '/v1/send_knock/');
    noErrors(withoutStaleOrigin(requestErrors(SS('knocks.yaml'), '/send_knock/{roomId}/{eventId}', 'put', sendKnock.body)), 'the knock B sends');
    noErrors(schemaErrors(PDU_SCHEMA[version], sendKnock.body), 'the knock B sends (PDU)');
    noErrors(requestErrors(SS('user_keys.yaml'), '/user/keys/query', 'post', one(fromB.sent, '/v1/user/keys/query').body), 'the keys query B sends');
    noErrors(requestErrors(SS('user_keys.yaml'), '/user/keys/claim', 'post', one(fromB.sent, '/v1/user/keys/claim').body), 'the keys claim B sends');
  } finally {
    fromA.stop();
    fromB.stop();
  }
});

const EDU_SCHEMAS: Record<string, string> = {
  'm.typing': 'm.typing.yaml',
  'm.receipt': 'm.receipt.yaml',
  'm.presence': 'm.presence.yaml',
  'm.device_list_update': 'm.device_list_update.yaml',
  'm.direct_to_device': 'm.direct_to_device.yaml',
  'm.signing_key_update': 'm.signing_key_update.yaml',
};

t('transactions A sends: the send_transaction request schema, PDUs per room version, and the EDUs (typing, receipt, presence, to-device, device list, signing key)', async ({ a, alice, peer }) => {
  const roomId = await createRoom(ts(a), alice, { preset: 'public_chat' });
  // The peer's user as a member (crafted): A then sends the room's traffic to the peer.
  await craftRemoteMember(a, roomId, `@p:${peer.serverName}`);
  const version = await versionOf(a, roomId);
  const edusOf = (type: string) => peer.transactions.flatMap((x) => x.edus).filter((e) => e.edu_type === type);

  const msg = await send(ts(a), alice, roomId, 'to the peer');
  ok(await api(ts(a), alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.user_id)}`, { typing: true, timeout: 10_000 }));
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(msg)}`, {}));
  ok(await api(ts(a), alice, 'PUT', `/presence/${enc(alice.user_id)}/status`, { presence: 'online', status_msg: 'checking' }));
  ok(await api(ts(a), alice, 'PUT', `/sendToDevice/m.test/${newTxn()}`, { messages: { [`@p:${peer.serverName}`]: { PEERDEV: { n: 1 } } } }));
  const login = ok(await a.request('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'correct horse battery' } }));
  const dev = login.device_id as string;
  const deviceKeys = { user_id: alice.user_id, device_id: dev, algorithms: ['m.olm.v1.curve25519-aes-sha2'], keys: { [`ed25519:${dev}`]: 'azE', [`curve25519:${dev}`]: 'azI' }, signatures: { [alice.user_id]: { [`ed25519:${dev}`]: 'c2ln' } } };
  ok(await a.request('POST', '/_matrix/client/v3/keys/upload', { token: login.access_token, body: { device_keys: deviceKeys } }));
  // A user in the room sets up cross-signing: m.signing_key_update.
  const cy = await registerUser(ts(a), 'cy');
  ok(await api(ts(a), cy, 'POST', `/join/${enc(roomId)}`, {}));
  const cyMaster = newKey();
  ok(await api(ts(a), cy, 'POST', '/keys/device_signing/upload', { master_key: crossSigningKey(cy, 'master', cyMaster), self_signing_key: crossSigningKey(cy, 'self_signing', newKey(), cyMaster) }), 'cy cross-signing');

  await peer.waitFor((all) =>
    all.some((x) => x.pdus.some((p) => p.room_id === roomId && p.type === 'm.room.message')) &&
    ['m.typing', 'm.receipt', 'm.presence', 'm.direct_to_device', 'm.signing_key_update'].every((type) => edusOf(type).length > 0) &&
    edusOf('m.device_list_update').some((e) => e.content.device_id === dev),
  );
  for (const txn of peer.transactions) {
    noErrors(requestErrors(SS('transactions.yaml'), '/send/{txnId}', 'put', txn.body), `transaction ${txn.txnId}`);
    for (const pdu of txn.pdus) if (pdu.room_id === roomId) noErrors(schemaErrors(PDU_SCHEMA[version], pdu), `PDU ${String(pdu.type)} in ${txn.txnId}`);
    for (const edu of txn.edus) {
      const file = EDU_SCHEMAS[edu.edu_type];
      assert.ok(file, `an EDU type the spec defines (${edu.edu_type})`);
      noErrors(schemaErrors(SS(`definitions/event-schemas/${file!}`), edu), `${edu.edu_type} EDU`);
    }
  }
});
t.run();
