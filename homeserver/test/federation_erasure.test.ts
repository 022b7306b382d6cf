import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventRow, inviteAndJoin, startClusterWithUsers, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, bodies, enc, ok, send, type User } from './support/rooms.js';

/**
 * Erased users over federation: alice on A is deactivated with `erase: true`; every read that
 * serves her events to other servers (send_join's state and auth chain, /backfill, /event,
 * /get_missing_events, /event_auth, /state) serves them redacted, keeping hashes and signatures,
 * so B still verifies and stores them (redacted, not rejected). Others' events go out whole.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; carol: User; bob: User };
const t = suite<Ctx>('federation: erased users');
const PASSWORD = 'correct horse battery';

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b'], { alice: 'hs-a', carol: 'hs-a', bob: 'hs-b' });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'] }, users);
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

async function eraseAccount(s: FederationTestServer, u: User): Promise<void> {
  const first = await api(ts(s), u, 'POST', '/account/deactivate', { erase: true });
  assert.is(first.status, 401);
  ok(await api(ts(s), u, 'POST', '/account/deactivate', {
    erase: true,
    auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: u.user_id }, password: PASSWORD, session: first.body.session },
  }), 'deactivate with erase');
}

type Pdu = { type: string; sender: string; content: Record<string, unknown>; hashes: { sha256: string }; signatures?: Record<string, unknown> };

t('alice is erased: B, joining later, gets her events redacted (yet verified and stored), carol\'s whole', async (ctx) => {
  const { a, b, alice, carol, bob } = ctx;
  ok(await api(ts(a), alice, 'PUT', `/profile/${enc(alice.user_id)}/displayname`, { displayname: 'Alice Secret' }));
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat', name: 'Erasure' })).room_id as string;
  ok(await api(ts(a), carol, 'POST', `/join/${enc(roomId)}`, {}));
  const aliceMsgs = [await send(ts(a), alice, roomId, 'alice one'), await send(ts(a), alice, roomId, 'alice two')];
  const carolMsg = await send(ts(a), carol, roomId, 'carol speaks');
  const aliceJoin = (await a.hs.deps.db.query<{ event_id: string }>(
    `select event_id from events where room_id = ? and type = 'm.room.member' and state_key = ? order by stream_ordering limit 1`,
    [roomId, alice.user_id],
  ))[0]!.event_id;
  assert.is((await eventRow(a, aliceJoin)).json.content.displayname, 'Alice Secret', 'A keeps the original');

  await eraseAccount(a, alice);
  await inviteAndJoin(a, carol, b, bob, roomId, { invite: false });

  // send_join: alice's join event (in the state and auth chain) reached B redacted, and verified.
  const joinOnB = await eventRow(b, aliceJoin);
  assert.equal(joinOnB.json.content, { membership: 'join' }, 'displayname gone in the send_join answer');
  assert.is(joinOnB.rejected, null);

  // Backfill through /messages.
  const page = ok(await api(ts(b), bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`));
  assert.ok(bodies(page.chunk).includes('carol speaks'), `carol's message arrives whole (got ${JSON.stringify(bodies(page.chunk))})`);
  for (const id of aliceMsgs) {
    const row = await eventRow(b, id);
    assert.equal(row.json.content, {}, 'alice\'s message stored redacted');
    assert.is(row.rejected, null, 'not rejected: the redacted copy verifies');
    assert.ok(row.streamOrdering !== null, 'in B\'s timeline (backfilled)');
    assert.ok(row.json.hashes?.sha256 && row.json.signatures?.[a.serverName], 'hashes and signatures kept');
  }
  assert.is((await eventRow(b, carolMsg)).json.content.body, 'carol speaks');
  const shown = page.chunk.filter((e: any) => aliceMsgs.includes(e.event_id));
  assert.is(shown.length, 2, 'bob sees both of alice\'s events');
  for (const e of shown) assert.equal(e.content, {}, 'empty to bob');

  // The other reads, asked directly as B.
  const client = b.hs.deps.services.federation.client;
  const get = (path: string, query?: Record<string, string>) => client.request({ destination: a.serverName, method: 'GET', path, ...(query ? { query } : {}) });
  const sha = async (id: string) => (await eventRow(a, id)).json.hashes.sha256 as string;

  const single = (await get(`/_matrix/federation/v1/event/${enc(aliceMsgs[0]!)}`)).pdus as Pdu[];
  assert.is(single.length, 1);
  assert.equal(single[0]!.content, {}, '/event: redacted');
  assert.is(single[0]!.sender, alice.user_id);
  assert.is(single[0]!.hashes.sha256, await sha(aliceMsgs[0]!), 'the original content hash stays');
  assert.ok(single[0]!.signatures?.[a.serverName], 'signature kept');
  const whole = (await get(`/_matrix/federation/v1/event/${enc(carolMsg)}`)).pdus as Pdu[];
  assert.is(whole[0]!.content.body, 'carol speaks', '/event: carol whole');

  const missing = (await client.request({
    destination: a.serverName,
    method: 'POST',
    path: `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`,
    body: { earliest_events: [], latest_events: [carolMsg], limit: 10 },
  })).events as Pdu[];
  const fromAlice = missing.filter((p) => p.sender === alice.user_id && p.type === 'm.room.message');
  assert.is(fromAlice.length, 2, 'get_missing_events returns alice\'s messages');
  for (const p of fromAlice) assert.equal(p.content, {}, 'get_missing_events: redacted');

  const authChain = (await get(`/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(carolMsg)}`)).auth_chain as Pdu[];
  const aliceMember = authChain.find((p) => p.type === 'm.room.member' && p.sender === alice.user_id);
  assert.ok(aliceMember, 'alice\'s join is in the auth chain');
  assert.equal(aliceMember!.content, { membership: 'join' }, 'event_auth: redacted, membership kept');
  const carolMember = authChain.find((p) => p.type === 'm.room.member' && p.sender === carol.user_id);
  assert.ok(carolMember?.content.displayname !== undefined, 'carol\'s member event whole');

  const state = await get(`/_matrix/federation/v1/state/${enc(roomId)}`, { event_id: carolMsg });
  const stateMember = (state.pdus as Pdu[]).find((p) => p.type === 'm.room.member' && p.sender === alice.user_id);
  assert.equal(stateMember?.content, { membership: 'join' }, '/state: redacted');
  const createEv = (state.pdus as Pdu[]).find((p) => p.type === 'm.room.create');
  assert.ok(createEv?.content.room_version !== undefined || createEv?.content.creator !== undefined, 'what redaction keeps stays');
  for (const p of state.auth_chain as Pdu[]) if (p.sender === alice.user_id && p.type === 'm.room.member') assert.equal(p.content, { membership: 'join' }, '/state auth chain: redacted');
});

t.run();
