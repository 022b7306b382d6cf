// The signalling protocol without a browser: envelope and params validation, call-token checks
// against a local JWKS, limits, and the server-side lifecycle of transports, producers and
// consumers (RTP parameters written by hand; no media flows here, see call.test.ts for that).
import './support/worker_bin.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPair } from 'jose';
import { createTokenVerifier } from '../src/auth.js';
import { startTestIssuer, type TestIssuer } from './support/jwks.js';
import { SignalClient, startTestSfu, until, type TestSfu } from './support/sfu.js';

const ROOM = '!call:test.hearth';
let issuer: TestIssuer;
let env: TestSfu;
const clients: SignalClient[] = [];

test.before(async () => {
  issuer = await startTestIssuer();
  env = await startTestSfu({
    env: { HEARTH_SFU_MAX_PARTICIPANTS: '3', HEARTH_SFU_MAX_MESSAGE_BYTES: '65536', HEARTH_SFU_JOIN_TIMEOUT_MS: '60000' },
    verifier: createTokenVerifier({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer }),
  });
});
test.after.each(async () => {
  for (const c of clients.splice(0)) await c.close();
  await until('every call to end', () => env.sfu.stats().calls.length === 0);
});
test.after(async () => {
  await env.close();
  await issuer.close();
});

async function connect(): Promise<SignalClient> {
  const c = await SignalClient.connect(env.url);
  clients.push(c);
  return c;
}

/** Connects and joins ROOM as (user, device) with the router's own capabilities. */
async function joinAs(userId: string, deviceId = 'DEV', roomId = ROOM): Promise<{ c: SignalClient; joined: any; caps: any }> {
  const c = await connect();
  const { routerRtpCapabilities: caps } = await c.call('getRouterRtpCapabilities');
  const token = await issuer.sign({ userId, deviceId, roomId });
  const joined = await c.call('join', { token, roomId, rtpCapabilities: caps });
  return { c, joined, caps };
}

const DTLS = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: Array(32).fill('AB').join(':') }] };
const opusParams = (ssrc: number) => ({
  mid: '0',
  codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }],
  headerExtensions: [],
  encodings: [{ ssrc }],
  rtcp: { cname: `c${ssrc}` },
});

test('malformed messages get error responses and never break the socket or the process', async () => {
  const c = await connect();
  let r = await c.sendRaw('{not json');
  assert.equal(r, { id: null, error: { code: 'bad_request', message: 'message is not JSON' } });
  r = await c.sendRaw('[1,2]');
  assert.is(r.error.code, 'bad_request');
  r = await c.sendRaw(JSON.stringify({ method: 'join' }));
  assert.is(r.id, null);
  assert.match(r.error.message, /id must be/);
  r = await c.sendRaw(JSON.stringify({ id: 7, method: 'fly' }), 7);
  assert.equal(r.error.code, 'unknown_method');
  r = await c.sendRaw(JSON.stringify({ id: 8, method: 'join', params: 'x' }), 8);
  assert.equal(r.error, { code: 'bad_request', message: 'params must be an object' });
  r = await c.request('join', { token: 5, roomId: ROOM, rtpCapabilities: { codecs: [] } });
  assert.equal(r.error, { code: 'bad_request', message: 'params.token must be a string' });
  r = await c.request('join', { token: 'x', roomId: 'not-a-room', rtpCapabilities: { codecs: [] } });
  assert.equal(r.error, { code: 'bad_request', message: 'params.roomId is malformed' });
  r = await c.request('join', { token: 'x', roomId: ROOM });
  assert.equal(r.error, { code: 'bad_request', message: 'params.rtpCapabilities is required' });
  r = await c.request('createTransport', { direction: 'sideways' });
  assert.is(r.error.code, 'bad_request');
  r = await c.request('createTransport', { direction: 'send' });
  assert.equal(r.error.code, 'not_joined', 'validation passes, then the call membership is required');
  r = await c.request('setConsumerPreferredLayers', { consumerId: 'abc', spatialLayer: 12 });
  assert.equal(r.error, { code: 'bad_request', message: 'params.spatialLayer must be between 0 and 9' });
  // Still serving:
  const caps = await c.call('getRouterRtpCapabilities');
  assert.ok(caps.routerRtpCapabilities.codecs.length > 0);
});

test('a frame above HEARTH_SFU_MAX_MESSAGE_BYTES closes that socket (1009); others carry on', async () => {
  const big = await connect();
  const other = await connect();
  big.ws.send(JSON.stringify({ id: 1, method: 'join', params: { token: 'x'.repeat(70_000) } }));
  await until('the socket to close', () => big.closeCode);
  assert.is(big.closeCode, 1009);
  assert.ok((await other.call('getRouterRtpCapabilities')).routerRtpCapabilities);
});

