import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, type TestServer } from './support/harness.js';
import { eventually, startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, bodies, enc, ok, send, type User } from './support/rooms.js';
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

/** support/rooms.ts helpers on the Dendrite client API (they only use `request`). */
const den = (d: DendritePeer) => d as unknown as TestServer;

beforeAll(t, async (ctx) => {
  // An IP-literal name for Hearth: Dendrite resolves through getaddrinfo, which knows no *.localhost here.
  ctx.cluster = await startFederationCluster(['hs-h'], { hostname: () => '127.0.0.1' });
  ctx.h = ctx.cluster.get('hs-h');
  ctx.d = await startDendrite(ctx.cluster);
  ctx.alice = await registerUser(ts(ctx.h), 'alice');
  ctx.dan = await registerUser(den(ctx.d), 'dan');
});
t.after(async (ctx) => {
  await ctx.d?.stop();
  await ctx.cluster?.close();
});

/** Bodies of the messages in a /messages page (newest first) read on `s` by `u`. */
async function history(s: TestServer, u: User, roomId: string): Promise<string[]> {
  return bodies(ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100`), 'messages').chunk);
}

/** Waits until `u` on `s` sees a message with `body` in the room (read through /messages). */
async function seen(s: TestServer, u: User, roomId: string, body: string, what: string): Promise<void> {
  await eventually(async () => (await history(s, u, roomId)).includes(body), what, 300, 100);
}

/** Waits until `who` is joined to the room as `u` on `s` sees it. */
async function joinedOn(s: TestServer, u: User, roomId: string, who: string, what: string): Promise<void> {
  await eventually(async () => {
    const m = ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/members`)).chunk as any[];
    return m.some((e) => e.state_key === who && e.content.membership === 'join');
  }, what, 300, 100);
}

/** Hearth accepted every event it holds of the room (Dendrite's signatures, hashes and auth all checked out). */
async function noneRejected(h: FederationTestServer, roomId: string): Promise<void> {
  const bad = await h.hs.deps.db.query<{ event_id: string; type: string; rejected_reason: string | null; soft_failed: boolean }>(
    'select event_id, type, rejected_reason, soft_failed from events where room_id = ? and (rejected_reason is not null or soft_failed)',
    [roomId],
  );
  assert.equal(bad, [], 'no event of the room rejected or soft-failed on Hearth');
}

const stateKeys = (events: any[]) => events.map((e) => `${e.type}|${e.state_key}|${e.event_id}`).sort();

t('alice on Hearth invites dan on Dendrite; dan joins through Hearth; messages both ways; same state', async (ctx) => {
  const { h, d, alice, dan } = ctx;
  ctx.roomA = ok(await api(ts(h), alice, 'POST', '/createRoom', { name: 'Hearth room', preset: 'private_chat', room_version: '11' })).room_id;
  await send(ts(h), alice, ctx.roomA, 'hello before dan');
  h.federationRequests.length = 0;
  ok(await api(ts(h), alice, 'POST', `/rooms/${enc(ctx.roomA)}/invite`, { user_id: dan.user_id }), 'invite dan');
  await eventually(async () => ok(await api(den(d), dan, 'GET', '/sync?timeout=0')).rooms?.invite?.[ctx.roomA] !== undefined, 'the invite reaches Dendrite', 300, 100);
  const joined = await api(den(d), dan, 'POST', `/join/${enc(ctx.roomA)}?server_name=${enc(h.serverName)}`, {});
  assert.is(joined.status, 200, `dan joins: ${JSON.stringify(joined.body)}\n${d.logTail()}`);
  await joinedOn(ts(h), alice, ctx.roomA, dan.user_id, 'Hearth sees dan\'s join');
  // The join came through Hearth's federation API, from Dendrite.
  const fromDendrite = h.federationRequests.filter((r) => r.origin === d.serverName).map((r) => `${r.method} ${r.url.split('?')[0]!.split('/').slice(0, 5).join('/')}`);
  assert.ok(fromDendrite.includes('GET /_matrix/federation/v1/make_join'), `make_join from Dendrite (got ${JSON.stringify(fromDendrite)})`);
  assert.ok(fromDendrite.includes('PUT /_matrix/federation/v2/send_join'), 'send_join v2 from Dendrite');

  await send(den(d), dan, ctx.roomA, 'from dan on Dendrite');
  await seen(ts(h), alice, ctx.roomA, 'from dan on Dendrite', 'Hearth receives dan\'s message');
  await send(ts(h), alice, ctx.roomA, 'from alice on Hearth');
  await seen(den(d), dan, ctx.roomA, 'from alice on Hearth', 'Dendrite receives alice\'s message');
  // Dendrite backfills what came before dan's join from Hearth (GET /backfill) on its first /messages.
  const expected = ['from alice on Hearth', 'from dan on Dendrite', 'hello before dan'];
  assert.equal((await history(den(d), dan, ctx.roomA)).slice(0, 3), expected, 'same history on Dendrite');
  assert.equal((await history(ts(h), alice, ctx.roomA)).slice(0, 3), expected, 'same history on Hearth');
  assert.ok(h.federationRequests.some((r) => r.origin === d.serverName && r.method === 'GET' && decodeURIComponent(r.url).startsWith(`/_matrix/federation/v1/backfill/${ctx.roomA}?`)), 'Dendrite backfilled from Hearth');
  // Both servers hold the same current state, event for event.
  const onDendrite = ok(await api(den(d), dan, 'GET', `/rooms/${enc(ctx.roomA)}/state`)) as any[];
  assert.equal(stateKeys(onDendrite), stateKeys(ok(await api(ts(h), alice, 'GET', `/rooms/${enc(ctx.roomA)}/state`))), 'same state on both servers');
  await noneRejected(h, ctx.roomA);
});

