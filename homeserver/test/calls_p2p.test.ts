// A 1:1 Matrix VoIP call between two real chromium pages, forced through a real coturn
// (iceTransportPolicy 'relay'), with TURN credentials from this homeserver's /voip/turnServer and
// all signalling as m.call.* events in a real room (spec "Voice over IP"; protocol-spec/calls.md).
// The pages run packages/browser-testing/pages/matrix_p2p_call.ts: they PUT their events and read
// the other side's from long-poll /sync themselves.
import { createHmac, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { bundleForBrowser, launchBrowser, loadTestPage, newCallPage, type Browser, type Page } from '@hearth/browser-testing';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, createRoom, enc, join, ok, type User } from './support/rooms.js';
import { startCoturn, type Coturn } from './support/coturn.js';

const PAGE_ENTRY = fileURLToPath(import.meta.resolve('@hearth/browser-testing/pages/matrix_p2p_call.ts'));
const SECRET = randomBytes(24).toString('hex');

interface Ctx {
  coturn: Coturn;
  s: TestServer;
  alice: User;
  bob: User;
  roomId: string;
  browser: Browser;
  pageA: Page;
  pageB: Page;
  logs: string[];
}

const t = suite<Ctx>('1:1 call through coturn');

/** What each page sent and received, its errors, and the page and coturn logs: for failure messages. */
async function diagnostics(ctx: Ctx): Promise<string> {
  const peers = await Promise.all(
    [ctx.pageA, ctx.pageB].map((p) =>
      p
        .evaluate(() => {
          const peer = (globalThis as any).peer;
          return { sent: peer.sent, received: peer.received.map((e: any) => `${e.type} ${e.content.call_id}`), errors: peer.errors, callId: peer.callId };
        })
        .catch((err: Error) => err.message),
    ),
  );
  return `alice: ${JSON.stringify(peers[0])}\nbob: ${JSON.stringify(peers[1])}\npage log:\n${ctx.logs.slice(-40).join('\n')}\ncoturn:\n${ctx.coturn.log().slice(-2000)}`;
}