test('call tokens: forged, expired, wrong audience, wrong issuer, missing claims and wrong room are refused', async () => {
  const c = await connect();
  const { routerRtpCapabilities: rtpCapabilities } = await c.call('getRouterRtpCapabilities');
  const join = async (token: string, roomId = ROOM) => (await c.request('join', { token, roomId, rtpCapabilities })).error;
  const other = await generateKeyPair('EdDSA', { crv: 'Ed25519' });

  assert.equal((await join(await issuer.sign({ roomId: ROOM, key: other.privateKey }))).code, 'unauthorized', 'forged (same kid, other key)');
  assert.equal((await join(await issuer.sign({ roomId: ROOM, key: other.privateKey, kid: 'other' }))).code, 'unauthorized', 'unknown kid');
  assert.equal(await join(await issuer.sign({ roomId: ROOM, ttlSec: -60 })), { code: 'unauthorized', message: 'call token expired' });
  assert.equal((await join(await issuer.sign({ roomId: ROOM, audience: 'someone-else' }))).message, 'call token claim check failed: aud (check_failed)');
  assert.equal((await join(await issuer.sign({ roomId: ROOM, issuer: 'evil.example' }))).message, 'call token claim check failed: iss (check_failed)');
  assert.equal((await join('not.a.jwt')).code, 'unauthorized');
  assert.equal((await join(await issuer.sign({ roomId: ROOM, claims: { device_id: 5 } }))).code, 'unauthorized', 'device_id not a string');
  assert.equal(await join(await issuer.sign({ roomId: '!other:test.hearth' })), { code: 'forbidden', message: 'the call token is for another room' });
  assert.equal(env.sfu.stats().calls, [], 'no call was opened by refused joins');

  const ok = await c.call('join', { token: await issuer.sign({ roomId: ROOM }), roomId: ROOM, rtpCapabilities });
  assert.is(ok.userId, '@alice:test.hearth');
  assert.is(ok.deviceId, 'DEVICE');
  assert.equal(ok.participants, []);
  assert.is((await c.request('join', { token: await issuer.sign({ roomId: ROOM }), roomId: ROOM, rtpCapabilities })).error.code, 'already_joined');
});

test('participant limit: the call refuses the participant above HEARTH_SFU_MAX_PARTICIPANTS', async () => {
  const a = await joinAs('@a:test.hearth');
  const b = await joinAs('@b:test.hearth');
  const c = await joinAs('@c:test.hearth');
  assert.equal(
    c.joined.participants.map((p: any) => p.userId).sort(),
    ['@a:test.hearth', '@b:test.hearth'],
  );
  const d = await connect();
  const token = await issuer.sign({ userId: '@d:test.hearth', roomId: ROOM });
  const r = await d.request('join', { token, roomId: ROOM, rtpCapabilities: a.caps });
  assert.is(r.error.code, 'call_full');
  assert.is(env.sfu.stats().calls[0]!.participants.length, 3);
  // A free seat after someone leaves:
  await b.c.call('leave');
  await a.c.waitFor('participantLeft', (p) => p.participantId === b.joined.participantId);
  assert.ok((await d.call('join', { token, roomId: ROOM, rtpCapabilities: a.caps })).participantId);
});

test('the same device joining again replaces its old session, which is told callClosed(replaced)', async () => {
  const first = await joinAs('@a:test.hearth', 'PHONE');
  const watcher = await joinAs('@b:test.hearth');
  const second = await joinAs('@a:test.hearth', 'PHONE');
  const n = await first.c.waitFor('callClosed');
  assert.equal(n.params, { reason: 'replaced' });
  await watcher.c.waitFor('participantLeft', (p) => p.participantId === first.joined.participantId);
  const ids = env.sfu.stats().calls[0]!.participants.map((p: any) => p.participantId).sort();
  assert.equal(ids, [watcher.joined.participantId, second.joined.participantId].sort());
  assert.is((await first.c.request('createTransport', { direction: 'send' })).error.code, 'not_joined');
});