t('dan creates a room on Dendrite (its default version), invites alice; alice joins through Dendrite and backfills', async (ctx) => {
  const { h, d, alice, dan } = ctx;
  ctx.roomB = ok(await api(den(d), dan, 'POST', '/createRoom', { name: 'Dendrite room', preset: 'private_chat' })).room_id;
  const version = ok(await api(den(d), dan, 'GET', `/rooms/${enc(ctx.roomB)}/state/m.room.create/`)).room_version;
  assert.is(version, '10', 'Dendrite 0.13\'s default room version');
  for (let i = 1; i <= 4; i++) await send(den(d), dan, ctx.roomB, `dendrite history ${i}`);
  ok(await api(den(d), dan, 'POST', `/rooms/${enc(ctx.roomB)}/invite`, { user_id: alice.user_id }), 'invite alice');
  await eventually(async () => ok(await api(ts(h), alice, 'GET', '/sync?timeout=0')).rooms?.invite?.[ctx.roomB] !== undefined, 'the invite reaches Hearth', 300, 100);
  const inv = ok(await api(ts(h), alice, 'GET', '/sync?timeout=0')).rooms.invite[ctx.roomB];
  assert.ok(inv.invite_state.events.some((e: any) => e.type === 'm.room.name' && e.content.name === 'Dendrite room'), 'stripped state from Dendrite');
  const joined = await api(ts(h), alice, 'POST', `/join/${enc(ctx.roomB)}?server_name=${enc(d.serverName)}`, {});
  assert.is(joined.status, 200, `alice joins through Dendrite: ${JSON.stringify(joined.body)}\n${d.logTail()}`);
  await joinedOn(den(d), dan, ctx.roomB, alice.user_id, 'Dendrite sees alice\'s join');
  const name = ok(await api(ts(h), alice, 'GET', `/rooms/${enc(ctx.roomB)}/state/m.room.name/`));
  assert.is(name.name, 'Dendrite room', 'Hearth has the room state from send_join');
  const got = await history(ts(h), alice, ctx.roomB);
  assert.equal(got.filter((b) => b.startsWith('dendrite history')), ['dendrite history 4', 'dendrite history 3', 'dendrite history 2', 'dendrite history 1'], `backfilled from Dendrite (got ${JSON.stringify(got)})`);
  const onDendrite = ok(await api(den(d), dan, 'GET', `/rooms/${enc(ctx.roomB)}/state`)) as any[];
  assert.equal(stateKeys(ok(await api(ts(h), alice, 'GET', `/rooms/${enc(ctx.roomB)}/state`))), stateKeys(onDendrite), 'same state on both servers');
  await noneRejected(h, ctx.roomB);
});

