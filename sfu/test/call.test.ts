// Group calls with real browsers: three headless chromium participants (fake camera and
// microphone, mediasoup-client) in one call through an in-process SFU. Media flow is asserted by
// growing inbound RTP byte counts; server state through the SFU's stats().
import './support/worker_bin.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTokenVerifier } from '../src/auth.js';
import { BrowserParticipant, browserSkipReason, launchBrowser, type Browser } from './support/browser.js';
import { startTestIssuer, type TestIssuer } from './support/jwks.js';
import { startTestSfu, until, type TestSfu } from './support/sfu.js';

const ROOM = '!group:test.hearth';
const skip = browserSkipReason();
if (skip) console.log(`SKIP call.test.ts: ${skip}`);
const it = skip ? test.skip : test;

let issuer: TestIssuer;
let env: TestSfu;
let browser: Browser;
let alice: BrowserParticipant;
let bob: BrowserParticipant;
let carol: BrowserParticipant;

test.before(async () => {
  if (skip) return;
  issuer = await startTestIssuer();
  env = await startTestSfu({ verifier: createTokenVerifier({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer }) });
  browser = await launchBrowser({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] });
});
test.after(async () => {
  if (skip) return;
  await browser?.close();
  await env?.close();
  await issuer?.close();
});

const callStats = () => env.sfu.stats().calls.find((c) => c.roomId === ROOM);
const participantStats = (id: string) => callStats()?.participants.find((p) => p.participantId === id);

async function joinAs(name: string, opts: { forceTcp?: boolean } = {}): Promise<BrowserParticipant> {
  const p = await BrowserParticipant.open(browser, name);
  const token = await issuer.sign({ userId: `@${name}:test.hearth`, deviceId: `${name.toUpperCase()}DEV`, roomId: ROOM });
  await p.join(env.url, token, ROOM, opts);
  return p;
}

it('three participants each receive the other two\'s audio and video (one of them over TCP)', async () => {
  alice = await joinAs('alice');
  bob = await joinAs('bob');
  carol = await joinAs('carol', { forceTcp: true });
  for (const p of [alice, bob, carol]) {
    await p.run((c) => c.startMicrophone());
    await p.run((c) => c.startCamera());
  }
  for (const receiver of [alice, bob, carol]) {
    for (const sender of [alice, bob, carol]) {
      if (receiver !== sender) await receiver.waitForMediaFrom(sender.participantId, ['microphone', 'camera']);
    }
  }
  const stats = callStats()!;
  assert.is(stats.participants.length, 3);
  for (const p of stats.participants) {
    assert.equal(p.producers.map((pr) => pr.source).sort(), ['camera', 'microphone']);
    assert.is(p.consumers.length, 4, 'two sources from each of the two others');
    assert.ok(p.consumers.every((c) => !c.paused), 'every consumer resumed by its client');
    assert.equal(p.transports.map((t) => t.dtlsState), ['connected', 'connected']);
  }
  assert.equal(participantStats(carol.participantId)!.transports.map((t) => t.protocol), ['tcp', 'tcp']);
  assert.equal(participantStats(alice.participantId)!.transports.map((t) => t.protocol), ['udp', 'udp']);
});

it('a screen share from one participant appears at the others, and goes when stopped', async () => {
  const screenId: string = await alice.run((c) => c.startScreen());
  await bob.waitForMediaFrom(alice.participantId, ['screen']);
  await carol.waitForMediaFrom(alice.participantId, ['screen']);
  const seen = await bob.waitForNotification('producerAdded', (n) => n.producerId === screenId);
  assert.equal(seen, { participantId: alice.participantId, producerId: screenId, kind: 'video', source: 'screen', paused: false });

  await alice.run((c) => c.stop('screen'));
  for (const p of [bob, carol]) {
    await p.waitForNotification('producerClosed', (n) => n.producerId === screenId && n.source === 'screen');
    await p.waitForNotification('consumerClosed', (n) => n.producerId === screenId);
  }
  await until('screen consumers to be released', () =>
    callStats()!.participants.every((p) => p.consumers.every((c) => c.source !== 'screen')),
  );
});

it('mute and camera off are seen by the others: producerPaused notifications and paused consumers', async () => {
  const micId: string = await alice.run((c) => c.producers.get('microphone').id);
  const camId: string = await alice.run((c) => c.producers.get('camera').id);
  await alice.run((c) => c.pause('microphone'));
  await alice.run((c) => c.pause('camera'));
  for (const p of [bob, carol]) {
    await p.waitForNotification('producerPaused', (n) => n.producerId === micId && n.source === 'microphone' && n.participantId === alice.participantId);
    await p.waitForNotification('producerPaused', (n) => n.producerId === camId && n.source === 'camera');
    await until(`${p.name}'s consumers of alice to be paused by their producer`, () => {
      const cs = participantStats(p.participantId)!.consumers.filter((c) => c.producerId === micId || c.producerId === camId);
      return cs.length === 2 && cs.every((c) => c.producerPaused);
    });
  }
  assert.equal(
    participantStats(alice.participantId)!.producers.map((p) => p.paused),
    [true, true],
  );
  // Unmute: notifications, and media from alice flows again.
  await alice.run((c) => c.resume('microphone'));
  await alice.run((c) => c.resume('camera'));
  for (const p of [bob, carol]) {
    await p.waitForNotification('producerResumed', (n) => n.producerId === micId);
    await p.waitForNotification('producerResumed', (n) => n.producerId === camId);
    await p.waitForMediaFrom(alice.participantId, ['microphone', 'camera']);
  }
});

it('an ICE restart (network change) keeps the transports connected and media flowing', async () => {
  const before = participantStats(bob.participantId)!.transports.map((t) => t.transportId);
  await bob.run((c) => c.restartIce());
  await until('bob\'s transports to be connected after the restart', async () =>
    (await bob.run((c) => c.transportStates())).every((s: string) => s === 'connected'),
  );
  assert.equal(participantStats(bob.participantId)!.transports.map((t) => t.transportId), before, 'same transports, new ICE credentials');
  await bob.waitForMediaFrom(alice.participantId, ['microphone', 'camera']);
  await alice.waitForMediaFrom(bob.participantId, ['microphone', 'camera']);
});

it('leaving releases the transports, producers and consumers on the server; a dead socket too', async () => {
  await carol.run((c) => c.leave());
  for (const p of [alice, bob]) await p.waitForNotification('participantLeft', (n) => n.participantId === carol.participantId);
  await until('consumers of carol to be released', () => {
    const s = callStats()!;
    return s.participants.length === 2 && s.participants.every((p) => p.consumers.length === 2);
  });
  assert.ok(!participantStats(carol.participantId));
  await carol.close();

  // Bob's page goes away without a goodbye: the socket closes and the SFU cleans up.
  await bob.close();
  await alice.waitForNotification('participantLeft', (n) => n.participantId === bob.participantId);
  // Consumers close when the worker reports their producer closed (asynchronously).
  await until('bob and the consumers of his media to be gone', () => {
    const s = callStats()!;
    return s.participants.length === 1 && s.participants[0]!.consumers.length === 0;
  });
  const a = participantStats(alice.participantId)!;
  assert.is(a.transports.length, 2);
  await alice.close();
  await until('the call to close with its last participant', () => !callStats());
  assert.equal(env.sfu.pool.stats().map((w) => w.routers), [0], 'the router is closed');
});

test.run();