/** Polls `probe` until `done` holds; the deadline only turns a hang into a failure message. */
async function until<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, ctx: Ctx): Promise<T> {
  const deadline = Date.now() + 45_000;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (done(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: never happened; last ${JSON.stringify(last)}\n${await diagnostics(ctx)}`);
}

/** `promise`, or a failure naming `what` (with the page and coturn logs) if it never settles. */
async function within<T>(what: string, promise: Promise<T>, ctx: Ctx): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => void diagnostics(ctx).then((d) => reject(new Error(`${what}: no result\n${d}`))), 45_000);
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}

const stats = (p: Page) => p.evaluate(() => (globalThis as any).peer.stats());
const peerField = (p: Page, field: string) => p.evaluate((f) => (globalThis as any).peer[f], field);

beforeAll(t, async (ctx) => {
  ctx.logs = [];
  ctx.coturn = await startCoturn({ secret: SECRET });
  ctx.s = await startTestServer({ HEARTH_TURN_URIS: ctx.coturn.uri, HEARTH_TURN_SHARED_SECRET: SECRET, HEARTH_TURN_TTL_SECONDS: '3600' });
  const baseUrl = await ctx.s.listen();
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
  ctx.roomId = await createRoom(ctx.s, ctx.alice, { preset: 'private_chat', invite: [ctx.bob.user_id], is_direct: true });
  await join(ctx.s, ctx.bob, ctx.roomId);

  const script = await bundleForBrowser(PAGE_ENTRY, { globalName: 'hearthCall' });
  ctx.browser = await launchBrowser();
  for (const [name, u, key] of [['alice', ctx.alice, 'pageA'], ['bob', ctx.bob, 'pageB']] as const) {
    const page = await newCallPage(ctx.browser, { onConsole: (l) => ctx.logs.push(`${name}: ${l}`) });
    await loadTestPage(page, { scripts: [script] });
    await page.evaluate(
      async (o) => {
        (globalThis as any).peer = await (globalThis as any).hearthCall.CallPeer.start(o);
      },
      { baseUrl, accessToken: u.access_token, userId: u.user_id, roomId: ctx.roomId, partyId: `${name}${randomBytes(4).toString('hex')}` },
    );
    ctx[key] = page;
  }
});

t.after(async (ctx) => {
  await ctx.browser?.close();
  await ctx.s?.close();
  await ctx.coturn?.stop();
});

/** The m.call.* events of one call as stored in the room (read back through /messages). */
async function callEvents(ctx: Ctx, callId: string): Promise<any[]> {
  const chunk = ok(await api(ctx.s, ctx.alice, 'GET', `/rooms/${enc(ctx.roomId)}/messages?dir=f&limit=200`), 'messages').chunk as any[];
  return chunk.filter((e) => e.type.startsWith('m.call.') && e.content.call_id === callId);
}

t('relayed on both ends, media flows, renegotiation adds a track, hangup ends it', async (ctx) => {
  const { pageA, pageB, alice, bob } = ctx;
  const callId = `call${randomBytes(6).toString('hex')}`;
  const answered = pageB.evaluate(() => (globalThis as any).peer.answerNextInvite());
  const bobParty = await within('alice calls, bob answers', pageA.evaluate(([c, invitee]) => (globalThis as any).peer.call(c, invitee), [callId, bob.user_id]), ctx);
  assert.is(await within('bob answers', answered, ctx), callId);

  // Connected over TURN relay candidates on both sides (relay policy: nothing else is allowed).
  for (const p of [pageA, pageB]) {
    const s = await until('relayed connection with audio and video', () => stats(p), (v: any) => v.connectionState === 'connected' && v.inboundBytes.audio > 0 && v.inboundBytes.video > 0, ctx);
    assert.is(s.local, 'relay');
    assert.is(s.remote, 'relay');
    await until('inbound RTP bytes grow', () => stats(p), (v: any) => v.inboundBytes.audio > s.inboundBytes.audio && v.inboundBytes.video > s.inboundBytes.video, ctx);
  }

  // m.call.negotiate: alice adds a second camera, bob answers, and bob receives two video streams.
  await within('renegotiation', pageA.evaluate(() => (globalThis as any).peer.addVideoTrack()), ctx);
  await until('a second video stream reaches bob', () => stats(pageB), (v: any) => v.videoStreams === 2, ctx);

  await pageA.evaluate(() => (globalThis as any).peer.hangup());
  await until('bob sees the hangup', () => peerField(pageB, 'hangupReason'), (v) => v === 'user_hangup', ctx);
  assert.is(await pageB.evaluate(() => (globalThis as any).peer.pc.connectionState), 'closed');
  assert.equal(await peerField(pageA, 'errors'), []);
  assert.equal(await peerField(pageB, 'errors'), []);

  // Everything went through the room, in the spec's shapes.
  const events = await callEvents(ctx, callId);
  const of = (type: string, sender: string) => events.filter((e) => e.type === type && e.sender === sender);
  for (const e of events) {
    assert.is(e.content.version, '1', e.type);
    assert.type(e.content.party_id, 'string');
  }
  const [invite] = of('m.call.invite', alice.user_id);
  assert.ok(invite, 'invite stored');
  assert.is(invite.content.offer.type, 'offer');
  assert.ok(invite.content.offer.sdp.startsWith('v=0'));
  assert.is(invite.content.lifetime, 90_000);
  assert.is(invite.content.invitee, bob.user_id);
  const [answer] = of('m.call.answer', bob.user_id);
  assert.is(answer.content.party_id, bobParty);
  assert.is(answer.content.answer.type, 'answer');
  assert.is(of('m.call.select_answer', alice.user_id)[0]?.content.selected_party_id, bobParty);
  for (const who of [alice.user_id, bob.user_id]) {
    const candidates = of('m.call.candidates', who).flatMap((e) => e.content.candidates);
    assert.ok(candidates.some((c: any) => / typ relay /.test(c.candidate)), `${who} sent relay candidates`);
    assert.ok(candidates.every((c: any) => !/ typ host /.test(c.candidate)), `${who} sent only relay candidates`);
    assert.is(candidates.at(-1).candidate, '', 'end-of-candidates');
  }
  assert.equal(of('m.call.negotiate', alice.user_id).map((e) => e.content.description.type), ['offer']);
  assert.equal(of('m.call.negotiate', bob.user_id).map((e) => e.content.description.type), ['answer']);
  assert.is(of('m.call.hangup', alice.user_id)[0]?.content.reason, 'user_hangup');
});

t('a second invite is rejected with m.call.reject', async (ctx) => {
  const { pageA, pageB, bob } = ctx;
  const callId = `call${randomBytes(6).toString('hex')}`;
  const rejected = pageB.evaluate(() => (globalThis as any).peer.rejectNextInvite());
  await within('alice calls, bob rejects', pageA.evaluate(([c, invitee]) => (globalThis as any).peer.call(c, invitee), [callId, bob.user_id]), ctx);
  assert.is(await within('bob rejects', rejected, ctx), callId);
  assert.is(await peerField(pageA, 'hangupReason'), 'rejected');
  assert.is(await pageA.evaluate(() => (globalThis as any).peer.pc.connectionState), 'closed');
  const events = await callEvents(ctx, callId);
  assert.ok(events.some((e) => e.type === 'm.call.invite' && e.sender === ctx.alice.user_id));
  assert.ok(events.some((e) => e.type === 'm.call.reject' && e.sender === bob.user_id));
  assert.not.ok(events.some((e) => e.type === 'm.call.answer'));
});

t('coturn refuses wrong and expired credentials: no relay candidates', async (ctx) => {
  const { pageA, alice } = ctx;
  const gather = (servers: unknown) => within('ICE gathering', pageA.evaluate((sv) => (globalThis as any).hearthCall.gatherCandidates(sv), servers), ctx);
  const servers = await pageA.evaluate(() => (globalThis as any).peer.turnServers());
  assert.is(servers.length, 1);
  const good = await gather(servers);
  assert.ok(good.types.includes('relay'), `the homeserver's credentials get a relay: ${JSON.stringify(good)}`);

  const wrong = await gather([{ ...servers[0], credential: `${servers[0].credential}x` }]);
  assert.equal(wrong.types, [], JSON.stringify(wrong));
  assert.ok(wrong.errors.includes(401), `coturn answered 401 Unauthorized: ${JSON.stringify(wrong)}`);
  // Expired: a correct HMAC for a username whose expiry has passed.
  const username = `${Math.floor(Date.now() / 1000) - 60}:${alice.user_id}`;
  const expired = await gather([{ urls: servers[0].urls, username, credential: createHmac('sha1', SECRET).update(username).digest('base64') }]);
  assert.equal(expired.types, [], JSON.stringify(expired));
  assert.ok(expired.errors.includes(401), `coturn answered 401 Unauthorized: ${JSON.stringify(expired)}`);
  // The same username scheme with a fresh expiry is accepted: the refusal above was the expiry.
  const fresh = `${Math.floor(Date.now() / 1000) + 60}:${alice.user_id}`;
  const valid = await gather([{ urls: servers[0].urls, username: fresh, credential: createHmac('sha1', SECRET).update(fresh).digest('base64') }]);
  assert.ok(valid.types.includes('relay'), JSON.stringify(valid));
});

t.run();
