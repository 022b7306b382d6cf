// /account/deactivate with `erase: true` (spec v1.10) and without an access token (v1.11): an erased
// user's events are served redacted to users who were not joined when they were sent, their account
// data, profile and 3pids are gone; the unauthenticated form identifies the account by its password.
import * as assert from 'uvu/assert';
import pg from 'pg';
import { login } from './support/harness.js';
import { api, assertError, bodies, createRoom, enc, join, ok, send, suiteWithUsers } from './support/rooms.js';

const t = suiteWithUsers('erasure and deactivation', ['alice', 'bob', 'carol', 'dave', 'eve', 'frank']);
const PASSWORD = 'correct horse battery';

async function deactivate(s: any, u: any, extra: Record<string, unknown> = {}) {
  const first = await api(s, u, 'POST', '/account/deactivate', extra);
  assert.is(first.status, 401);
  return api(s, u, 'POST', '/account/deactivate', {
    ...extra,
    auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: u.user_id }, password: PASSWORD, session: first.body.session },
  });
}

async function sql<T>(s: any, f: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: s.databaseUrl });
  await db.connect();
  try {
    return await f(db);
  } finally {
    await db.end();
  }
}

t('erase: later joiners see the erased user’s events redacted; earlier members still see them', async ({ s, alice, bob, carol, dave }) => {
  const roomId = await createRoom(s, bob, { preset: 'public_chat' });
  await join(s, alice, roomId);
  await join(s, dave, roomId);
  const erasedMsg = await send(s, alice, roomId, 'alice was here');
  await send(s, dave, roomId, 'dave was here');
  ok(await api(s, alice, 'PUT', `/user/${enc(alice.user_id)}/account_data/org.example.secret`, { x: 1 }));
  ok(await api(s, alice, 'PUT', `/profile/${enc(alice.user_id)}/displayname`, { displayname: 'Alice A.' }));
  await sql(s, (db) => db.query(`insert into user_threepids (medium, address, user_id, validated_ts, added_ts) values ('email', 'alice@example.org', $1, 1, 1)`, [alice.user_id]));

  ok(await deactivate(s, alice, { erase: true }), 'erase');
  ok(await deactivate(s, dave, { erase: false }), 'deactivate without erase');
  await join(s, carol, roomId);

  // carol joined afterwards: alice's message is redacted for her, dave's (not erased) is not.
  const forCarol = ok(await api(s, carol, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`));
  assert.equal(bodies(forCarol.chunk), ['dave was here', undefined], 'alice\'s message has no body left');
  const hidden = forCarol.chunk.find((e: any) => e.event_id === erasedMsg);
  assert.ok(hidden, 'the event is still there');
  assert.equal(hidden.content, {});
  const aliceJoin = forCarol.chunk.find((e: any) => e.type === 'm.room.member' && e.state_key === alice.user_id && e.content.membership === 'join');
  assert.equal(aliceJoin.content, { membership: 'join' }, 'member event redacted (displayname gone)');
  assert.equal(ok(await api(s, carol, 'GET', `/rooms/${enc(roomId)}/event/${enc(erasedMsg)}`)).content, {});
  const sync = ok(await api(s, carol, 'GET', `/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 50 } } }))}`));
  const inSync = sync.rooms.join[roomId].timeline.events.find((e: any) => e.event_id === erasedMsg);
  assert.ok(inSync, 'in carol\'s sync timeline');
  assert.equal(inSync.content, {}, 'redacted in /sync too');

  // bob was joined when alice spoke: he still sees it.
  const forBob = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`));
  assert.equal(bodies(forBob.chunk), ['dave was here', 'alice was here']);

  // Account data, profile and 3pids are gone; the erasure is recorded.
  const left = await sql(s, async (db) => ({
    accountData: (await db.query('select 1 from account_data where user_id = $1', [alice.user_id])).rowCount,
    threepids: (await db.query('select 1 from user_threepids where user_id = $1', [alice.user_id])).rowCount,
    erased: (await db.query('select user_id from erased_users')).rows.map((r) => r.user_id),
    profile: (await db.query('select displayname, avatar_url from users where user_id = $1', [alice.user_id])).rows[0],
  }));
  assert.is(left.accountData, 0);
  assert.is(left.threepids, 0);
  assert.equal(left.erased, [alice.user_id], 'only the erased user (dave was deactivated without erase)');
  assert.equal(left.profile, { displayname: null, avatar_url: null });
  assertError(await login(s, alice.user_id, PASSWORD), 403, 'M_FORBIDDEN');
});

t('deactivation without an access token: the password stage names the account', async ({ s, eve, frank }) => {
  const first = await api(s, null, 'POST', '/account/deactivate', {});
  assert.is(first.status, 401);
  assert.equal(first.body.flows, [{ stages: ['m.login.password'] }]);
  // A wrong password: 401 with the stage's error, and the account stays.
  const wrong = await api(s, null, 'POST', '/account/deactivate', {
    auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'eve' }, password: 'not it at all', session: first.body.session },
  });
  assertError(wrong, 401, 'M_FORBIDDEN');
  ok(await api(s, eve, 'GET', '/account/whoami'), 'eve still active');
  // A session started with a token is not usable without one (bound to its user).
  const withToken = await api(s, frank, 'POST', '/account/deactivate', {});
  assertError(
    await api(s, null, 'POST', '/account/deactivate', { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'frank' }, password: PASSWORD, session: withToken.body.session } }),
    403,
    'M_FORBIDDEN',
  );
  // The right password: eve (and only eve) is deactivated.
  const done = await api(s, null, 'POST', '/account/deactivate', {
    auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'eve' }, password: PASSWORD, session: first.body.session },
  });
  assert.equal(ok(done), { id_server_unbind_result: 'no-support' });
  assertError(await api(s, eve, 'GET', '/account/whoami'), 401, 'M_UNKNOWN_TOKEN');
  assertError(await login(s, 'eve', PASSWORD), 403, 'M_FORBIDDEN');
  ok(await api(s, frank, 'GET', '/account/whoami'), 'frank untouched');
});

t.run();
