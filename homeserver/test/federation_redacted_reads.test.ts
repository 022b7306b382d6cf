import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { craft, eventRow, eventually, inviteAndJoin, postTxn, startClusterWithUsers, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, newTxn, ok, putState, send, type User } from './support/rooms.js';
import { eventIdFor } from '../src/services/rooms/event_format.js';
import type { RoomVersionId } from '../src/services/rooms/pdu.js';

/**
 * Redacted events over federation: A keeps the original JSON of a redacted event and marks it
 * `redacted_by`; every read that serves it to another server (send_join's state and auth chain,
 * /backfill, /event, /get_missing_events, /event_auth, /state) serves its redacted form, which
 * still verifies (hashes and signatures kept, same reference hash). A redaction that does not
 * apply (its sender lacks the redact level and is on another server) leaves the event whole.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; c: FederationTestServer; alice: User; bob: User; cat: User };
const t = suite<Ctx>('federation: redacted events are served redacted');

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b', 'hs-c'], { alice: 'hs-a', bob: 'hs-b', cat: 'hs-c' });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'], c: servers['hs-c'] }, users);
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

type Pdu = { type: string; sender: string; state_key?: string; content: Record<string, unknown>; hashes: { sha256: string }; signatures?: Record<string, unknown> };

async function redact(s: FederationTestServer, u: User, roomId: string, eventId: string): Promise<string> {
  return ok(await api(ts(s), u, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(eventId)}/${newTxn()}`, { reason: 'oops' }), 'redact').event_id as string;
}

t('a redacted message, topic and member event reach a later server redacted, verified; an unauthorised redaction changes nothing', async (ctx) => {
  const { a, b, c, alice, bob, cat } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat', name: 'Redactions', room_version: '11' })).room_id as string;
  const version: RoomVersionId = '11';
  await inviteAndJoin(a, alice, b, bob, roomId, { invite: false });
  ok(await api(ts(a), alice, 'PUT', `/profile/${enc(alice.user_id)}/displayname`, { displayname: 'Alice Hidden' }));
  const aliceMember = (await a.hs.deps.db.query<{ event_id: string }>(
    `select event_id from current_state where room_id = ? and type = 'm.room.member' and state_key = ?`,
    [roomId, alice.user_id],
  ))[0]!.event_id;
  assert.is((await eventRow(a, aliceMember)).json.content.displayname, 'Alice Hidden');
  const topic = await putState(ts(a), alice, roomId, 'm.room.topic', '', { topic: 'classified topic' });
  const secret = await send(ts(a), alice, roomId, 'the secret body');
  const kept = await send(ts(a), alice, roomId, 'still whole');
  const redactions = [await redact(a, alice, roomId, secret), await redact(a, alice, roomId, topic), await redact(a, alice, roomId, aliceMember)];
  // The original JSON stays stored on A; the redaction is applied on read.
  assert.is((await eventRow(a, secret)).json.content.body, 'the secret body');
  assert.is((await eventRow(a, secret)).redactedBy, redactions[0]);

  // B already had the original: it gets the redaction through /send and applies it.
  await eventually(async () => (await eventRow(b, secret).catch(() => null))?.redactedBy === redactions[0], 'B applies the redaction it was sent');
  // bob (power 0, another server) redacts alice's message: allowed in the DAG, but it does not apply.
  await eventually(async () => (await eventRow(b, kept).catch(() => null)) !== null, 'B holds the kept message');
  await eventually(async () => (await eventRow(b, redactions[2]!).catch(() => null)) !== null, 'B holds the last redaction');
  const bogus = await craft(b, b, roomId, { type: 'm.room.redaction', sender: bob.user_id, content: { redacts: kept } });
  const answer = await postTxn(b, a, [bogus.pdu]);
  assert.equal(answer.pdus, { [bogus.id]: {} }, 'the unauthorised redaction is accepted into the DAG (redactions are checked when applied)');
  assert.is((await eventRow(a, bogus.id)).rejected, null);
  assert.is((await eventRow(a, kept)).redactedBy, null, 'and does not apply it');
  const last = await send(ts(a), alice, roomId, 'the latest');

  // C joins later: send_join's state and auth chain carry the redacted topic and member event.
  await inviteAndJoin(a, alice, c, cat, roomId, { invite: false });
  const topicOnC = await eventRow(c, topic);
  assert.equal(topicOnC.json.content, {}, 'send_join state: the topic arrives redacted');
  assert.is(topicOnC.rejected, null);
  assert.is(eventIdFor(topicOnC.json, version), topic, 'its reference hash is the original event id');
  const memberOnC = await eventRow(c, aliceMember);
  assert.equal(memberOnC.json.content, { membership: 'join' }, 'send_join: alice\'s member event redacted');
  assert.is(memberOnC.rejected, null);

  // Backfill through /messages.
  ok(await api(ts(c), cat, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`));
  const secretOnC = await eventRow(c, secret);
  assert.equal(secretOnC.json.content, {}, 'backfill: stored redacted');
  assert.is(secretOnC.rejected, null, 'not rejected: the redacted form verifies');
  assert.ok(secretOnC.streamOrdering !== null, 'in C\'s timeline (backfilled)');
  assert.is(secretOnC.json.hashes.sha256, (await eventRow(a, secret)).json.hashes.sha256, 'the original content hash stays');
  assert.ok(secretOnC.json.signatures?.[a.serverName], 'A\'s signature stays');
  assert.is(eventIdFor(secretOnC.json, version), secret, 'the event id verifies');
  assert.is((await eventRow(c, kept)).json.content.body, 'still whole', 'the unauthorised redaction left the message whole');

  // The other reads, asked directly as C.
  const client = c.hs.deps.services.federation.client;
  const get = (path: string, query?: Record<string, string>) => client.request({ destination: a.serverName, method: 'GET', path, ...(query ? { query } : {}) });
  const single = (await get(`/_matrix/federation/v1/event/${enc(secret)}`)).pdus as Pdu[];
  assert.equal(single[0]!.content, {}, '/event: redacted');
  assert.ok(single[0]!.signatures?.[a.serverName] && single[0]!.hashes.sha256, '/event: hashes and signatures kept');
  assert.is(((await get(`/_matrix/federation/v1/event/${enc(kept)}`)).pdus as Pdu[])[0]!.content.body, 'still whole', '/event: not redacted');

  const missing = (await client.request({
    destination: a.serverName,
    method: 'POST',
    path: `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`,
    body: { earliest_events: [], latest_events: [last], limit: 20 },
  })).events as Pdu[];
  const bodies = missing.filter((p) => p.type === 'm.room.message').map((p) => p.content.body ?? null);
  assert.ok(bodies.includes(null), `get_missing_events: the secret message is there, redacted (got ${JSON.stringify(bodies)})`);
  assert.not.ok(bodies.includes('the secret body'), 'get_missing_events: never whole');
  assert.ok(bodies.includes('still whole'));

  const authChain = (await get(`/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(last)}`)).auth_chain as Pdu[];
  const memberInChain = authChain.find((p) => p.type === 'm.room.member' && p.state_key === alice.user_id && p.content.displayname === undefined);
  assert.ok(memberInChain, 'event_auth: alice\'s member event redacted');
  assert.not.ok(authChain.some((p) => p.content.displayname === 'Alice Hidden'), 'event_auth: never whole');

  const state = await get(`/_matrix/federation/v1/state/${enc(roomId)}`, { event_id: last });
  const topicInState = (state.pdus as Pdu[]).find((p) => p.type === 'm.room.topic');
  assert.equal(topicInState?.content, {}, '/state: the topic redacted');
  const all = JSON.stringify([state.pdus, state.auth_chain]);
  assert.not.ok(all.includes('classified topic') || all.includes('Alice Hidden'), '/state: nothing redacted goes out whole');
});

t.run();
