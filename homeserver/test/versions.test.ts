import * as assert from 'uvu/assert';
import { api, createRoom, enc, invite, join, ok, send, suiteWithUsers } from './support/rooms.js';

/** What protocol-spec/versions.md's audit allows: every version through v1.11. */
const EXPECTED = ['v1.1', 'v1.2', 'v1.3', 'v1.4', 'v1.5', 'v1.6', 'v1.7', 'v1.8', 'v1.9', 'v1.10', 'v1.11'];

const t = suiteWithUsers('/versions (v1.1 … v1.11) and what the later versions add', ['alice', 'bob'] as const);

t('/versions lists v1.1 through v1.11, with or without an access token (v1.10)', async ({ s, alice }) => {
  const anon = await s.request('GET', '/_matrix/client/versions');
  assert.is(anon.status, 200);
  assert.equal(anon.body.versions, EXPECTED);
  assert.equal(anon.body.unstable_features, {});
  const authed = await s.request('GET', '/_matrix/client/versions', { token: alice.access_token });
  assert.is(authed.status, 200, 'an access token is accepted (spec v1.10)');
  assert.equal(authed.body.versions, EXPECTED);
});

t('unsigned.membership (v1.11): the requester\'s membership in the state after each event', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  const beforeInvite = await send(s, alice, roomId, 'before the invite');
  await invite(s, alice, roomId, bob.user_id);
  const whileInvited = await send(s, alice, roomId, 'while bob is invited');
  await join(s, bob, roomId);
  const joined = await send(s, alice, roomId, 'bob is here');
  ok(await api(s, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'bob leaves');
  await join(s, bob, roomId);

  const page = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`), 'messages');
  const m = new Map<string, any>(page.chunk.map((e: any) => [e.event_id, e]));
  assert.is(m.get(beforeInvite).unsigned.membership, 'leave', 'no member event yet → leave');
  assert.is(m.get(whileInvited).unsigned.membership, 'invite');
  assert.is(m.get(joined).unsigned.membership, 'join');
  const bobMembers = page.chunk.filter((e: any) => e.type === 'm.room.member' && e.state_key === bob.user_id);
  assert.equal(
    bobMembers.map((e: any) => [e.content.membership, e.unsigned.membership]),
    [['join', 'join'], ['leave', 'leave'], ['join', 'join'], ['invite', 'invite']],
    "a member event's own change counts",
  );
  // The same event as alice sees it: her membership, not bob's.
  const asAlice = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/event/${enc(beforeInvite)}`), 'event');
  assert.is(asAlice.unsigned.membership, 'join');
  const asBob = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(whileInvited)}`), 'event');
  assert.is(asBob.unsigned.membership, 'invite');
  // And in a sync timeline.
  const sync = ok(await api(s, bob, 'GET', `/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 50 } } }))}`), 'sync');
  const tl = new Map<string, any>(sync.rooms.join[roomId].timeline.events.map((e: any) => [e.event_id, e]));
  assert.is(tl.get(joined)?.unsigned.membership, 'join');
  assert.is(tl.get(whileInvited)?.unsigned.membership, 'invite');
});

t('items of v1.7 and v1.11 a server must get right, and optional ones not offered', async ({ s, alice }) => {
  // v1.11: the login type must be one GET /login lists (only m.login.password).
  const flows = ok(await s.request('GET', '/_matrix/client/v3/login'), 'login flows');
  assert.equal(flows.flows.map((f: any) => f.type), ['m.login.password']);
  const tokenLogin = await s.request('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.token', token: 'x' } });
  assert.is(tokenLogin.status, 400);
  assert.is(tokenLogin.body.errcode, 'M_UNKNOWN');
  // v1.11 clarification: the async upload needs an access token.
  const anonUpload = await s.request('PUT', '/_matrix/media/v3/upload/hearth.test/abc', { rawBody: 'x', headers: { 'content-type': 'text/plain' } });
  assert.is(anonUpload.status, 401);
  assert.is(anonUpload.body.errcode, 'M_MISSING_TOKEN');
  // v1.7 get_token is optional: the capability says disabled and the endpoint is unknown.
  const caps = ok(await api(s, alice, 'GET', '/capabilities'), 'capabilities');
  assert.equal(caps.capabilities['m.get_login_token'], { enabled: false });
  const getToken = await s.request('POST', '/_matrix/client/v1/login/get_token', { token: alice.access_token, body: {} });
  assert.is(getToken.status, 404);
  assert.is(getToken.body.errcode, 'M_UNRECOGNIZED');
  // v1.10 support discovery is optional: 404 = no support information.
  assert.is((await s.request('GET', '/.well-known/matrix/support')).status, 404);
});

t.run();
