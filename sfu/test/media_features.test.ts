// Browser tests of the SFU's media features: simulcast layers and preferred layers, active
// speaker notifications, and recovery from a killed mediasoup worker.
import './support/worker_bin.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { types } from 'mediasoup';
import { createTokenVerifier } from '../src/auth.js';
import { BrowserParticipant, browserSkipReason, launchBrowser, type Browser } from './support/browser.js';
import { startTestIssuer, type TestIssuer } from './support/jwks.js';
import { startTestSfu, until, type TestSfu } from './support/sfu.js';

const skip = browserSkipReason();
if (skip) console.log(`SKIP media_features.test.ts: ${skip}`);
const it = skip ? test.skip : test;

let issuer: TestIssuer;
let env: TestSfu;
let browser: Browser;
const open: BrowserParticipant[] = [];

test.before(async () => {
  if (skip) return;
  issuer = await startTestIssuer();
  env = await startTestSfu({ verifier: createTokenVerifier({ jwksUrl: issuer.jwksUrl, issuer: issuer.issuer }) });
  browser = await launchBrowser({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] });
});
test.after.each(async () => {
  if (skip) return;
  for (const p of open.splice(0)) await p.close();
  await until('every call to end', () => env.sfu.stats().calls.length === 0);
});
test.after(async () => {
  if (skip) return;
  await browser?.close();
  await env?.close();
  await issuer?.close();
});

async function joinAs(name: string, roomId: string, opts: { autoConsume?: boolean } = {}): Promise<BrowserParticipant> {
  const p = await BrowserParticipant.open(browser, name);
  open.push(p);
  await p.join(env.url, await token(name, roomId), roomId, opts);
  return p;
}
const token = (name: string, roomId: string) => issuer.sign({ userId: `@${name}:test.hearth`, deviceId: `${name.toUpperCase()}DEV`, roomId });

/** The producer object in the SFU, to read its RTP streams. */
function serverProducer(roomId: string, producerId: string): types.Producer {
  const producer = env.sfu.calls.get(roomId)?.findProducer(producerId);
  if (!producer) throw new Error(`no producer ${producerId}`);
  return producer;
}
function serverConsumer(roomId: string, consumerId: string): types.Consumer {
  for (const p of env.sfu.calls.get(roomId)?.participants.values() ?? []) {
    const c = p.consumers.get(consumerId);
    if (c) return c;
  }
  throw new Error(`no consumer ${consumerId}`);
}

it('simulcast: the camera producer has more than one active layer; a consumer follows its preferred layers', async () => {
  const room = '!simulcast:test.hearth';
  const sender = await joinAs('sender', room);
  const viewer = await joinAs('viewer', room, { autoConsume: false });
  const camId: string = await sender.run((c) => c.startCamera(true));
  assert.is(serverProducer(room, camId).type, 'simulcast');

  // Chromium sends fewer layers for a small source: at least two carry bytes (notes: r0 and r1 at 640x480).
  const activeRids = async () => {
    const stats = await serverProducer(room, camId).getStats();
    return stats.filter((s) => s.byteCount > 0).map((s) => s.rid);
  };
  const rids = await until('two simulcast layers to carry media', async () => {
    const r = await activeRids();
    return r.length >= 2 ? r : null;
  });
  assert.ok(rids.length >= 2, `active layers ${rids.join(',')}`);

  const consumerId: string = await viewer.run((c, id: string) => c.consume(id, { spatialLayer: 0 }), camId);
  const consumer = serverConsumer(room, consumerId);
  assert.is(consumer.type, 'simulcast');
  assert.equal(consumer.preferredLayers?.spatialLayer, 0);
  await until('the consumer to forward spatial layer 0', () => consumer.currentLayers?.spatialLayer === 0);

  await viewer.run((c, id: string) => c.setPreferredLayers(id, 1), consumerId);
  assert.equal(consumer.preferredLayers?.spatialLayer, 1);
  await until('the consumer to switch to spatial layer 1', () => consumer.currentLayers?.spatialLayer === 1);
  await viewer.waitForNotification('consumerLayersChanged', (n) => n.consumerId === consumerId && n.spatialLayer === 1);

  await viewer.run((c, id: string) => c.setPreferredLayers(id, 0), consumerId);
  await until('the consumer to go back to spatial layer 0', () => consumer.currentLayers?.spatialLayer === 0);
  await viewer.waitForMediaFrom(sender.participantId, ['camera']);
});

it('active speaker: the participant speaking (a tone) is announced to everyone by producer', async () => {
  const room = '!speakers:test.hearth';
  const speaker = await joinAs('speaker', room);
  const listener = await joinAs('listener', room);
  const micId: string = await speaker.run((c) => c.startTone());
  await listener.waitForMediaFrom(speaker.participantId, ['microphone']);
  for (const p of [listener, speaker]) {
    const n = await p.waitForNotification('activeSpeaker');
    assert.equal(n, { participantId: speaker.participantId, producerId: micId });
  }
});

it('a killed mediasoup worker is replaced; clients are told callClosed and a rejoin gets media flowing again', async () => {
  const room = '!recovery:test.hearth';
  const a = await joinAs('a', room);
  const b = await joinAs('b', room);
  await a.run((c) => c.startMicrophone());
  await a.run((c) => c.startCamera());
  await b.waitForMediaFrom(a.participantId, ['microphone', 'camera']);

  const [worker] = env.sfu.pool.workers();
  const oldPid = worker!.pid;
  process.kill(oldPid, 'SIGKILL');
  for (const p of [a, b]) assert.equal(await p.waitForNotification('callClosed'), { reason: 'worker_died' });
  assert.equal(env.sfu.stats().calls, [], 'the call on the dead worker is gone');
  const newPid = await until('a replacement worker', () => env.sfu.pool.workers()[0]?.pid);
  assert.is.not(newPid, oldPid);

  // Same sockets, fresh tokens: join again, produce again, media flows through the new worker.
  await a.join(env.url, await token('a', room), room);
  await b.join(env.url, await token('b', room), room);
  await a.run((c) => c.startMicrophone());
  await a.run((c) => c.startCamera());
  await b.waitForMediaFrom(a.participantId, ['microphone', 'camera']);
  assert.equal(env.sfu.pool.stats(), [{ pid: newPid, routers: 1 }]);
});

test.run();