t('messages, reactions and redactions both ways in the Dendrite room', async (ctx) => {
  const { h, d, alice, dan, roomB } = ctx;
  const fromAlice = await send(ts(h), alice, roomB, 'alice in the Dendrite room');
  await seen(den(d), dan, roomB, 'alice in the Dendrite room', 'Dendrite receives alice\'s message');
  const fromDan = await send(den(d), dan, roomB, 'dan answers');
  await seen(ts(h), alice, roomB, 'dan answers', 'Hearth receives dan\'s message');

  const reactionOf = async (s: TestServer, u: User, target: string, key: string) => {
    const chunk = ok(await api(s, u, 'GET', `/rooms/${enc(roomB)}/messages?dir=b&limit=100`)).chunk as any[];
    return chunk.find((e) => e.type === 'm.reaction' && e.content?.['m.relates_to']?.event_id === target && e.content['m.relates_to'].key === key);
  };
  const danReaction = await send(den(d), dan, roomB, { 'm.relates_to': { rel_type: 'm.annotation', event_id: fromAlice, key: '👍' } }, 'm.reaction');
  await eventually(async () => (await reactionOf(ts(h), alice, fromAlice, '👍'))?.event_id === danReaction, 'Hearth receives dan\'s reaction', 300, 100);
  const aliceReaction = await send(ts(h), alice, roomB, { 'm.relates_to': { rel_type: 'm.annotation', event_id: fromDan, key: '🎉' } }, 'm.reaction');
  await eventually(async () => (await reactionOf(den(d), dan, fromDan, '🎉'))?.event_id === aliceReaction, 'Dendrite receives alice\'s reaction', 300, 100);
  const rel = ok(await ts(h).request('GET', `/_matrix/client/v1/rooms/${enc(roomB)}/relations/${enc(fromAlice)}/m.annotation`, { token: alice.access_token }));
  assert.equal(rel.chunk.map((e: any) => e.event_id), [danReaction], 'Hearth relates dan\'s reaction to alice\'s message');

  // Each side redacts its own message; the other side's copy loses its content.
  const redact = async (s: TestServer, u: User, eventId: string) =>
    ok(await api(s, u, 'PUT', `/rooms/${enc(roomB)}/redact/${enc(eventId)}/${Date.now()}r`, { reason: 'oops' }), 'redact').event_id as string;
  const redactedOn = async (s: TestServer, u: User, eventId: string) => {
    const e = ok(await api(s, u, 'GET', `/rooms/${enc(roomB)}/event/${enc(eventId)}`));
    return e.content.body === undefined && e.unsigned?.redacted_because !== undefined;
  };
  await redact(ts(h), alice, fromAlice);
  await eventually(() => redactedOn(den(d), dan, fromAlice), 'Dendrite applies alice\'s redaction', 300, 100);
  await redact(den(d), dan, fromDan);
  await eventually(() => redactedOn(ts(h), alice, fromDan), 'Hearth applies dan\'s redaction', 300, 100);
  assert.not.ok(await redactedOn(ts(h), alice, danReaction), 'other events stay');
  await noneRejected(h, roomB);
});

t('EDUs: dan\'s typing reaches Hearth, alice\'s read receipt reaches Dendrite', async (ctx) => {
  const { h, d, alice, dan, roomB } = ctx;
  ok(await api(den(d), dan, 'PUT', `/rooms/${enc(roomB)}/typing/${enc(dan.user_id)}`, { typing: true, timeout: 30000 }), 'typing');
  let since: string | undefined;
  await eventually(async () => {
    const sync = ok(await api(ts(h), alice, 'GET', `/sync?timeout=0${since ? `&since=${enc(since)}` : ''}`));
    since = sync.next_batch;
    const typing = (sync.rooms?.join?.[roomB]?.ephemeral?.events ?? []).find((e: any) => e.type === 'm.typing');
    return typing?.content.user_ids.includes(dan.user_id) === true;
  }, 'Hearth shows dan typing', 300, 100);

  const last = await send(den(d), dan, roomB, 'read me');
  await seen(ts(h), alice, roomB, 'read me', 'Hearth receives the message');
  ok(await api(ts(h), alice, 'POST', `/rooms/${enc(roomB)}/receipt/m.read/${enc(last)}`, {}), 'receipt');
  let danSince: string | undefined;
  await eventually(async () => {
    const sync = ok(await api(den(d), dan, 'GET', `/sync?timeout=0${danSince ? `&since=${enc(danSince)}` : ''}`));
    danSince = sync.next_batch;
    const receipts = (sync.rooms?.join?.[roomB]?.ephemeral?.events ?? []).find((e: any) => e.type === 'm.receipt');
    return receipts?.content?.[last]?.['m.read']?.[alice.user_id] !== undefined;
  }, 'Dendrite shows alice\'s read receipt', 300, 100);
});

t.run();