test('transports, producers, consumers: created, paused consumers, producer pause seen, all released on leave', async () => {
  const alice = await joinAs('@alice:test.hearth');
  const bob = await joinAs('@bob:test.hearth');
  await alice.c.waitFor('participantJoined', (p) => p.participantId === bob.joined.participantId && p.userId === '@bob:test.hearth');

  const send = await alice.c.call('createTransport', { direction: 'send' });
  assert.ok(send.iceCandidates.some((c: any) => c.protocol === 'udp') && send.iceCandidates.some((c: any) => c.protocol === 'tcp'));
  assert.is((await alice.c.request('createTransport', { direction: 'send' })).error.code, 'limit_exceeded');
  const tcpOnly = await bob.c.call('createTransport', { direction: 'recv', forceTcp: true });
  assert.equal(tcpOnly.iceCandidates.map((c: any) => c.protocol), ['tcp']);
  await alice.c.call('connectTransport', { transportId: send.transportId, dtlsParameters: DTLS });
  const ice = await alice.c.call('restartIce', { transportId: send.transportId });
  assert.is.not(ice.iceParameters.usernameFragment, send.iceParameters.usernameFragment, 'ICE restart gives new credentials');

  let r = await alice.c.request('produce', { transportId: send.transportId, kind: 'video', source: 'microphone', rtpParameters: opusParams(1) });
  assert.equal(r.error, { code: 'bad_request', message: 'source microphone must be audio' });
  r = await alice.c.request('produce', { transportId: send.transportId, kind: 'audio', source: 'microphone', rtpParameters: { codecs: 'x' } });
  assert.is(r.error.code, 'bad_request', 'mediasoup refuses the RTP parameters; the client hears why');
  r = await alice.c.request('produce', { transportId: tcpOnly.transportId, kind: 'audio', source: 'microphone', rtpParameters: opusParams(1) });
  assert.is(r.error.code, 'not_found', "someone else's transport");
  const { producerId } = await alice.c.call('produce', { transportId: send.transportId, kind: 'audio', source: 'microphone', rtpParameters: opusParams(1111) });
  r = await alice.c.request('produce', { transportId: send.transportId, kind: 'audio', source: 'microphone', rtpParameters: opusParams(2) });
  assert.is(r.error.code, 'limit_exceeded', 'one producer per source');
  const added = await bob.c.waitFor('producerAdded');
  assert.equal(added.params, { participantId: alice.joined.participantId, producerId, kind: 'audio', source: 'microphone', paused: false });

  const consumer = await bob.c.call('consume', { producerId });
  assert.is(consumer.kind, 'audio');
  assert.is(consumer.source, 'microphone');
  assert.is(consumer.participantId, alice.joined.participantId);
  const bobStats = () => env.sfu.stats().calls[0]!.participants.find((p: any) => p.participantId === bob.joined.participantId) as any;
  assert.is(bobStats().consumers[0].paused, true, 'consumers start paused');
  await bob.c.call('resumeConsumer', { consumerId: consumer.consumerId });
  assert.is(bobStats().consumers[0].paused, false);
  assert.is((await bob.c.request('consume', { producerId: 'nope' })).error.code, 'not_found');

  await alice.c.call('pauseProducer', { producerId });
  const paused = await bob.c.waitFor('producerPaused');
  assert.equal(paused.params, { participantId: alice.joined.participantId, producerId, source: 'microphone' });
  await until('the consumer to see its producer paused', () => bobStats().consumers[0].producerPaused);
  await alice.c.call('resumeProducer', { producerId });
  await bob.c.waitFor('producerResumed');
  await until('the consumer to see its producer resumed', () => !bobStats().consumers[0].producerPaused);

  // Late joiner sees the producer in the roster.
  const carol = await joinAs('@carol:test.hearth');
  assert.equal(
    carol.joined.participants.find((p: any) => p.userId === '@alice:test.hearth').producers,
    [{ producerId, kind: 'audio', source: 'microphone', paused: false }],
  );
  await carol.c.call('leave');

  // Alice's socket dies: her transport and producer go, Bob's consumer closes, he is told.
  alice.c.ws.terminate();
  await bob.c.waitFor('consumerClosed', (p) => p.consumerId === consumer.consumerId && p.producerId === producerId);
  await bob.c.waitFor('participantLeft', (p) => p.participantId === alice.joined.participantId);
  const call = env.sfu.stats().calls[0] as any;
  assert.equal(call.participants.length, 1);
  assert.equal(bobStats().consumers, []);
  assert.equal(bobStats().transports.length, 1);
  await bob.c.call('leave');
  assert.equal(env.sfu.stats().calls, [], 'the last leave closes the call and its router');
  assert.equal(env.sfu.stats().workers[0]!.routers, 0);
});

test('a socket that does not join in time is closed (4000)', async () => {
  const short = await startTestSfu({
    env: { HEARTH_SFU_JOIN_TIMEOUT_MS: '200' },
    verifier: createTokenVerifier({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer }),
  });
  try {
    const c = await SignalClient.connect(short.url);
    await until('the socket to close', () => c.closeCode);
    assert.is(c.closeCode, 4000);
  } finally {
    await short.close();
  }
});

test.run();
