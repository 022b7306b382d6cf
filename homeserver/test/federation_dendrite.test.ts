import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, send, type User } from './support/rooms.js';
import { aliceJoinsPeerRoom, history, noneRejected, peerServer, reactionsAndRedactionsBothWays, remoteJoinsHearthRoom, sameState, seen, typingAndReceipts, type Interop } from './support/interop.js';
import { startDendrite, type DendritePeer } from './support/dendrite.js';

/**
 * Interop with Dendrite (the Go homeserver), a second independent implementation next to Synapse,
 * run as a real child process: a Hearth room joined from Dendrite (Dendrite's make_join/send_join
 * against Hearth), a Dendrite room joined from Hearth (Hearth's against Dendrite) with backfill,
 * messages, a reaction and a redaction both ways, and typing/receipt EDUs, each checked through both
 * servers' client APIs. One Dendrite for the whole file (about a second to start).
 */
type Ctx = { cluster: FederationCluster; h: FederationTestServer; d: DendritePeer; alice: User; dan: User; roomA: string; roomB: string };
const t = suite<Ctx>('federation: interop with Dendrite');

beforeAll(t, async (ctx) => {
  // An IP-literal name for Hearth: Dendrite resolves through getaddrinfo, which knows no *.localhost here.
  ctx.cluster = await startFederationCluster(['hs-h'], { hostname: () => '127.0.0.1' });
  ctx.h = ctx.cluster.get('hs-h');
  ctx.d = await startDendrite(ctx.cluster);
  ctx.alice = await registerUser(ts(ctx.h), 'alice');
  ctx.dan = await registerUser(peerServer(ctx.d), 'dan');
});
t.after(async (ctx) => {
  await ctx.d?.stop();
  await ctx.cluster?.close();
});

/** The pairing the shared steps of support/interop.ts run on. */
const pair = (ctx: Ctx): Interop => ({ h: ctx.h, alice: ctx.alice, peer: ctx.d, peerName: 'Dendrite', remote: ctx.dan, remoteName: 'dan' });

t('alice on Hearth invites dan on Dendrite; dan joins through Hearth; messages both ways; same state', async (ctx) => {
  const { h, d, alice, dan } = ctx;
  ctx.roomA = ok(await api(ts(h), alice, 'POST', '/createRoom', { name: 'Hearth room', preset: 'private_chat', room_version: '11' })).room_id;
  await send(ts(h), alice, ctx.roomA, 'hello before dan');
  await remoteJoinsHearthRoom(pair(ctx), ctx.roomA);

  await send(peerServer(d), dan, ctx.roomA, 'from dan on Dendrite');
  await seen(ts(h), alice, ctx.roomA, 'from dan on Dendrite', 'Hearth receives dan\'s message');
  await send(ts(h), alice, ctx.roomA, 'from alice on Hearth');
  await seen(peerServer(d), dan, ctx.roomA, 'from alice on Hearth', 'Dendrite receives alice\'s message');
  // Dendrite backfills what came before dan's join from Hearth (GET /backfill) on its first /messages.
  const expected = ['from alice on Hearth', 'from dan on Dendrite', 'hello before dan'];
  assert.equal((await history(peerServer(d), dan, ctx.roomA)).slice(0, 3), expected, 'same history on Dendrite');
  assert.equal((await history(ts(h), alice, ctx.roomA)).slice(0, 3), expected, 'same history on Hearth');
  assert.ok(h.federationRequests.some((r) => r.origin === d.serverName && r.method === 'GET' && decodeURIComponent(r.url).startsWith(`/_matrix/federation/v1/backfill/${ctx.roomA}?`)), 'Dendrite backfilled from Hearth');
  // Both servers hold the same current state, event for event.
  await sameState(pair(ctx), ctx.roomA);
  await noneRejected(h, ctx.roomA);
});

t('dan creates a room on Dendrite (its default version), invites alice; alice joins through Dendrite and backfills', async (ctx) => {
  // Dendrite's default room version: no room_version in /createRoom.
  ctx.roomB = await aliceJoinsPeerRoom(pair(ctx));
  const version = ok(await api(peerServer(ctx.d), ctx.dan, 'GET', `/rooms/${enc(ctx.roomB)}/state/m.room.create/`)).room_version;
  assert.is(version, '10', 'Dendrite 0.13\'s default room version');
  await sameState(pair(ctx), ctx.roomB);
});

t('messages, reactions and redactions both ways in the Dendrite room', async (ctx) => {
  await reactionsAndRedactionsBothWays(pair(ctx), ctx.roomB);
});

t('EDUs: dan\'s typing reaches Hearth, alice\'s read receipt reaches Dendrite', async (ctx) => {
  await typingAndReceipts(pair(ctx), ctx.roomB);
});

t.run();
